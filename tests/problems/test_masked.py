import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers.common.memory import bytes_per_mask


class Mlp(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(6, name="hidden")(x))
        return nn.Dense(3, name="out")(h)


@pytest.fixture
def cut_and_inputs():
    module = Mlp()
    x = jax.random.normal(jax.random.key(1), (8, 4))
    variables = module.init(jax.random.key(0), x)
    return asj.cut_linen(module, variables, "hidden"), x


def reference(cut, x, keep, fill):
    acts = cut.activations(x)
    return cut.outputs(jnp.where(keep, acts, fill), x)


def test_zero_and_mean_fill(cut_and_inputs):
    cut, x = cut_and_inputs
    mask = jnp.array([[1.0, -1.0, 1.0, -1.0, 1.0, 1.0]])
    keep = mask[0] > 0
    acts = cut.activations(x)
    for fill, values in [("zero", 0.0), ("mean", acts.mean(0))]:
        problem = asj.masked_problem(cut, x, output="logit:2", fill=fill)
        expected = reference(cut, x, keep, values)[:, 2].mean()
        np.testing.assert_allclose(problem.evaluate(mask)[0], expected, rtol=1e-5)


def test_resample_fill_takes_values_from_another_input(cut_and_inputs):
    cut, x = cut_and_inputs
    problem = asj.masked_problem(cut, x, output="logit:0", fill="resample", key=jax.random.key(5))
    acts = np.asarray(problem.activations)
    fill = np.asarray(problem.fill_values)
    sources = [int(np.argmin(np.abs(acts - row).sum(1))) for row in fill]
    assert sorted(sources) == list(range(8)) and all(s != j for j, s in enumerate(sources))
    again = asj.masked_problem(cut, x, output="logit:0", fill="resample", key=jax.random.key(5))
    np.testing.assert_array_equal(again.fill_values, problem.fill_values)  # same key, same result


def test_all_kept_mask_is_the_real_model(cut_and_inputs):
    cut, x = cut_and_inputs
    logits = cut.outputs(cut.activations(x), x)
    selectors = {
        "logit:1": logits[:, 1],
        "logit_diff:2-0": logits[:, 2] - logits[:, 0],
        "log_prob:1": jax.nn.log_softmax(logits)[:, 1],
        "prob:1": jax.nn.softmax(logits)[:, 1],
        "indicator:1": jnp.where(jnp.argmax(logits, 1) == 1, 1.0, -1.0),
    }
    ones = jnp.ones((1, 6))
    for spec, expected in selectors.items():
        problem = asj.masked_problem(cut, x, output=spec)
        np.testing.assert_allclose(problem.evaluate(ones)[0], expected.mean(), rtol=1e-5, err_msg=spec)
        per_input = asj.masked_problem(cut, x, output=spec, aggregate="none")
        np.testing.assert_allclose(per_input.evaluate(ones)[0], expected, rtol=1e-5, err_msg=spec)


def test_every_logit_every_input_batch(cut_and_inputs):
    cut, x = cut_and_inputs
    problem = asj.masked_problem(cut, x, output="logits", aggregate="none")
    assert problem.output_shape == (8, 3) and problem.num_outputs == 24
    assert problem.output_labels[4] == "input 1 / logit:1"
    batch = asj.ExactSolver()(problem)
    single = asj.ExactSolver()(asj.masked_problem(cut, x[1:2], output="logit:1"))
    np.testing.assert_allclose(batch[4].dense, single.dense, rtol=1e-5, atol=1e-6)


def test_units_mask_a_subset_and_keep_the_rest(cut_and_inputs):
    cut, x = cut_and_inputs
    problem = asj.masked_problem(cut, x, output="logit:0", units=[4, 1])
    assert problem.n == 2 and problem.labels == ("hidden[4]", "hidden[1]")
    keep = jnp.array([True, True, True, True, False, True])  # mask [-1, +1] ablates unit 4 only
    expected = reference(cut, x, keep, 0.0)[:, 0].mean()
    np.testing.assert_allclose(problem.evaluate(jnp.array([[-1.0, 1.0]]))[0], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("masks", "match"),
    [
        (jnp.ones((6,)), r"shape \[k, n\] = \[k, 6\]"),
        (jnp.ones((2, 5)), r"got shape \(2, 5\)"),
        (jnp.ones((2, 6), bool), "floating point"),
        (jnp.zeros((2, 6)), r"only \+1 \(kept\) and −1"),
    ],
)
def test_bad_masks_are_rejected(cut_and_inputs, masks, match):
    cut, x = cut_and_inputs
    with pytest.raises(asj.MaskError, match=match):
        asj.masked_problem(cut, x, output="logit:0").evaluate(masks)


