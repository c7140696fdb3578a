"""MultiLayerProblem: one mask over several layers, gate semantics, checked by hand."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.models.transformer import SentimentTransformer
from actspec_jax.transforms.indexing import enumerate_masks


def all_masks(n: int) -> jax.Array:
    return enumerate_masks(0, 2**n, n)


class Named(nn.Module):
    """Identity with a name: a cut point."""

    @nn.compact
    def __call__(self, x):
        return x


class TwoHidden(nn.Module):
    """x → relu(W1 x + b1) [h1] → relu(W2 h1 + b2) [h2] → W3 h2 + b3."""

    @nn.compact
    def __call__(self, x):
        h1 = Named(name="h1")(nn.relu(nn.Dense(3, name="fc1")(x)))
        h2 = Named(name="h2")(nn.relu(nn.Dense(3, name="fc2")(h1)))
        return nn.Dense(2, name="fc3")(h2)


class Shared(nn.Module):
    @nn.compact
    def __call__(self, x):
        dense = nn.Dense(4, name="twice")
        return dense(nn.relu(dense(x)))


@pytest.fixture(scope="module")
def mlp():
    module = TwoHidden()
    x = jax.random.normal(jax.random.key(1), (7, 4))
    variables = module.init(jax.random.key(0), x)
    return module, variables, x


@pytest.fixture(scope="module")
def tiny_transformer():
    module = SentimentTransformer(vocab_size=40, context=10, width=16, depth=2, num_heads=2)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 40, (6, 10)), jnp.int32)
    tokens = tokens.at[:, 0].set(5)  # no all-padding rows
    variables = module.init(jax.random.key(2), tokens)
    return module, variables, tokens


def hand_forward(variables, x, keep1, keep2, fill1, fill2):
    """The two-hidden-layer net in float64 numpy with both layers gated."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    x = np.asarray(x, np.float64)
    h1 = np.maximum(x @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0)
    h1 = np.where(keep1, h1, fill1)
    h2 = np.maximum(h1 @ p["fc2"]["kernel"] + p["fc2"]["bias"], 0)
    h2 = np.where(keep2, h2, fill2)
    return h2 @ p["fc3"]["kernel"] + p["fc3"]["bias"]


@pytest.mark.parametrize("fill", ["zero", "mean"])
def test_two_layers_match_a_hand_written_forward_pass(mlp, fill):
    module, variables, x = mlp
    problem = asj.MultiLayerProblem.from_linen(
        module, variables, ["h1", "h2"], x, output="logit_diff:1-0", fill=fill
    )
    assert problem.n == 6 and problem.layer_slices == {"h1": (0, 3), "h2": (3, 6)}
    assert problem.labels[:4] == ("h1[0]", "h1[1]", "h1[2]", "h2[0]")
    masks = all_masks(6)
    values = np.asarray(problem.evaluate(masks), np.float64)
    clean = hand_forward(variables, x, True, True, 0.0, 0.0)
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    h1_clean = np.maximum(np.asarray(x, np.float64) @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0)
    h2_clean = np.maximum(h1_clean @ p["fc2"]["kernel"] + p["fc2"]["bias"], 0)
    fill1 = h1_clean.mean(0) if fill == "mean" else 0.0  # means from the CLEAN pass
    fill2 = h2_clean.mean(0) if fill == "mean" else 0.0
    expected = []
    for mask in np.asarray(masks):
        keep = mask > 0
        out = hand_forward(variables, x, keep[:3], keep[3:], fill1, fill2)
        expected.append(np.mean(out[:, 1] - out[:, 0]))
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values[0], np.mean(clean[:, 1] - clean[:, 0]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("layer", "fill"),
    [
        ("block_0/attn/heads", "zero"),
        pytest.param("block_0/attn/heads", "mean", marks=pytest.mark.slow),  # suite time: same path
        ("block_1/attn/heads", "resample"),
        ("block_1/mlp/act", "zero"),
        pytest.param("block_0/resid", "mean", marks=pytest.mark.slow),
        pytest.param("pooled", "resample", marks=pytest.mark.slow),
    ],
)
def test_single_layer_equals_masked_problem(tiny_transformer, layer, fill):
    module, variables, tokens = tiny_transformer
    key = jax.random.key(3)
    single = asj.MaskedProblem.from_cut(
        asj.cut_linen(module, variables, layer), tokens, output="logit_diff:1-0", fill=fill, key=key
    )
    multi = asj.MultiLayerProblem.from_linen(
        module, variables, [layer], tokens, output="logit_diff:1-0", fill=fill, key=key
    )
    assert multi.n == single.n and multi.labels == single.labels
    masks = jnp.asarray(np.random.default_rng(4).choice([-1.0, 1.0], (24, single.n)), jnp.float32)
    # Same function; the clean activations come from differently compiled forward passes, so
    # the values agree to float32 rounding rather than bit for bit.
    np.testing.assert_allclose(
        np.asarray(multi.evaluate_unchecked(masks)),
        np.asarray(single.evaluate_unchecked(masks)),
        rtol=2e-6,
        atol=1e-6,
    )
    np.testing.assert_allclose(multi.evaluate(masks), single.evaluate(masks), rtol=2e-6, atol=1e-6)


