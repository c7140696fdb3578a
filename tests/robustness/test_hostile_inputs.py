"""Hostile-but-fair inputs of the third tour (issue 22): each was accepted silently or raised a raw
error; each now gives the right answer or an ActSpecError naming the problem and the fix."""

from __future__ import annotations

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.diagnostics import IncompleteResultWarning, LowPrecisionWarning
from actspec_jax.reports import plots
from actspec_jax.reports.report import Report


class _Tiny(nn.Module):
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(nn.Dense(6, dtype=self.dtype, name="hidden")(x))
        return nn.Dense(3, dtype=self.dtype, name="out")(h)


def _cut(dtype=jnp.float32):
    model = _Tiny(dtype)
    x = jax.random.normal(jax.random.key(0), (4, 5))
    return asj.cut_linen(model, model.init(jax.random.key(1), x), "hidden"), x


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: asj.FunctionProblem(lambda x: x[:, 0] + 1j * x[:, 1], 3).output_shape, "complex values"),
        (
            lambda: asj.ExactSolver()(asj.FunctionProblem(lambda x: jnp.ones((1,)), 3)),
            "one value per mask row",
        ),
        (
            lambda: asj.CompressiveSolver(max_evaluations=2000)(
                asj.FunctionProblem(lambda x: x[0, :1] * 1.0, 30), key=jax.random.key(0)
            ),
            "one value per mask row",
        ),
    ],
    ids=["complex", "ignores-batch-exact", "ignores-batch-compressive"],
)
def test_function_problem_refuses_complex_values_and_batch_ignoring_functions(make, match):
    with pytest.raises(asj.ActSpecError, match=match):
        make()


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (lambda z: z[..., 99], "indexes past the model's outputs"),
        (lambda z: jax.nn.log_softmax(z)[:, 7], "index 7 is out of bounds"),
        (lambda z: z[:, 1] + 1j, "complex values"),
    ],
    ids=["index-99", "index-7-after-softmax", "complex"],
)
def test_callable_outputs_indexing_past_the_classes_or_complex_are_refused(output, match):
    cut, x = _cut()
    with pytest.raises(asj.ActSpecError, match=match):
        asj.masked_problem(cut, x, output=output)
    assert asj.masked_problem(cut, x, output=lambda z: z[:, 2] - z[:, 0]).n == 6  # in range: fine


@pytest.mark.parametrize(
    ("basis", "match"),
    [
        (np.eye(6)[[0, 1, 1]], "rank-deficient"),
        (np.concatenate([np.eye(6), np.ones((1, 6))]), "overcomplete"),
        (np.where(np.eye(6) == 1, np.nan, 0.0), "NaN"),
    ],
    ids=["duplicate-direction", "overcomplete", "nan"],
)
def test_a_basis_without_encoder_must_identify_each_direction(basis, match):
    cut, x = _cut()
    with pytest.raises(asj.ActSpecError, match=match):
        asj.masked_problem(cut, x, output="logit:1", site=asj.site("hidden", basis=basis))
    # with an encoder (an SAE), an overcomplete dictionary is the point
    wide = np.concatenate([np.eye(6), np.ones((1, 6)) / 6])
    problem = asj.masked_problem(
        cut,
        x,
        output="logit:1",
        site=asj.site("hidden", basis=wide, encoder=lambda a: jnp.maximum(a @ wide.T, 0)),
    )
    assert problem.n == 7


def test_low_precision_models_warn_and_the_dtype_is_recorded():
    cut, x = _cut(jnp.bfloat16)
    with pytest.warns(LowPrecisionWarning, match="bfloat16"):
        problem = asj.masked_problem(cut, x.astype(jnp.bfloat16), output="logit:1")
    spectrum = asj.ExactSolver()(problem)
    assert (
        spectrum.problem["activation_dtype"] == "bfloat16" and spectrum.problem["output_dtype"] == "bfloat16"
    )
    cut32, x32 = _cut()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LowPrecisionWarning)
        assert asj.masked_problem(cut32, x32, output="logit:1").describe()["activation_dtype"] == "float32"


def test_cut_functions_splits_an_equinox_module_into_arrays_and_static_parts():
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(4, 2, 8, 1, key=jax.random.key(0))  # holds jax.nn.relu: not an array

    def features(m, x):
        return jax.vmap(lambda v: m.activation(m.layers[0](v)))(x)

    def head(m, a):
        return jax.vmap(m.layers[1])(a)

    x = jax.random.normal(jax.random.key(1), (5, 4))
    cut = asj.cut_functions(features, head, mlp)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(cut.params))
    problem = asj.masked_problem(cut, x, output="logit:1")
    spectrum = asj.ExactSolver()(problem)
    # the all-kept value is the model's own output
    want = float(jnp.mean(jax.vmap(mlp)(x)[:, 1]))
    assert abs(float(problem.evaluate(jnp.ones((1, 8)))[0]) - want) < 1e-5
    assert spectrum.n == 8


def test_cut_model_prints_one_line_not_its_weights():
    cut, _ = _cut()
    text = repr(cut)
    assert text.startswith("CutModel(layer='hidden', family='linen'") and "arrays" in text
    assert "\n" not in text and len(text) < 200


