"""Sites: any axis, positions and bases; NCHW vs NHWC; never a silently wrong axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj

C, H, W, M = 5, 6, 6, 4


def _conv_params():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return {
        "w1": jax.random.normal(k1, (3, 3, 2, C)) * 0.5,  # HWIO
        "w2": jax.random.normal(k2, (3, 3, C, 4)) * 0.5,
        "dense": jax.random.normal(k3, (4, 3)),
    }


def _conv(x, w, layout):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=(layout, "HWIO", layout))


def _convnet(layout):
    """The same convnet written channels-first (NCHW) or channels-last (NHWC)."""
    spatial = (2, 3) if layout == "NCHW" else (1, 2)

    def features(p, x):
        return jax.nn.relu(_conv(x, p["w1"], layout))

    def head(p, acts):
        h = jnp.tanh(_conv(acts, p["w2"], layout)).mean(axis=spatial)
        return h @ p["dense"]

    return features, head


@pytest.fixture(scope="module")
def images():
    return jax.random.normal(jax.random.key(1), (M, 2, H, W))  # NCHW


@pytest.mark.parametrize("fill", ["zero", "mean", "array"])
def test_nchw_channels_equal_nhwc_spectrum(images, fill):
    params = _conv_params()
    f_first, h_first = _convnet("NCHW")
    f_last, h_last = _convnet("NHWC")
    nhwc = jnp.transpose(images, (0, 2, 3, 1))
    fills = {"zero": "zero", "mean": "mean", "array": jnp.linspace(0.1, 0.5, C)}  # one per channel
    first = asj.masked_problem(
        asj.cut_functions(f_first, h_first, params, layer=asj.site("conv1", axis=1, kind="channel")),
        images,
        output="logit:1",
        fill=fills[fill],
    )
    last = asj.masked_problem(
        asj.cut_functions(f_last, h_last, params, layer=asj.site("conv1", axis=3, kind="channel")),
        nhwc,
        output="logit:1",
        fill=fills[fill],
    )
    assert first.n == last.n == C
    assert first.labels == tuple(f"conv1.channel[{i}]" for i in range(C))
    a, b = asj.ExactSolver()(first), asj.ExactSolver()(last)
    np.testing.assert_allclose(a.dense, b.dense, atol=1e-5)
    assert np.abs(a.dense[1:]).max() > 1e-3  # the channels matter: the comparison can fail
    # the all-kept mask is the real network
    real = h_first(params, f_first(params, images))[:, 1].mean()
    np.testing.assert_allclose(first.evaluate(jnp.ones((1, C)))[0], real, rtol=1e-5)


def test_nchw_without_axis_is_refused_never_masked_along_width(images):
    f_first, h_first = _convnet("NCHW")
    cut = asj.cut_functions(f_first, h_first, _conv_params(), layer="conv1")
    with pytest.raises(asj.AxisError, match=r"\[4, 5, 6, 6\].*axis="):
        asj.masked_problem(cut, images, output="logit:1")
    # an array fill that would broadcast against the width is refused too
    site_cut = asj.cut_functions(f_first, h_first, _conv_params(), layer=asj.site("conv1", axis=1))
    with pytest.raises(asj.AxisError, match="ambiguous"):
        asj.masked_problem(site_cut, images, output="logit:1", fill=jnp.ones((W,)) * 0.3)


def test_axis_errors_name_the_shape():
    acts = jnp.ones((3, 4, 5, 6))
    cut = asj.cut_functions(lambda p, x: x, lambda p, a: a.sum(axis=(1, 2)), None, layer="L")
    with pytest.raises(asj.AxisError, match="batch axis"):
        asj.masked_problem(cut, acts, output="logit:0", site=asj.site(axis=0))
    with pytest.raises(asj.AxisError, match="out of range"):
        asj.masked_problem(cut, acts, output="logit:0", site=asj.site(axis=4))
    with pytest.raises(asj.ActSpecError, match="cut at 'L'"):
        asj.masked_problem(cut, acts, output="logit:0", site=asj.site("other", axis=1))


def _attention_like():
    """Per-token head outputs ``[m, T, H, D]`` → logits; head ``h`` reads its own slice."""
    wo = jax.random.normal(jax.random.key(2), (3, 2, 4))  # H, D, classes

    def head(p, heads):
        return jnp.einsum("mthd,hdc->mc", jnp.tanh(heads), p)

    return wo, head


def test_heads_axis_multi_axis_and_labels():
    wo, head = _attention_like()
    acts = jax.random.normal(jax.random.key(3), (5, 7, 3, 2))
    cut = asj.cut_functions(lambda p, x: x, head, wo, layer="block0/attn")
    heads = asj.masked_problem(
        cut, acts, output="logit:1", site=asj.site(axis=2, name="block0.attn", kind="head")
    )
    assert heads.labels == ("block0.attn.head[0]", "block0.attn.head[1]", "block0.attn.head[2]")
    mask = jnp.array([[1.0, -1.0, 1.0]])
    expected = head(wo, acts.at[:, :, 1].set(0.0))[:, 1].mean()
    np.testing.assert_allclose(heads.evaluate(mask)[0], expected, rtol=1e-5)
    # heads × components: n = H·D variables, labelled by index pairs
    both = asj.masked_problem(cut, acts, output="logit:1", site=asj.site(axis=(2, 3), kind="hd"))
    assert both.n == 6 and both.labels[3] == "block0/attn.hd[1,1]"
    mask = (-jnp.ones((1, 6))).at[0, 3].set(1.0)
    only = jnp.zeros_like(acts).at[:, :, 1, 1].set(acts[:, :, 1, 1])
    np.testing.assert_allclose(both.evaluate(mask)[0], head(wo, only)[:, 1].mean(), rtol=1e-5)
    # mean fill follows the site: per-head mean over inputs, positions and components
    mean = asj.masked_problem(cut, acts, output="logit:1", fill="mean", site=asj.site(axis=2))
    per_head = acts.mean(axis=(0, 1, 3))
    filled = acts.at[:, :, 0].set(per_head[0])
    np.testing.assert_allclose(
        mean.evaluate(jnp.array([[-1.0, 1.0, 1.0]]))[0], head(wo, filled)[:, 1].mean(), rtol=1e-5
    )


def test_positions_leave_other_tokens_untouched():
    wo, head = _attention_like()
    acts = jax.random.normal(jax.random.key(4), (5, 7, 3, 2))
    cut = asj.cut_functions(lambda p, x: x, head, wo, layer="attn")
    s = asj.site(axis=2, positions=[2, 5], kind="head")
    problem = asj.masked_problem(cut, acts, output="logit:0", fill="resample", key=jax.random.key(9), site=s)
    assert problem.labels[0] == "attn@pos[2;5].head[0]"
    ablate_all = problem.evaluate(-jnp.ones((1, 3)))[0]
    # reference: tokens 2 and 5 take another input's values, the others stay
    fills = problem.fill_values  # view: [m, T, D, H]
    donor = jnp.moveaxis(fills, -1, 2)
    expected = acts.at[:, [2, 5]].set(donor[:, [2, 5]])
    np.testing.assert_allclose(ablate_all, head(wo, expected)[:, 0].mean(), rtol=1e-5)
    np.testing.assert_allclose(donor[:, [0, 1, 3]], acts[:, [0, 1, 3]])  # untouched elsewhere
    assert not np.allclose(donor[:, 2], acts[:, 2])
    with pytest.raises(asj.AxisError, match="position"):
        asj.masked_problem(cut, acts, output="logit:0", site=asj.site(axis=2, positions=[9]))


def test_basis_directions_remove_their_component():
    wr = jax.random.normal(jax.random.key(5), (6, 2))
    resid = jax.random.normal(jax.random.key(6), (4, 8, 6))  # [m, T, D]
    q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(7), (6, 3)))
    basis = q.T  # 3 orthonormal directions

    def head(p, r):
        return jnp.tanh(r).mean(axis=1) @ p

    cut = asj.cut_functions(lambda p, x: x, head, wr, layer="resid")
    s = asj.site(axis=2, positions=[3], basis=basis)
    problem = asj.masked_problem(cut, resid, output="logit_diff:0-1", site=s)
    assert problem.n == 3 and problem.labels[1] == "resid@pos3.dir[1]"
    real = head(wr, resid)
    np.testing.assert_allclose(
        problem.evaluate(jnp.ones((1, 3)))[0], (real[:, 0] - real[:, 1]).mean(), rtol=1e-5
    )
    mask = jnp.array([[1.0, -1.0, 1.0]])
    direction = basis[1]
    removed = resid.at[:, 3].add(-(resid[:, 3] @ direction)[:, None] * direction)
    out = head(wr, removed)
    np.testing.assert_allclose(problem.evaluate(mask)[0], (out[:, 0] - out[:, 1]).mean(), rtol=1e-5)


def test_concept_problem_is_a_basis_site():
    from actspec_jax.concepts import ConceptProblem, fit_basis

    w1 = jax.random.normal(jax.random.key(8), (5, 7))
    w2 = jax.random.normal(jax.random.key(9), (7, 3))
    x = jax.random.normal(jax.random.key(10), (16, 5))
    cut = asj.cut_functions(lambda p, x: jax.nn.relu(x @ p[0]), lambda p, a: a @ p[1], (w1, w2), layer="relu")
    basis = fit_basis(cut.activations(x), 4, key=jax.random.key(0))
    concepts = ConceptProblem.from_cut(cut, x, output="logit:2", basis=basis)
    as_site = asj.masked_problem(
        cut, x, output="logit:2", site=asj.site(basis=basis.dictionary, encoder=basis.codes)
    )
    a, b = asj.ExactSolver()(concepts), asj.ExactSolver()(as_site)
    np.testing.assert_allclose(a.dense, b.dense, atol=1e-5)
    assert np.abs(a.dense[1:]).max() > 1e-3


@pytest.mark.parametrize("positions", [[1.5], [True], ["2"], [(1, 0.5)]])
def test_positions_must_be_whole_indices(positions):
    """positions=[1.5] was truncated to 1 silently."""
    wo, head = _attention_like()
    acts = jax.random.normal(jax.random.key(3), (5, 7, 3, 2))
    cut = asj.cut_functions(lambda p, x: x, head, wo, layer="block0/attn")
    with pytest.raises(asj.AxisError, match="whole index"):
        asj.masked_problem(cut, acts, output="logit:1", site=asj.site(axis=2, positions=positions))


def test_a_logit_difference_of_one_class_with_itself_is_refused():
    wo, head = _attention_like()
    acts = jax.random.normal(jax.random.key(3), (5, 7, 3, 2))
    cut = asj.cut_functions(lambda p, x: x, head, wo, layer="block0/attn")
    with pytest.raises(asj.ActSpecError, match="choose two different classes"):
        asj.masked_problem(cut, acts, output="logit_diff:1-1", site=asj.site(axis=2))
