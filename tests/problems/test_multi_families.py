"""Two layers masked together in every model family: the heads of the attention (``axis=2``)
and the MLP units of the family model (tests/problems/families.py), gated in one pass.

Each family's spectrum over ``H + U = 7`` (or, with ``units=``, 5) units equals the float64
transform of a hand-written gated forward pass over all masks, and the model's own output is
the all-kept value.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from tests.brute import all_masks, brute_force_spectrum
from tests.problems import families as fam
from tests.problems.test_families import LinenModel, NnxModel, P, _haiku_forward

HEADS = asj.site("attn/heads", axis=2, name="attn", kind="head")


def _gated_by_hand(x: jax.Array, keep_heads: np.ndarray, keep_units: np.ndarray) -> float:
    """``logit_0`` (mean over inputs) with heads and units zero-ablated, written out."""
    w = {k: jnp.asarray(v) for k, v in P.items()}
    heads = fam.heads_of(x, w["wq"], w["wk"], w["wv"], w["bv"]) * jnp.asarray(keep_heads)[:, None]
    h = jax.nn.relu((x + fam.project(heads, w["wo"])) @ w["w1"]) * jnp.asarray(keep_units)
    return float(fam.readout(h)[:, 0].mean())


def _check_against_brute_force(problem: asj.MultiLayerProblem, x: jax.Array, units: list[int]) -> None:
    n = fam.H + len(units)
    assert problem.n == n and problem.sizes == (fam.H, len(units))
    assert problem.labels[:2] == ("attn.head[0]", "attn.head[1]")
    values = []
    for mask in all_masks(n):
        keep_units = np.ones(fam.U)
        keep_units[units] = mask[fam.H :] > 0
        values.append(_gated_by_hand(x, mask[: fam.H] > 0, keep_units))
    spectrum = asj.ExactSolver()(problem).to_dict()
    for subset, coef in brute_force_spectrum(np.asarray(values), n).items():
        np.testing.assert_allclose(spectrum.get(subset, 0.0), coef, atol=3e-6, err_msg=str(subset))


def _models():
    """``(family, model, params, layer names, options)`` for every family the problem takes."""
    x = fam.inputs()
    linen = LinenModel()
    yield "linen", linen, linen.init(jax.random.key(0), x), ("attn/heads", "mlp/act"), {}
    nnx_model = NnxModel(__import__("flax").nnx.Rngs(0, dropout=1))
    nnx_model.eval()
    yield "nnx", nnx_model, None, ("heads", "act"), {}
    hk = pytest.importorskip("haiku")
    model = hk.transform_with_state(_haiku_forward(hk, True))
    params, state = model.init(jax.random.key(0), x)
    state = jax.tree_util.tree_map(jnp.ones_like, state)
    yield "haiku", model, params, ("heads", "act"), {"state": state}
    yield "equinox", _equinox_model(), None, ("attn/heads", "act"), {}
    pytest.importorskip("penzai")
    from tests.problems.test_families import _penzai_model

    yield "penzai", _penzai_model()[0], None, ("heads", "act"), {"input_axes": ("batch", "seq", "embedding")}


def _equinox_model():
    eqx = pytest.importorskip("equinox")

    class Tap(eqx.Module):
        def __call__(self, v):
            return v

    class Attention(eqx.Module):
        w: dict
        heads: Tap

        def __call__(self, v):  # one example [T, D]
            return fam.project(
                self.heads(fam.heads_of(v, *(self.w[k] for k in ("wq", "wk", "wv", "bv")))), self.w["wo"]
            )

    class Model(eqx.Module):
        attn: Attention
        w1: jax.Array
        act: Tap

        def __call__(self, v):
            return fam.readout(self.act(jax.nn.relu((v + self.attn(v)) @ self.w1)))

    w = {k: jnp.asarray(v) for k, v in P.items()}
    return Model(Attention(w, Tap()), w["w1"], Tap())


@pytest.mark.parametrize("family", ["linen", "nnx", "haiku", "equinox", "penzai"])
def test_two_layers_in_every_family_match_a_hand_written_brute_force(family):
    x = fam.inputs()
    model, params, (heads_layer, units_layer), options = next(r for name, *r in _models() if name == family)
    named = family == "penzai"  # penzai's axes are named: a site may say which by name
    heads = asj.site(heads_layer, axis="heads" if named else 2, name="attn", kind="head")
    units_site = units_layer
    if family in ("equinox", "penzai"):  # no layout convention: the axis is always given
        units_site = asj.site(units_layer, axis="neurons" if named else 2)
    whole = asj.MultiLayerProblem.from_model(
        model, params, [heads, units_site], x, output="logit:0", **options
    )
    assert whole.describe()["family"] == family
    np.testing.assert_allclose(
        whole.evaluate(jnp.ones((1, whole.n)))[0],
        _gated_by_hand(x, np.ones(fam.H), np.ones(fam.U)),
        rtol=1e-5,
    )
    _check_against_brute_force(whole, x, list(range(fam.U)))
    chosen = asj.MultiLayerProblem.from_model(
        model, params, [heads, units_site], x, output="logit:0", units={units_layer: [0, 1]}, **options
    )
    _check_against_brute_force(chosen, x, [0, 1])
    top = max(
        (s for s in itertools.combinations(range(chosen.n), 2)),
        key=lambda s: abs(asj.ExactSolver()(chosen).to_dict().get(s, 0.0)),
    )
    assert top in {fam.HEADS, (fam.H, fam.H + 1)}  # a planted AND: two heads, or units 0 and 1


def test_multi_layer_refusals_name_the_fix():
    x = fam.inputs()
    model = LinenModel()
    variables = model.init(jax.random.key(0), x)
    with pytest.raises(asj.AxisError, match=r"'attn/heads' \(a LinenTap\).*axis=2\)"):
        asj.MultiLayerProblem.from_model(model, variables, ["attn/heads", "mlp/act"], x, output="logit:0")
    with pytest.raises(asj.UnknownLayerError, match=r"no layer 'mlp/akt'.*'mlp/act \[6, 5, 4\]'"):
        asj.MultiLayerProblem.from_model(model, variables, [HEADS, "mlp/akt"], x, output="logit:0")
    with pytest.raises(asj.ActSpecError, match=r"units names layers \['mlp'\]"):
        asj.MultiLayerProblem.from_model(model, variables, [HEADS], x, output="logit:0", units={"mlp": [0]})
    with pytest.raises(asj.ActSpecError, match=r"distinct indices in 0\.\.3"):
        asj.MultiLayerProblem.from_model(
            model, variables, [HEADS, "mlp/act"], x, output="logit:0", units={"mlp/act": [4]}
        )
    with pytest.raises(TypeError, match="call is not an option of a Flax linen cut"):
        asj.MultiLayerProblem.from_model(
            model, variables, [HEADS], x, output="logit:0", call=lambda m, v: m(v)
        )


def test_an_array_fill_lies_on_the_site_axis_as_in_masked_problem():
    """A ``[H]`` fill for a heads site is one value per head in both problems (not broadcast
    against the layer's last axis); a fill of another shape is refused by name."""
    x = fam.inputs()
    model = LinenModel()
    variables = model.init(jax.random.key(0), x)
    fill = jnp.asarray([10.0, 20.0, 30.0])
    multi = asj.MultiLayerProblem.from_model(model, variables, [HEADS], x, output="logit:0", fill=fill)
    single = asj.masked_problem(asj.cut_model(model, variables, HEADS), x, output="logit:0", fill=fill)
    masks = jnp.asarray(all_masks(fam.H), jnp.float32)
    np.testing.assert_allclose(multi.evaluate(masks), single.evaluate(masks), rtol=1e-5, atol=1e-5)
    with pytest.raises(asj.ActSpecError, match=r"one value per variable \(shape \[3\], on axis 2\)"):
        asj.MultiLayerProblem.from_model(model, variables, [HEADS], x, output="logit:0", fill=jnp.ones(5))
