import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brute import all_masks, brute_force_spectrum

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers import exact_value_table
from actspec_jax.transforms import subset_to_index


def table_problem(values: np.ndarray, n: int) -> asj.FunctionProblem:
    """A problem that looks up a random value table by mask index (an arbitrary function)."""
    table = jnp.asarray(values, jnp.float32)
    weights = jnp.asarray(1 << np.arange(n), jnp.int32)

    def f(x):
        return table[jnp.sum((x < 0).astype(jnp.int32) * weights, axis=1)]

    return asj.FunctionProblem(f, n)


@pytest.mark.parametrize("n", [1, 2, 4, 7, 10])
def test_exact_matches_float64_brute_force(n, rng):
    values = rng.standard_normal(1 << n)
    spec = asj.ExactSolver(rtol=0.0)(table_problem(values, n))
    truth = brute_force_spectrum(values, n)
    scale = max(abs(v) for v in truth.values())
    for subset, coef in truth.items():
        assert abs(spec.dense[subset_to_index(subset)] - coef) <= 1e-5 * scale, subset
    got = spec.to_dict()
    assert set(got) == set(truth)  # nothing exactly zero in a random function
    # Parseval: Σ f̂(S)² = E[f²].
    assert spec.norm_sq == pytest.approx(float(np.mean(values**2)), rel=1e-5)
    assert float(np.sum(spec.dense**2)) == pytest.approx(float(np.mean(values**2)), rel=1e-5)


def test_exact_float64_mode(rng):
    values = rng.standard_normal(1 << 8)
    with jax.enable_x64(True):
        spec = asj.ExactSolver(rtol=0.0, dtype=jnp.float64)(
            asj.FunctionProblem(lambda x: table_problem(values, 8).f(x).astype(jnp.float64), 8)
        )
    truth = brute_force_spectrum(values.astype(np.float32).astype(np.float64), 8)
    for subset, coef in truth.items():
        assert spec.dense[subset_to_index(subset)] == pytest.approx(coef, abs=1e-12)


def test_float64_without_x64_mode_is_refused():
    with pytest.raises(asj.ActSpecError, match="jax_enable_x64"):
        asj.ExactSolver(dtype=jnp.float64)(synthetic.parity(3, [0]).problem)


@pytest.mark.parametrize(
    "planted",
    [
        synthetic.parity(8, [1, 4, 6]),
        synthetic.dictator(5, 3, sign=-1.0),
        synthetic.and_function(6, [0, 2, 5]),
        synthetic.or_function(6, [1, 3]),
        synthetic.majority(7, [0, 2, 4, 5, 6]),
    ],
    ids=lambda p: p.problem.describe()["function"],
)
def test_known_functions_give_their_known_spectra(planted):
    got = asj.ExactSolver()(planted.problem).to_dict()
    assert set(got) == set(planted.truth)
    for subset, coef in planted.truth.items():
        assert got[subset] == pytest.approx(coef, abs=1e-6)


def test_parity_has_one_coefficient_and_majority_of_three_has_known_signs():
    assert asj.ExactSolver()(synthetic.parity(6, [0, 5]).problem).to_dict() == {(0, 5): pytest.approx(1.0)}
    maj = asj.ExactSolver()(synthetic.majority(3, [0, 1, 2]).problem).to_dict()
    assert maj == {
        (0,): pytest.approx(0.5),
        (1,): pytest.approx(0.5),
        (2,): pytest.approx(0.5),
        (0, 1, 2): pytest.approx(-0.5),
    }


def test_chunking_does_not_change_the_result(rng):
    values = rng.standard_normal(1 << 9)
    problem = table_problem(values, 9)
    whole = asj.ExactSolver(rtol=0.0)(problem).dense
    for chunk in (1, 7, 64):
        np.testing.assert_array_equal(asj.ExactSolver(rtol=0.0, chunk_size=chunk)(problem).dense, whole)


def test_progress_reports_every_chunk():
    calls = []
    asj.ExactSolver(chunk_size=16)(
        synthetic.parity(6, [1]).problem, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(16 * (i + 1), 64) for i in range(4)]


def test_batched_outputs_share_one_evaluation_and_match_single_runs():
    problem = asj.FunctionProblem(lambda x: jnp.stack([x[:, 0] * x[:, 1], jnp.sign(x.sum(1)), x[:, 2]], 1), 3)
    batch = asj.ExactSolver()(problem)
    assert isinstance(batch, asj.SpectrumBatch) and len(batch) == 3
    assert batch.dense.shape == (3, 8)
    assert batch[0].to_dict() == {(0, 1): pytest.approx(1.0)}
    assert batch[2].to_dict() == {(2,): pytest.approx(1.0)}
    assert [s.output_index for s in batch] == [0, 1, 2]