def test_bad_problem_settings_are_rejected(cut_and_inputs):
    cut, x = cut_and_inputs
    with pytest.raises(asj.ActSpecError, match="class 3 is out of range; the model has 3 classes"):
        asj.masked_problem(cut, x, output="logit:3")
    with pytest.raises(asj.ActSpecError, match="pass key="):
        asj.masked_problem(cut, x, output="logit:0", fill="resample")
    with pytest.raises(asj.ActSpecError, match="unknown fill"):
        asj.masked_problem(cut, x, output="logit:0", fill="median")
    with pytest.raises(asj.ActSpecError, match="input batch is empty"):
        asj.masked_problem(cut, x[:0], output="logit:0")
    with pytest.raises(asj.ActSpecError, match="distinct neuron indices"):
        asj.masked_problem(cut, x, output="logit:0", units=[0, 9])
    with pytest.raises(asj.ActSpecError, match="cannot parse output"):
        asj.masked_problem(cut, x, output="logit")
    with pytest.raises(asj.ActSpecError, match="aggregate"):
        asj.masked_problem(cut, x, output="logit:0", aggregate="max")


def test_nan_model_outputs_are_reported(cut_and_inputs):
    cut, x = cut_and_inputs
    with pytest.raises(asj.NonFiniteOutputError, match="NaN/inf"):
        asj.masked_problem(cut, x.at[0, 0].set(jnp.nan), output="logit:0")


def test_masked_problem_is_a_pytree_and_needs_no_recompile(cut_and_inputs):
    cut, x = cut_and_inputs
    problem = asj.masked_problem(cut, x, output="logit:0")
    traces = []

    @jax.jit
    def run(p, m):
        traces.append(1)
        return p.evaluate_unchecked(m)

    masks = jnp.ones((4, 6))
    run(problem, masks)
    run(jax.tree_util.tree_map(lambda a: a, problem), masks)
    assert len(traces) == 1


def test_planted_mlp_problem_with_mean_fill_is_constant():
    planted = synthetic.planted_mlp(6, {(0, 1): 1.0})
    spec = asj.ExactSolver()(planted.problem(fill="mean"))  # mean of a constant activation = itself
    assert [s for s in spec.to_dict() if s] == []


def test_long_mask_batches_are_chunked_to_the_budget(cut_and_inputs):
    cut, x = cut_and_inputs
    problem = asj.masked_problem(cut, x, output="logit:0")
    masks = asj.metrics.uniform_masks(jax.random.key(0), 1000, 6)
    whole = problem.evaluate_unchecked(masks)
    per_mask = bytes_per_mask(problem.evaluate_unchecked, 6)
    chunked = problem.evaluate(masks, memory_budget=16 * per_mask)  # 63 chunks of 16, one padded
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    with pytest.raises(asj.MemoryBudgetError, match="too small for one mask"):
        problem.evaluate(masks, memory_budget=per_mask // 2)
    traced = jax.jit(problem.evaluate)(masks)  # traced masks: one batch inside the caller's jit
    np.testing.assert_allclose(traced, whole, rtol=1e-6)


class _LogOfUnitZero(nn.Module):
    """Logits that turn NaN when hidden unit 0 is ablated (zero fill): ``0 · log 0``."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(6, name="hidden")(x))
        logits = nn.Dense(3, name="out")(h)
        return logits.at[:, 2].add(h[:, 0] * jnp.log(h[:, 0]))


@pytest.mark.parametrize("output", ["indicator:0", "prob:1", "log_prob:1", "logit:0", "logits"])
def test_nan_behind_a_selector_reaches_every_solver(output):
    """A NaN in the raw logits (here only in class 2's) makes the selected value NaN for that mask,
    under jit too — argmax of a NaN row would otherwise be class 0, and XLA's fused softmax finite
    — so the exact and compressive solvers refuse it instead of returning a finite spectrum."""
    module = _LogOfUnitZero()
    x = jax.random.normal(jax.random.key(1), (8, 4))
    variables = module.init(jax.random.key(0), x)
    variables = jax.tree_util.tree_map(lambda a: a, variables)
    variables["params"]["hidden"]["bias"] = jnp.full((6,), 5.0)  # unit 0 active on every input
    cut = asj.cut_linen(module, variables, "hidden")
    problem = asj.masked_problem(cut, x, output=output, fill="zero")
    masks = jnp.ones((2, 6)).at[1, 0].set(-1.0)
    values = np.asarray(jax.jit(type(problem).evaluate_unchecked)(problem, masks))
    assert np.all(np.isfinite(values[0])) and np.all(np.isnan(values[1]))
    with pytest.raises(asj.NonFiniteOutputError, match="NaN/inf"):
        asj.ExactSolver()(problem)
    if problem.output_shape == ():
        with pytest.raises(asj.NonFiniteOutputError, match="NaN/inf"):
            asj.CompressiveSolver(max_degree=2, max_evaluations=400)(problem, key=jax.random.key(0))