def test_all_heads_gate_semantics(tiny_transformer):
    """Ablating only one layer's bits equals the single-layer problem on that layer (later
    layers are recomputed), and the joint function is not the sum of the parts."""
    module, variables, tokens = tiny_transformer
    layers = module.head_layers()
    problem = asj.MultiLayerProblem.from_linen(module, variables, layers, tokens, output="logit_diff:1-0")
    assert problem.n == 4
    singles = [
        asj.MaskedProblem.from_cut(asj.cut_linen(module, variables, la), tokens, output="logit_diff:1-0")
        for la in layers
    ]
    two = all_masks(2)
    ones = jnp.ones_like(two)
    np.testing.assert_allclose(
        problem.evaluate(jnp.concatenate([two, ones], 1)), singles[0].evaluate(two), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        problem.evaluate(jnp.concatenate([ones, two], 1)), singles[1].evaluate(two), rtol=1e-6, atol=1e-6
    )
    spec = asj.ExactSolver()(problem)
    cross = [s for s in spec.to_dict() if any(i < 2 for i in s) and any(i >= 2 for i in s)]
    assert any(abs(spec.to_dict()[s]) > 1e-4 for s in cross)  # block 1 reads block 0's output
    masks = all_masks(4)
    np.testing.assert_allclose(spec.evaluate(masks), problem.evaluate(masks), rtol=1e-4, atol=1e-5)


def test_jit_pytree_and_per_input_outputs(mlp):
    module, variables, x = mlp
    problem = asj.MultiLayerProblem.from_linen(
        module, variables, ["h2", "h1"], x, output="logits", aggregate="none"
    )
    masks = all_masks(6)
    out = jax.jit(lambda p, m: p.evaluate_unchecked(m))(problem, masks)
    assert out.shape == (64, 7, 2) and problem.output_shape == (7, 2)
    assert len(problem.output_labels) == 14
    leaves, tree = jax.tree_util.tree_flatten(problem)
    again = jax.tree_util.tree_unflatten(tree, leaves)
    np.testing.assert_array_equal(again.evaluate(masks), problem.evaluate(masks))
    assert problem.describe()["layers"] == ["h2", "h1"]


def test_per_layer_fills(mlp):
    module, variables, x = mlp
    both = asj.MultiLayerProblem.from_linen(module, variables, ["h1", "h2"], x, output="logit:0", fill="mean")
    mixed = asj.MultiLayerProblem.from_linen(
        module, variables, ["h1", "h2"], x, output="logit:0", fill=["zero", "mean"]
    )
    assert mixed.describe()["fill"] == ["zero", "mean"]
    ablate_h2 = jnp.asarray([[1, 1, 1, -1, -1, -1]], jnp.float32)
    np.testing.assert_allclose(mixed.evaluate(ablate_h2), both.evaluate(ablate_h2), rtol=1e-6)


def test_bad_input(mlp, tiny_transformer):
    module, variables, x = mlp
    with pytest.raises(UnknownLayerError, match=r"no layer 'h3'.*'h1 \[7, 3\]'"):
        asj.MultiLayerProblem.from_linen(module, variables, ["h1", "h3"], x, output="logit:0")
    t_module, t_vars, tokens = tiny_transformer
    with pytest.raises(UnknownLayerError, match=r"block_2/attn/heads.*block_1/attn/heads"):
        asj.MultiLayerProblem.from_linen(
            t_module, t_vars, ["block_0/attn/heads", "block_2/attn/heads"], tokens, output="logit:1"
        )
    with pytest.raises(ActSpecError, match="input batch is empty"):
        asj.MultiLayerProblem.from_linen(module, variables, ["h1"], x[:0], output="logit:0")
    with pytest.raises(ActSpecError, match="input batch is empty"):
        asj.MultiLayerProblem.from_linen(t_module, t_vars, ["pooled"], tokens[:0], output="logit:0")
    with pytest.raises(ActSpecError, match="distinct"):
        asj.MultiLayerProblem.from_linen(module, variables, ["h1", "h1"], x, output="logit:0")
    with pytest.raises(ActSpecError, match="empty"):
        asj.MultiLayerProblem.from_linen(module, variables, [], x, output="logit:0")
    with pytest.raises(ActSpecError, match="2 fills for 1 layers"):
        asj.MultiLayerProblem.from_linen(module, variables, ["h1"], x, output="logit:0", fill=["zero"] * 2)
    with pytest.raises(ActSpecError, match="out of range"):
        asj.MultiLayerProblem.from_linen(module, variables, ["h1"], x, output="logit:5")
    with pytest.raises(ActSpecError, match="labels"):
        asj.MultiLayerProblem.from_linen(module, variables, ["h1"], x, output="logit:0", labels=["a"])
    with pytest.raises(ActSpecError, match="key"):
        asj.MultiLayerProblem.from_linen(module, variables, ["h1"], x, output="logit:0", fill="resample")
    shared = Shared()
    sv = shared.init(jax.random.key(0), jnp.ones((2, 4)))
    with pytest.raises(ActSpecError, match="called 2 times"):
        asj.MultiLayerProblem.from_linen(shared, sv, ["twice"], jnp.ones((2, 4)), output="logit:0")
    from tests.problems.test_families import LinenModel, fam

    heads_model = LinenModel()
    heads_vars = heads_model.init(jax.random.key(0), fam.inputs())
    with pytest.raises(asj.AxisError, match=r"'attn/heads' \(a LinenTap\) has shape \[6, 5, 3, 2\]"):
        asj.MultiLayerProblem.from_linen(
            heads_model, heads_vars, ["attn/heads"], fam.inputs(), output="logit:0"
        )
    problem = asj.MultiLayerProblem.from_linen(module, variables, ["h1"], x, output="logit:0")
    with pytest.raises(asj.MaskError):
        problem.evaluate(jnp.ones((2, 4)))