def test_top_k_and_rtol_limit_the_sparse_list(rng):
    spec = asj.ExactSolver(top_k=5, rtol=0.0)(table_problem(rng.standard_normal(64), 6))
    assert spec.num_terms == 5
    assert np.all(np.diff(np.abs(spec.coefficients)) <= 0)  # sorted by magnitude
    assert spec.dense.shape == (64,)


def test_too_many_neurons_are_refused_with_memory_and_gl_hint():
    problem = asj.FunctionProblem(lambda x: x[:, 0], 40)
    with pytest.raises(asj.ProblemTooLargeError, match=r"(?s)n=40 exceeds max_n=26.*TiB.*GoldreichLevin"):
        asj.ExactSolver()(problem)
    with pytest.raises(asj.ProblemTooLargeError, match="max_n=8"):
        asj.ExactSolver(max_n=8)(asj.FunctionProblem(lambda x: x[:, 0], 9))


def test_nan_outputs_are_reported_with_the_mask():
    problem = asj.FunctionProblem(lambda x: jnp.where(x[:, 2] < 0, jnp.nan, 1.0), 4)
    with pytest.raises(asj.NonFiniteOutputError, match=r"mask 4 \(ablated neurons \[2\]"):
        asj.ExactSolver()(problem)


def test_memory_budget_too_small_names_the_minimum():
    with pytest.raises(asj.MemoryBudgetError, match="memory_budget >= "):
        asj.ExactSolver(memory_budget=8)(synthetic.parity(4, [0]).problem)


def test_bad_settings_are_rejected():
    problem = synthetic.parity(3, [0]).problem
    with pytest.raises(asj.ActSpecError, match="top_k"):
        asj.ExactSolver(top_k=0)(problem)
    with pytest.raises(asj.ActSpecError, match="rtol"):
        asj.ExactSolver(rtol=2.0)(problem)
    with pytest.raises(asj.ActSpecError, match="chunk_size"):
        asj.ExactSolver(chunk_size=0)(problem)


def test_metadata_records_the_run():
    spec = asj.ExactSolver()(synthetic.parity(5, [1, 2]).problem, key=jax.random.key(3))
    assert spec.solver["name"] == "exact" and spec.solver["evaluations"] == 32
    assert spec.solver["wall_time_s"] > 0 and spec.solver["key"] is not None
    assert spec.problem["kind"] == "FunctionProblem"


def test_planted_mlp_top_coefficients_are_the_planted_subsets():
    terms = {(1, 4, 9): 1.0, (3, 7): -0.8, (0,): 0.6, (2, 5, 10, 11): 0.5}
    planted = synthetic.planted_mlp(12, terms, distractor=0.02, key=jax.random.key(2))
    spec = asj.ExactSolver()(planted.problem())
    top = [s for s in spec.subset_tuples() if s][: len(terms)]
    assert set(top) == set(terms)
    got = spec.to_dict()
    for subset, coef in planted.truth.items():  # planted terms plus the distractors' d_i / 2
        assert got.get(subset, 0.0) == pytest.approx(coef, abs=1e-5)


def test_value_table_column_order_matches_enumeration():
    problem = asj.FunctionProblem(lambda x: x @ jnp.arange(1.0, 4.0), 3)
    table = np.asarray(exact_value_table(problem))[0]
    np.testing.assert_allclose(table, all_masks(3) @ np.arange(1.0, 4.0))


def test_a_batch_r2_scores_every_output_on_one_set_of_masks():
    problem = asj.FunctionProblem(
        lambda x: jnp.stack([x[:, 0] * x[:, 1], x[:, 2] - 0.5 * x[:, 0]], axis=1), 4
    )
    batch = asj.ExactSolver()(problem)
    scores = batch.r2(problem, key=jax.random.key(0), num_masks=256)
    assert scores.shape == (2,) and np.allclose(scores, 1.0)
    lone = asj.ExactSolver()(asj.FunctionProblem(lambda x: x[:, 3], 4))
    mixed = asj.SpectrumBatch((batch[0], lone), (2,))  # output 1 is explained by the wrong function
    assert mixed.r2(problem, key=jax.random.key(0), num_masks=256)[1] < 0.5
    with pytest.raises(asj.ActSpecError, match="3 spectra but the problem has 2 outputs"):
        asj.SpectrumBatch((batch[0], batch[1], lone), (3,)).r2(problem, key=jax.random.key(0))
