"""Incremental (subset-sum) evaluation: detection, agreement with direct evaluation, fallbacks."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brute import all_masks, brute_force_spectrum

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers import exact_value_table
from actspec_jax.solvers.exact.incremental import evaluate_incremental, split_head, supports_incremental
from actspec_jax.transforms import enumerate_masks, subset_to_index


class Mlp(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(12, name="dense")(x))
        h = Named(name="hidden")(h)
        h = nn.relu(nn.Dense(7, name="mid")(h))
        return nn.Dense(4, name="out")(h)


class Named(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x


@pytest.fixture(scope="module")
def mlp():
    module = Mlp()
    x = jax.random.normal(jax.random.key(1), (6, 5))
    variables = module.init(jax.random.key(0), x)
    return asj.cut_linen(module, variables, "hidden"), x, variables


def random_masks(n: int, k: int, seed: int = 0) -> jax.Array:
    bits = np.random.default_rng(seed).integers(0, 2, size=(k, n))
    return jnp.asarray(1.0 - 2.0 * bits, jnp.float32)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"output": "logit:2"},
        {"output": "log_prob:1", "fill": "mean"},
        {"output": "logits", "units": [0, 3, 5, 11]},
        {"output": "logit_diff:0-3", "aggregate": "none"},
        {"output": "prob:3", "fill": "resample", "key": jax.random.key(5)},
    ],
    ids=["logit", "log_prob-mean", "logits-units", "per-input", "resample"],
)
def test_incremental_matches_direct_evaluation(mlp, kwargs):
    cut, x, _ = mlp
    problem = asj.masked_problem(cut, x, **kwargs)
    split, reason = split_head(problem)
    assert split is not None, reason
    masks = random_masks(problem.n, 64)
    direct = problem.evaluate_unchecked(masks)
    fast = jax.jit(evaluate_incremental)(problem, masks)
    assert fast.shape == direct.shape
    np.testing.assert_allclose(fast, direct, rtol=2e-5, atol=2e-6)


def test_the_frontier_is_the_first_projection_output(mlp):
    cut, x, _ = mlp
    split, _ = split_head(asj.masked_problem(cut, x, output="logit:0"))
    assert [tuple(v.aval.shape) for v in split.frontier] == [(6, 7)]  # Dense 12 -> 7, per input
    assert {e.primitive.name for e in split.affine_eqns} >= {"dot_general"}


def test_exact_spectrum_float64_brute_force(mlp):
    """Incremental exact spectrum vs a float64 NumPy forward pass over all 2^12 masks."""
    cut, x, variables = mlp
    problem = asj.masked_problem(cut, x, output="logit:1")
    spec = asj.ExactSolver(incremental=True, rtol=0.0)(problem)
    assert spec.solver["evaluation"] == "incremental"
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    acts = np.maximum(np.asarray(x, np.float64) @ p["dense"]["kernel"] + p["dense"]["bias"], 0)
    keep = all_masks(12) > 0  # [2^n, n]
    masked = np.where(keep[:, None, :], acts[None], 0.0)  # [2^n, m, 12]
    mid = np.maximum(masked @ p["mid"]["kernel"] + p["mid"]["bias"], 0)
    values = (mid @ p["out"]["kernel"] + p["out"]["bias"])[..., 1].mean(axis=1)
    truth = brute_force_spectrum(values, 12)
    scale = max(abs(v) for v in truth.values())
    worst = max(abs(spec.dense[subset_to_index(s)] - c) for s, c in truth.items())
    assert worst <= 2e-6 * max(1.0, scale)


def test_planted_mlp_same_spectrum_both_paths():
    terms = {(1, 4, 9): 1.0, (3, 7): -0.8, (0,): 0.6, (2, 5, 10, 11): 0.5}
    planted = synthetic.planted_mlp(12, terms, distractor=0.02, key=jax.random.key(2))
    problem = planted.problem()
    fast = asj.ExactSolver(incremental=True)(problem)
    slow = asj.ExactSolver(incremental=False)(problem)
    assert (fast.solver["evaluation"], slow.solver["evaluation"]) == ("incremental", "direct")
    np.testing.assert_allclose(fast.dense, slow.dense, atol=1e-6)
    got = fast.to_dict()
    for subset, coef in planted.truth.items():
        assert got.get(subset, 0.0) == pytest.approx(coef, abs=1e-5)


@pytest.mark.parametrize("chunk_size,block_size", [(1, None), (16, 4), (None, None)])
def test_chunk_and_block_sizes_do_not_change_the_table(mlp, chunk_size, block_size):
    cut, x, _ = mlp
    problem = asj.masked_problem(cut, x, output="logit:3", units=list(range(8)))
    reference = problem.evaluate_unchecked(enumerate_masks(0, 256, 8))
    table = exact_value_table(problem, incremental=True, chunk_size=chunk_size, block_size=block_size)
    np.testing.assert_allclose(table[0], reference, rtol=2e-5, atol=2e-6)


def attention_head(params, acts, inputs):
    """Single-head self-attention over tokens, mean-pooled, then a read-out: acts [m, T, N]."""
    q, k, v = acts @ params["wq"], acts @ params["wk"], acts @ params["wv"]
    scores = jnp.einsum("mtd,msd->mts", q, k) / np.sqrt(q.shape[-1])
    mixed = jnp.einsum("mts,msd->mtd", jax.nn.softmax(scores, axis=-1), v)
    return mixed.mean(axis=1) @ params["wo"]


def test_attention_projections_are_detected():
    keys = jax.random.split(jax.random.key(0), 5)
    params = {
        name: jax.random.normal(k, shape)
        for name, k, shape in zip(("wq", "wk", "wv", "wo"), keys, ((6, 4), (6, 4), (6, 4), (4, 3)))
    }
    tokens = jax.random.normal(keys[4], (5, 7, 6))  # m=5 inputs, T=7 tokens, N=6 neurons
    cut = asj.cut_functions(lambda p, x: x, attention_head, params, layer="tokens")
    problem = asj.masked_problem(cut, tokens, output="logit:2")
    split, reason = split_head(problem)
    assert split is not None and len(split.frontier) == 3, reason  # Q, K and V
    masks = random_masks(6, 64, seed=1)
    np.testing.assert_allclose(
        evaluate_incremental(problem, masks), problem.evaluate_unchecked(masks), rtol=1e-5, atol=1e-6
    )
    spec = asj.ExactSolver()(problem)
    assert spec.solver["evaluation"] == "incremental"
    table = problem.evaluate_unchecked(enumerate_masks(0, 64, 6))
    np.testing.assert_allclose(spec.dense, asj.fwht(table) / 64, atol=1e-6)


def test_convolution_first_head_is_detected():
    kernel = jax.random.normal(jax.random.key(3), (3, 4, 5))  # width 3, 4 -> 5 channels

    def head(p, acts, inputs):
        y = jax.lax.conv_general_dilated(acts, p, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))
        return jnp.tanh(y).mean(axis=1)

    acts = jax.random.normal(jax.random.key(4), (3, 9, 4))
    cut = asj.cut_functions(lambda p, x: x, head, kernel, layer="conv_in")
    problem = asj.masked_problem(cut, acts, output="logit:4")
    assert supports_incremental(problem)[0]
    masks = random_masks(4, 16, seed=2)
    np.testing.assert_allclose(
        evaluate_incremental(problem, masks), problem.evaluate_unchecked(masks), rtol=1e-5, atol=1e-6
    )


def test_nonlinear_first_head_falls_back_to_direct():
    w = jax.random.normal(jax.random.key(0), (5, 2))

    def head(p, acts, inputs):
        return jax.nn.relu(acts) @ p + acts[..., :2]  # reads activations through a ReLU first

    acts = jax.random.normal(jax.random.key(1), (4, 5))
    problem = asj.masked_problem(asj.cut_functions(lambda p, x: x, head, w), acts, output="logit:0")
    ok, reason = supports_incremental(problem)
    assert not ok and "no projection" in reason
    spec = asj.ExactSolver()(problem)
    assert spec.solver["evaluation"] == "direct"
    with pytest.raises(asj.ActSpecError, match=r"incremental=True but .*no projection"):
        asj.ExactSolver(incremental=True)(problem)


def test_function_problems_are_not_split():
    ok, reason = supports_incremental(asj.FunctionProblem(lambda x: x[:, 0], 3))
    assert not ok and "not a model cut" in reason
    assert asj.ExactSolver()(asj.FunctionProblem(lambda x: x[:, 0], 3)).solver["evaluation"] == "direct"


def test_memory_budget_error_names_the_minimum_for_both_paths(mlp):
    cut, x, _ = mlp
    problem = asj.masked_problem(cut, x, output="logit:0")
    for inc in (True, False):
        with pytest.raises(asj.MemoryBudgetError, match=r"memory_budget >= \d+ bytes"):
            asj.ExactSolver(incremental=inc, memory_budget=16)(problem)


def test_shipped_sentiment_transformer_mlp_units():
    """Real attention model: MLP units of block 1 feed a projection + residual + LayerNorm."""
    from actspec_jax.models.transformer import load_sentiment_transformer

    module, variables, tokenizer, _ = load_sentiment_transformer()
    tokens = jnp.asarray(tokenizer.encode(["a moving, wonderful film", "dull and far too long"], 16).tokens)
    cut = asj.cut_linen(module, variables, "block_1/mlp/act")
    problem = asj.masked_problem(cut, tokens, output="logit_diff:1-0", units=list(range(6)))
    split, reason = split_head(problem)
    assert split is not None, reason
    masks = random_masks(6, 16, seed=3)
    fast = jax.jit(evaluate_incremental)(problem, masks)
    direct = jax.jit(type(problem).evaluate_unchecked)(problem, masks)
    np.testing.assert_allclose(fast, direct, rtol=1e-5, atol=2e-6)
