"""One position of sequence outputs: the rest of the model runs on that position only when it is
position-wise after the cut, and the problem's values are those of the whole head."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.models.transformer import Block


class TinyLM(nn.Module):
    """Two pre-LN blocks over token ids, per-position logits ``[m, T, 16]``."""

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = nn.Embed(16, 16, name="embed")(tokens)
        keep = jnp.ones(tokens.shape, bool)
        for i in range(2):
            x = Block(num_heads=2, hidden=32, dropout=0.0, activation="gelu", name=f"block_{i}")(
                x, keep, False
            )
        return nn.Dense(16, name="unembed")(nn.LayerNorm(name="ln_f")(x))


@pytest.fixture(scope="module")
def lm():
    tokens = jax.random.randint(jax.random.key(0), (3, 6), 1, 16)
    model = TinyLM()
    return model, model.init(jax.random.key(1), tokens), tokens


def _pair(lm, layer: str, output: str, **kwargs):
    model, variables, tokens = lm
    cut = asj.cut_linen(model, variables, layer)
    fast = asj.masked_problem(cut, tokens, output=output, **kwargs)
    whole = asj.masked_problem(cut, tokens, output=output, restrict_head=False, **kwargs)
    return fast, whole


def _masks(n: int, count: int = 32) -> jax.Array:
    return jnp.where(jax.random.bernoulli(jax.random.key(5), 0.5, (count, n)), -1.0, 1.0)


@pytest.mark.parametrize(
    "layer, output",
    [
        ("block_1/mlp/act", "log_prob:3@last"),
        ("block_1/attn/heads", "logit:7@2"),
        ("block_1/mlp/act", "logit_diff:1-2@-3"),
    ],
)
def test_a_cut_in_the_last_block_runs_the_rest_on_one_position(lm, layer: str, output: str) -> None:
    fast, whole = _pair(lm, layer, output)
    assert fast.describe()["head_positions"] == [{"last": 5, "2": 2, "-3": 3}[output.split("@")[1]]]
    assert fast.activations.shape[1] == 1 and whole.activations.shape[1] == 6
    masks = _masks(fast.n)
    np.testing.assert_allclose(fast.evaluate(masks), whole.evaluate(masks), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fill", ["mean", "resample"])
def test_every_fill_and_units_give_the_whole_heads_values(lm, fill: str) -> None:
    kwargs = {"fill": fill, "units": [0, 3, 5, 9, 30], "key": jax.random.key(2)}
    fast, whole = _pair(lm, "block_1/mlp/act", "log_prob:3@last", **kwargs)
    assert "head_positions" in fast.describe()
    masks = _masks(fast.n)
    np.testing.assert_allclose(fast.evaluate(masks), whole.evaluate(masks), rtol=1e-5, atol=1e-6)
    exact, reference = asj.ExactSolver()(fast), asj.ExactSolver()(whole)
    np.testing.assert_allclose(exact.dense, reference.dense, atol=1e-5)


@pytest.mark.parametrize(
    "layer, output",
    [
        ("block_0/mlp/act", "log_prob:3@last"),
        ("block_0/resid", "logit:1@0"),
        ("block_1/mlp/act", "log_prob:3@mean"),
    ],
)
def test_a_rest_that_mixes_positions_or_a_mean_over_them_runs_whole(lm, layer: str, output: str) -> None:
    """Block 1's attention mixes positions after a cut in block 0; '@mean' needs all of them."""
    fast, whole = _pair(lm, layer, output)
    assert "head_positions" not in fast.describe()
    assert fast.activations.shape == whole.activations.shape
    masks = _masks(fast.n, 8)
    np.testing.assert_array_equal(fast.evaluate(masks), whole.evaluate(masks))


def test_the_restricted_problem_is_a_jittable_pytree(lm) -> None:
    fast, whole = _pair(lm, "block_1/mlp/act", "log_prob:3@last")
    masks = _masks(fast.n, 4)
    leaves, tree = jax.tree_util.tree_flatten(fast)
    again = jax.tree_util.tree_unflatten(tree, leaves)
    value = jax.jit(lambda p, m: p.evaluate_unchecked(m))(again, masks)
    np.testing.assert_allclose(value, whole.evaluate(masks), rtol=1e-5, atol=1e-6)
