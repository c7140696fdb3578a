"""Every model family on the same attention + MLP model: heads and MLP units as sites.

For each family the planted AND of two heads (and of two MLP units) is the top Walsh
coefficient, and the all-kept mask reproduces the model's own output (see families.py).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import actspec_jax as asj
from tests.problems import families as fam

P = fam.weights()


def _check(cut_heads, cut_units, x, real, *, heads_axis=2, units_axis=2):
    heads = asj.masked_problem(
        cut_heads, x, output="logit:0", site=asj.site(axis=heads_axis, name="block0.attn", kind="head")
    )
    assert heads.labels[1] == "block0.attn.head[1]"
    np.testing.assert_allclose(heads.evaluate(jnp.ones((1, fam.H)))[0], real[:, 0].mean(), rtol=1e-5)
    fam.check_planted(heads, fam.HEADS)
    units = asj.masked_problem(cut_units, x, output="logit:0", site=asj.site(axis=units_axis, kind="unit"))
    np.testing.assert_allclose(units.evaluate(jnp.ones((1, fam.U)))[0], real[:, 0].mean(), rtol=1e-5)
    fam.check_planted(units, fam.UNITS)


# --------------------------------------------------------------------------- linen


def _const(name):
    return lambda key: jnp.asarray(P[name])


class LinenTap(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x


class LinenAttention(nn.Module):
    @nn.compact
    def __call__(self, x):
        w = {k: self.param(k, _const(k)) for k in ("wq", "wk", "wv", "bv")}
        heads = LinenTap(name="heads")(fam.heads_of(x, **w))
        return fam.project(heads, self.param("wo", _const("wo")))


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, r):
        return LinenTap(name="act")(jax.nn.relu(r @ self.param("w1", _const("w1"))))


class LinenModel(nn.Module):
    """``__call__`` wrapped in ``nn.jit`` (as Gemma's is) and an ``nn.remat`` MLP."""

    @nn.jit
    @nn.compact
    def __call__(self, x):
        r = x + LinenAttention(name="attn")(x)
        return fam.readout(nn.remat(LinenMLP)(name="mlp")(r))


def test_linen_jit_and_remat():
    x = fam.inputs()
    module = LinenModel()
    variables = module.init(jax.random.key(0), x)
    layers = asj.list_layers(module, variables, x)
    assert {"attn/heads", "mlp/act", "mlp", "attn"} <= set(layers), layers
    assert layers["attn/heads"] == (6, fam.T, fam.H, fam.DH)
    real = module.apply(variables, x)
    heads = asj.cut_model(module, variables, "attn/heads")
    units = asj.cut_model(module, variables, "mlp/act")
    _check(heads, units, x, real)


# --------------------------------------------------------------------------- nnx


class NnxTap(nnx.Module):
    def __call__(self, x):
        return x


class NnxModel(nnx.Module):
    """BatchNorm statistics and a Dropout RNG stream in the state."""

    def __init__(self, rngs: nnx.Rngs):
        self.norm = nnx.BatchNorm(fam.D, rngs=rngs)
        for k, v in P.items():
            setattr(self, k, nnx.Param(jnp.asarray(v)))
        self.heads = NnxTap()
        self.act = NnxTap()
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        x = self.norm(x) * 0 + x  # normalised features unused: outputs stay planted
        w = {k: getattr(self, k)[...] for k in P}
        heads = self.heads(fam.heads_of(x, w["wq"], w["wk"], w["wv"], w["bv"]))
        r = x + fam.project(heads, w["wo"])
        return fam.readout(self.drop(self.act(jax.nn.relu(r @ w["w1"]))))


def test_nnx_rng_stream_and_batch_stats():
    x = fam.inputs()
    model = NnxModel(nnx.Rngs(0, dropout=1))
    with pytest.raises(asj.ActSpecError, match=r"training mode.*model\.eval\(\)"):
        asj.masked_problem(asj.cut_model(model, None, "heads"), x, output="logit:0", site=asj.site(axis=2))
    model.eval()
    real = model(x)
    _check(asj.cut_model(model, None, "heads"), asj.cut_model(model, None, "act"), x, real)


# --------------------------------------------------------------------------- equinox


def test_equinox_module():
    eqx = pytest.importorskip("equinox")

    class Tap(eqx.Module):
        def __call__(self, x):
            return x

    class Attention(eqx.Module):
        wq: jax.Array
        wk: jax.Array
        wv: jax.Array
        bv: jax.Array
        wo: jax.Array
        heads: Tap

        def __call__(self, x):  # one example [T, D]
            return fam.project(self.heads(fam.heads_of(x, self.wq, self.wk, self.wv, self.bv)), self.wo)

    class Model(eqx.Module):
        attn: Attention
        w1: jax.Array
        act: Tap
        activation: object = jax.nn.relu  # a custom_jvp function: static, not a parameter

        def __call__(self, x):
            r = x + self.attn(x)
            return fam.readout(self.act(self.activation(r @ self.w1)))

    p = {k: jnp.asarray(v) for k, v in P.items()}
    model = Model(Attention(p["wq"], p["wk"], p["wv"], p["bv"], p["wo"], Tap()), p["w1"], Tap())
    x = fam.inputs()
    real = jax.vmap(model)(x)
    heads = asj.cut_model(model, None, "attn/heads")
    assert heads.family == "equinox"
    with pytest.raises(asj.AxisError, match=r"\[6, 5, 3, 2\]"):
        asj.masked_problem(heads, x, output="logit:0")  # Equinox has no layout convention
    _check(heads, asj.cut_equinox(model, "act"), x, real)
    assert "attn/heads" in asj.list_layers(model)


# --------------------------------------------------------------------------- plain functions


def test_plain_functions():
    p = {k: jnp.asarray(v) for k, v in P.items()}

    def heads_features(p, x):
        return fam.heads_of(x, p["wq"], p["wk"], p["wv"], p["bv"])

    def heads_head(p, heads, x):
        return fam.readout(jax.nn.relu((x + fam.project(heads, p["wo"])) @ p["w1"]))

    def units_features(p, x):
        return jax.nn.relu((x + fam.project(heads_features(p, x), p["wo"])) @ p["w1"])

    x = fam.inputs()
    real = heads_head(p, heads_features(p, x), x)
    heads = asj.cut_functions(heads_features, heads_head, p, layer="attn")
    with pytest.raises(asj.AxisError, match="axis="):
        asj.masked_problem(heads, x, output="logit:0")  # rank 4 from plain functions: ask
    units = asj.cut_functions(units_features, lambda p, h: fam.readout(h), p, layer="mlp")
    _check(heads, units, x, real)


def test_unknown_family_names_the_fallback():
    with pytest.raises(TypeError, match=r"cut_functions\(features, head"):
        asj.cut_model(object(), None, "layer")


# --------------------------------------------------------------------------- penzai


def _penzai_model():
    from penzai import pz

    nmap = pz.nx.nmap

    @pz.pytree_dataclass
    class Tap(pz.nn.Layer):
        def __call__(self, x, /, **side_inputs):
            return x

    @pz.pytree_dataclass
    class Model(pz.nn.Layer):
        wq: jax.Array
        wk: jax.Array
        wv: jax.Array
        bv: jax.Array
        wo: jax.Array
        w1: jax.Array
        heads: Tap
        act: Tap

        def __call__(self, x, /, **side_inputs):  # x: {batch, seq, embedding}
            xp = x.untag("seq", "embedding")
            h = nmap(lambda a: fam.heads_of(a, self.wq, self.wk, self.wv, self.bv))(xp)
            h = self.heads(h.tag("seq", "heads", "projection"))
            r = nmap(lambda a, b: a + fam.project(b, self.wo))(xp, h.untag("seq", "heads", "projection"))
            u = nmap(lambda a: jax.nn.relu(a @ self.w1))(r).tag("seq", "neurons")
            return nmap(fam.readout)(self.act(u).untag("seq", "neurons")).tag("vocabulary")

    p = {k: jnp.asarray(v) for k, v in P.items()}
    return Model(**p, heads=Tap(), act=Tap()), pz


def test_penzai_named_axes():
    pytest.importorskip("penzai")
    model, pz = _penzai_model()
    x = fam.inputs()
    axes = ("batch", "seq", "embedding")
    real = model(pz.nx.wrap(x).tag(*axes)).unwrap("batch", "vocabulary")
    heads = asj.cut_model(model, None, "heads", input_axes=axes)
    assert heads.family == "penzai" and heads.axis_names(x) == ("batch", "seq", "heads", "projection")
    with pytest.raises(asj.AxisError, match="named"):
        asj.masked_problem(heads, x, output="logit:0")
    units = asj.cut_penzai(model, "act", input_axes=axes)
    _check(heads, units, x, real, heads_axis="heads", units_axis="neurons")


# --------------------------------------------------------------------------- dm-haiku


def _haiku_forward(hk, scale_from_state: bool):
    """The family model in haiku; with state, the attention output is scaled by a state entry
    (``1`` in the state given to the cut, ``3`` at init: a cut that dropped the state is wrong)."""

    class Tap(hk.Module):
        def __call__(self, x):
            return x

    def get(name):
        return hk.get_parameter(name, P[name].shape, init=lambda shape, dtype, v=P[name]: jnp.asarray(v))

    def forward(x, is_training=False):
        heads = Tap(name="heads")(fam.heads_of(x, get("wq"), get("wk"), get("wv"), get("bv")))
        attn = fam.project(heads, get("wo"))
        if scale_from_state:
            attn = attn * hk.get_state("scale", [], init=lambda *_: jnp.asarray(3.0))
        return fam.readout(Tap(name="act")(jax.nn.relu((x + attn) @ get("w1"))))

    return forward


def _masked_heads_by_hand(x, keep):
    """The model with heads ablated (zero fill) by a hand-written forward pass: ``logit_0`` mean."""
    heads = fam.heads_of(x, *(jnp.asarray(P[k]) for k in ("wq", "wk", "wv", "bv"))) * keep[:, None]
    return float(fam.readout(jax.nn.relu((x + fam.project(heads, P["wo"])) @ P["w1"]))[:, 0].mean())


@pytest.mark.parametrize("with_state", [False, True], ids=["transform", "transform_with_state"])
def test_haiku_transforms_match_a_hand_written_brute_force(with_state):
    """``hk.transform`` and ``hk.transform_with_state`` (state kept, not re-initialised): the
    heads' spectrum equals the float64 transform of a hand-written masked forward pass over all
    ``2^3`` masks, the planted pair is on top, and the MLP units site works as in every family."""
    hk = pytest.importorskip("haiku")
    from tests.brute import all_masks, brute_force_spectrum

    x = fam.inputs()
    forward = _haiku_forward(hk, with_state)
    if with_state:
        model = hk.transform_with_state(forward)
        params, state = model.init(jax.random.key(0), x)
        state = jax.tree_util.tree_map(lambda s: jnp.ones_like(s), state)
        real, _ = model.apply(params, state, None, x)
        extra = {"state": state}
    else:
        model = hk.without_apply_rng(hk.transform(forward))
        params, extra = model.init(jax.random.key(0), x), {}
        real = model.apply(params, x)
    layers = asj.list_layers(model, params, x, **extra)
    assert layers["heads"] == (6, fam.T, fam.H, fam.DH) and "act" in layers, layers
    heads = asj.cut_model(model, params, "heads", apply_kwargs={"is_training": False}, **extra)
    assert heads.family == "haiku"
    _check(heads, asj.cut_haiku(model, params, "act", **extra), x, real)

    problem = asj.masked_problem(heads, x, output="logit:0", site=asj.site(axis=2))
    spectrum = asj.ExactSolver()(problem).to_dict()
    values = np.array([_masked_heads_by_hand(x, jnp.asarray(m > 0)) for m in all_masks(fam.H)])
    for subset, coef in brute_force_spectrum(values, fam.H).items():
        np.testing.assert_allclose(spectrum.get(subset, 0.0), coef, atol=2e-6)


def test_haiku_refusals_name_the_fix():
    hk = pytest.importorskip("haiku")
    x = fam.inputs()
    stateful = hk.transform_with_state(_haiku_forward(hk, True))
    params, state = stateful.init(jax.random.key(0), x)
    with pytest.raises(asj.ActSpecError, match=r"state=state"):
        asj.cut_model(stateful, params, "heads")
    with pytest.raises(TypeError, match=r"call is not an option of a dm-haiku cut"):
        asj.cut_model(stateful, params, "heads", state=state, call=lambda m, v: m(v))
    with pytest.raises(asj.UnknownLayerError, match=r"'act \[6, 5, 4\]'.*'heads \[6, 5, 3, 2\]'"):
        asj.masked_problem(asj.cut_model(stateful, params, "hedas", state=state), x, output="logit:0")

    def noisy(v):
        return hk.dropout(hk.next_rng_key(), 0.5, _haiku_forward(hk, False)(v))

    plain = hk.transform(noisy)
    with pytest.raises(asj.ActSpecError, match=r"draws random numbers.*is_training"):
        asj.masked_problem(asj.cut_model(plain, plain.init(jax.random.key(0), x), "act"), x, output="logit:0")


# --------------------------------------------------------------------------- rank ≥ 4 by plain name


def test_rank_four_by_plain_name_is_asked_unless_the_layer_is_features_last_by_convention():
    """``[m, T, heads, head_dim]`` from a tap is never masked along ``head_dim`` by a plain name
    (linen, nnx, haiku): the error names the module and ``axis=2``. A Flax convolution's NHWC
    output and a module declaring ``features_last`` are taken on their last axis; a haiku NCHW
    convolution is asked for."""
    x = fam.inputs()
    module = LinenModel()
    variables = module.init(jax.random.key(0), x)
    ask = r"'attn/heads' \(a LinenTap\) has shape \[6, 5, 3, 2\].*axis=2\) for attention heads"
    with pytest.raises(asj.AxisError, match=ask):
        asj.masked_problem(asj.cut_model(module, variables, "attn/heads"), x, output="logit:0")
    model = NnxModel(nnx.Rngs(0, dropout=1))
    model.eval()
    with pytest.raises(asj.AxisError, match=r"'heads' \(a NnxTap\).*axis=2"):
        asj.masked_problem(asj.cut_model(model, None, "heads"), x, output="logit:0")

    class Declared(nn.Module):
        features_last = True

        @nn.compact
        def __call__(self, v):
            return v

    class ConvNet(nn.Module):
        @nn.compact
        def __call__(self, images):
            h = nn.relu(nn.Conv(3, (3, 3), name="conv")(images))
            h = Declared(name="declared")(h)
            return nn.Dense(2, name="out")(h.mean(axis=(1, 2)))

    images = jax.random.normal(jax.random.key(3), (4, 6, 6, 2))
    net = ConvNet()
    params = net.init(jax.random.key(0), images)
    for layer in ("conv", "declared"):
        problem = asj.masked_problem(asj.cut_model(net, params, layer), images, output="logit:1")
        assert problem.n == 3 and problem.labels[0] == f"{layer}[0]"

    hk = pytest.importorskip("haiku")

    def forward(images, data_format):
        h = hk.Conv2D(3, 3, data_format=data_format, name="conv")(images)
        return hk.Linear(2, name="out")(jax.nn.relu(h).mean(axis=(1, 2)))

    for data_format, shape in (("NHWC", (4, 6, 6, 2)), ("NCHW", (4, 2, 6, 6))):
        model = hk.without_apply_rng(hk.transform(lambda v, f=data_format: forward(v, f)))
        batch = jax.random.normal(jax.random.key(3), shape)
        params = model.init(jax.random.key(0), batch)
        cut = asj.cut_model(model, params, "conv")
        if data_format == "NHWC":
            assert asj.masked_problem(cut, batch, output="logit:1").n == 3
        else:
            with pytest.raises(asj.AxisError, match=r"\(a Conv2D\).*axis=1 for channels-first"):
                asj.masked_problem(cut, batch, output="logit:1")
            assert asj.masked_problem(cut, batch, output="logit:1", site=asj.site(axis=1)).n == 3


def test_haiku_models_that_cannot_be_cut_say_why():
    """A module inside ``hk.remat`` cannot hand its value out; a function argument left out of
    ``apply_kwargs`` is named with the fix; a LayerNorm at rank 4 is not taken as features-last."""
    hk = pytest.importorskip("haiku")
    x = fam.inputs()

    def remat_forward(v):
        return fam.readout(hk.remat(hk.Linear(fam.U, name="inner"))(v))

    model = hk.without_apply_rng(hk.transform(remat_forward))
    params = model.init(jax.random.key(0), x)
    with pytest.raises(asj.ActSpecError, match=r"inside a transform of the model itself"):
        asj.masked_problem(asj.cut_model(model, params, "inner"), x, output="logit:0")

    def needs_flag(v, is_training):
        return fam.readout(hk.Linear(fam.U, name="lin")(v) * (0.5 if is_training else 1.0))

    flagged = hk.without_apply_rng(hk.transform(needs_flag))
    flagged_params = flagged.init(jax.random.key(0), x, is_training=False)
    with pytest.raises(asj.ActSpecError, match=r"apply_kwargs=\{'is_training': False\}"):
        asj.masked_problem(asj.cut_model(flagged, flagged_params, "lin"), x, output="logit:0")

    def qk_norm(v):
        heads = fam.heads_of(v, *(jnp.asarray(P[k]) for k in ("wq", "wk", "wv", "bv")))
        normed = hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name="qk_norm")(heads)
        return fam.readout(jax.nn.relu((v + fam.project(normed, P["wo"])) @ P["w1"]))

    normed = hk.without_apply_rng(hk.transform(qk_norm))
    with pytest.raises(asj.AxisError, match=r"'qk_norm' \(a LayerNorm\) has shape \[6, 5, 3, 2\]"):
        asj.masked_problem(
            asj.cut_model(normed, normed.init(jax.random.key(0), x), "qk_norm"), x, output="logit:0"
        )