def test_figure_labels_with_dollar_signs_are_literal_text(tmp_path):
    labels = [r"$\frac$", "b", "$x$"]  # mathtext would fail on the first and typeset the last
    problem = asj.FunctionProblem(lambda x: 0.9 * x[:, 0] + x[:, 1] * x[:, 2], 3, labels=labels)
    spectrum = asj.ExactSolver()(problem)
    report = Report(tmp_path, "t")
    path = report.figure(plots.plot_top_coefficients(spectrum), "top", "caption")
    assert path.exists() and path.stat().st_size > 0


def test_term_order_is_canonical_whatever_order_terms_arrive_in():
    terms = {(2,): 0.5, (0, 1): 0.5, (0,): 0.5, (): 0.1, (1,): -0.5, (1, 2): 0.5}
    a = asj.Spectrum.from_dict(terms, 3)
    b = asj.Spectrum.from_dict(dict(reversed(list(terms.items()))), 3)
    assert a.subset_tuples() == b.subset_tuples() == [(0,), (1,), (2,), (0, 1), (1, 2), ()]


def test_gl_under_a_small_budget_says_how_large_a_term_it_may_miss():
    n = 4096
    problem = asj.FunctionProblem(lambda x: 0.8 * x[:, 10] * x[:, 2000] - 0.6 * x[:, 300] + 0.1 * x[:, 5], n)
    with pytest.warns(
        IncompleteResultWarning, match=r"below about [0-9.]+ may be missed \(not only those near tau\)"
    ):
        spectrum = asj.GoldreichLevin(max_evaluations=40_000)(problem, key=jax.random.key(0))
    resolution = spectrum.solver["budget_resolution"]
    assert resolution["draws"] >= 2 and resolution["missed_below"] > spectrum.solver["tau"]


def test_cutting_at_an_inline_activation_says_layers_are_named_modules():
    class Inline(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2)(nn.relu(nn.Dense(4)(x)))

    model = Inline()
    x = jnp.ones((3, 5))
    cut = asj.cut_linen(model, model.init(jax.random.key(0), x), "relu")
    with pytest.raises(asj.UnknownLayerError, match="inline") as info:
        asj.masked_problem(cut, x, output="logit:0")
    assert "Dense_0" in str(info.value) and "name" in str(info.value)


class _Gated(nn.Module):
    """Hidden units scaled by a per-input gate (a stand-in for an attention mask)."""

    @nn.compact
    def __call__(self, x: jax.Array, gate: jax.Array) -> jax.Array:
        h = nn.relu(nn.Dense(5, name="hidden")(x)) * gate
        return nn.Dense(3, name="out")(h)


def test_a_call_argument_with_its_own_batch_is_refused_or_split_with_the_inputs():
    model = _Gated()
    x = jax.random.normal(jax.random.key(0), (6, 4))
    gate = jax.random.uniform(jax.random.key(1), (6, 1)) + 0.5
    variables = model.init(jax.random.key(2), x, gate)
    # closed over with batch 6 while one input is given: refused, not broadcast
    one = asj.cut_linen(model, variables, "hidden", apply_kwargs={"gate": gate})
    with pytest.raises(asj.ActSpecError, match="batch 6, but 1 input"):
        asj.masked_problem(one, x[:1], output="logit:1")
    # passed with the inputs: split with them in every aggregation mode, equal to a hand-written loop
    cut = asj.cut_linen(model, variables, "hidden", method=lambda module, inputs: module(*inputs))
    for aggregate in ("mean", "none"):
        problem = asj.masked_problem(cut, (x, gate), output="logit:1", aggregate=aggregate)
        masks = jnp.asarray([[1, -1, 1, 1, -1], [1, 1, 1, 1, 1]], jnp.float32)
        got = np.asarray(problem.evaluate(masks))
        want = []
        for mask in np.asarray(masks):
            rows = []
            for i in range(6):
                h = jax.nn.relu(
                    x[i : i + 1] @ variables["params"]["hidden"]["kernel"]
                    + variables["params"]["hidden"]["bias"]
                )
                h = jnp.where(mask > 0, h, 0.0) * gate[i : i + 1]
                rows.append(
                    float(
                        (h @ variables["params"]["out"]["kernel"] + variables["params"]["out"]["bias"])[0, 1]
                    )
                )
            want.append(np.mean(rows) if aggregate == "mean" else rows)
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-6)


def test_a_linen_model_in_training_mode_gets_a_clear_error():
    class WithNorm(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
            h = nn.BatchNorm(use_running_average=not train)(nn.relu(nn.Dense(5, name="hidden")(x)))
            return nn.Dense(3)(h)

    model, x = WithNorm(), jnp.ones((4, 3))
    variables = model.init(jax.random.key(0), x)
    training = asj.cut_linen(model, variables, "hidden", apply_kwargs={"train": True})
    with pytest.raises(asj.ActSpecError, match=r"training mode.*apply_kwargs=\{'train': False\}"):
        asj.masked_problem(training, x, output="logit:1")
    evaluating = asj.cut_linen(model, variables, "hidden", apply_kwargs={"train": False})
    assert asj.masked_problem(evaluating, x, output="logit:1").n == 5
