"""ResidualPasses: one loop for GoldreichLevin's passes and the compressive solver's, budgets, errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from counting import counting

import actspec_jax as asj
from actspec_jax.problems import synthetic

GL_FAST = dict(tau=0.05, num_samples=64, leaf_samples=1024, beam=64)
BUDGET = 400  # one compressive pass in the two-pass tests


def _same(a: asj.Spectrum, b: asj.Spectrum) -> None:
    """Bitwise the same result: terms, coefficients, errors and every evaluation count."""
    assert np.array_equal(a.subsets, b.subsets)
    assert np.array_equal(a.coefficients, b.coefficients)
    assert np.array_equal(a.stderr, b.stderr)
    for name in ("evaluations", "evaluations_by_stage", "passes_run"):
        assert a.solver.get(name) == b.solver.get(name), name


def _recall(spec: asj.Spectrum, planted: synthetic.Planted) -> float:
    truth = {s for s in planted.truth if s}
    return len(truth & set(spec.to_dict())) / len(truth)


@pytest.mark.filterwarnings("ignore::actspec_jax.diagnostics.IncompleteResultWarning")  # a full beam
def test_goldreich_levin_passes_are_the_wrapper_bitwise() -> None:
    planted = synthetic.random_sparse_polynomial(jax.random.key(3), 16, 8, max_degree=3, min_abs=0.1)
    key = jax.random.key(5)
    native = asj.GoldreichLevin(passes=3, **GL_FAST)(planted.problem, key=key)
    wrapped = asj.ResidualPasses(asj.GoldreichLevin(passes=1, **GL_FAST), passes=3)(planted.problem, key=key)
    assert len(native.solver["passes_run"]) >= 2  # the loop ran
    _same(native, wrapped)
    one = asj.ResidualPasses(asj.GoldreichLevin(**GL_FAST), passes=1)(planted.problem, key=key)
    _same(one, asj.GoldreichLevin(passes=1, **GL_FAST)(planted.problem, key=key))
    assert "passes_run" not in one.solver


@pytest.fixture(scope="module")
def compressive_runs() -> dict:
    # 30 terms at n = 32 in 400 evaluations: one pass's bins are too crowded even for the
    # multiton decoders (recall 0.63; 20 terms are now all found in one pass by the exact
    # factorization); the second pass on the residual finds the rest.
    planted = synthetic.random_sparse_polynomial(jax.random.key(1), 32, 30, max_degree=3)
    inner = asj.CompressiveSolver(max_degree=3, max_evaluations=BUDGET)
    key = jax.random.key(0)
    return {
        "planted": planted,
        "one": inner(planted.problem, key=key),
        "two": asj.ResidualPasses(inner, passes=2)(planted.problem, key=key),
        "again": asj.ResidualPasses(inner, passes=2)(planted.problem, key=key),
    }


def test_compressive_second_pass_recovers_more(compressive_runs: dict) -> None:
    planted, one, two = compressive_runs["planted"], compressive_runs["one"], compressive_runs["two"]
    assert _recall(one, planted) < 1.0
    assert _recall(two, planted) > _recall(one, planted)
    got = two.to_dict()
    for subset in set(planted.truth) & set(got):
        assert got[subset] == pytest.approx(planted.truth[subset], abs=0.1), subset
    passes = two.solver["passes_run"]
    assert [p["pass"] for p in passes] == [1, 2] and passes[1]["new_subsets"] > 0
    # Unbudgeted: both passes at the inner budget plus the one refit design (the inner plan's held).
    stages = two.solver["evaluations_by_stage"]
    assert stages["residual_passes"] == BUDGET and stages["refit"] == one.solver["plan"]["held"]
    assert two.solver["evaluations"] == sum(stages.values()) == 2 * BUDGET + one.solver["plan"]["held"]
    assert 0.0 <= two.solver["explained_share"] <= 1.0


def test_compressive_passes_same_key_same_result(compressive_runs: dict) -> None:
    two, again = compressive_runs["two"], compressive_runs["again"]
    _same(two, again)


def test_compressive_passes_over_many_outputs_share_each_pass_design() -> None:
    """Two outputs under ResidualPasses: every pass (and the refit design) is evaluated once for
    both, and each output's result is its own single-output ResidualPasses result (same key: same
    designs); the sparse output stops after a pass that finds nothing new while the crowded one
    goes on, as their single loops do."""
    import jax.numpy as jnp

    crowded = synthetic.random_sparse_polynomial(jax.random.key(1), 32, 30, max_degree=3)
    sparse = synthetic.random_sparse_polynomial(jax.random.key(2), 32, 4, max_degree=3, min_abs=0.3)
    both = asj.FunctionProblem(
        lambda x: jnp.stack([p.problem.evaluate_unchecked(x) for p in (crowded, sparse)], -1), 32
    )
    solver = asj.ResidualPasses(asj.CompressiveSolver(max_degree=3, max_evaluations=BUDGET), passes=3)
    counted, seen = counting(both)
    batch = solver(counted, key=jax.random.key(0))
    jax.effects_barrier()
    assert isinstance(batch, asj.SpectrumBatch) and len(batch) == 2
    singles = [solver(p.problem, key=jax.random.key(0)) for p in (crowded, sparse)]
    for k, (got, alone) in enumerate(zip(batch, singles)):
        assert got.output_index == k
        assert got.subset_tuples() == alone.subset_tuples()
        np.testing.assert_allclose(got.coefficients, alone.coefficients, rtol=1e-4, atol=1e-6)
        for a, b in zip(got.solver["passes_run"], alone.solver["passes_run"], strict=True):
            a, b = dict(a), dict(b)
            norm = "residual_norm_sq_estimate"
            assert a.pop(norm, 0.0) == pytest.approx(b.pop(norm, 0.0))
            assert a == b
        assert got.solver["evaluations"] == sum(seen)  # shared: the call's total
    ran = [len(s.solver["passes_run"]) for s in singles]
    assert ran[0] > ran[1] >= 2  # the sparse output stopped first
    assert sum(seen) == max(s.solver["evaluations"] for s in singles)


@pytest.mark.parametrize("passes, budget", [(2, 1200), pytest.param(3, 1500, marks=pytest.mark.slow)])
def test_compressive_budget_is_split_and_never_exceeded(passes: int, budget: int) -> None:
    planted = synthetic.random_sparse_polynomial(jax.random.key(1), 32, 20, max_degree=3)
    problem, seen = counting(planted.problem)
    solver = asj.ResidualPasses(asj.CompressiveSolver(max_degree=3), passes=passes, max_evaluations=budget)
    spec = solver(problem, key=jax.random.key(0))
    jax.effects_barrier()
    assert 0 < sum(seen) <= budget
    assert spec.solver["evaluations"] == sum(spec.solver["evaluations_by_stage"].values()) == sum(seen)
    per_pass = {p["evaluations"] for p in spec.solver["passes_run"]}
    assert (
        per_pass == {spec.solver["max_evaluations_per_pass"]}
        and per_pass.pop() <= (budget - budget // 8) // passes
    )
    assert spec.solver["max_evaluations"] == budget


def test_one_compressive_pass_gets_the_whole_budget() -> None:
    planted = synthetic.random_sparse_polynomial(jax.random.key(1), 32, 20, max_degree=3)
    key = jax.random.key(0)
    wrapped = asj.ResidualPasses(asj.CompressiveSolver(max_degree=3), passes=1, max_evaluations=BUDGET)
    plain = asj.CompressiveSolver(max_degree=3, max_evaluations=BUDGET)
    one, alone = wrapped(planted.problem, key=key), plain(planted.problem, key=key)
    assert one.solver["evaluations"] == alone.solver["evaluations"] == BUDGET  # no refit share held back
    assert np.array_equal(one.subsets, alone.subsets)
    assert np.array_equal(one.coefficients, alone.coefficients)


def test_compressive_budget_below_minimum_names_it() -> None:
    problem = synthetic.random_sparse_polynomial(jax.random.key(0), 32, 4).problem
    with pytest.raises(asj.ActSpecError, match="per pass"):
        asj.ResidualPasses(asj.CompressiveSolver(max_degree=3), passes=4, max_evaluations=400)(
            problem, key=jax.random.key(0)
        )
    with pytest.raises(asj.ActSpecError, match="budget once"):
        asj.ResidualPasses(asj.CompressiveSolver(max_evaluations=600), max_evaluations=1200)(
            problem, key=jax.random.key(0)
        )


@pytest.mark.parametrize("passes", [0, -1, 1.5, True])
def test_bad_passes(passes) -> None:
    with pytest.raises(asj.ActSpecError, match="passes >= 1"):
        asj.ResidualPasses(asj.CompressiveSolver(), passes=passes)


def test_a_solver_without_the_protocol_names_it() -> None:
    with pytest.raises(asj.ActSpecError, match="start_passes") as info:
        asj.ResidualPasses(asj.ExactSolver(), passes=2)
    hooks = ("search_residual", "fit_subsets", "postprocess", "finish")
    assert all(name in str(info.value) for name in hooks)


def test_goldreich_levin_budget_stays_its_own() -> None:
    problem = synthetic.random_sparse_polynomial(jax.random.key(0), 16, 4).problem
    with pytest.raises(asj.ActSpecError, match="passes=2, max_evaluations=B"):
        solver = asj.ResidualPasses(asj.GoldreichLevin(), passes=2, max_evaluations=10_000)
        solver(problem, key=jax.random.key(0))


def test_former_import_paths() -> None:
    from actspec_jax.solvers.common import residual
    from actspec_jax.solvers.gl import residual as gl_residual
    from actspec_jax.solvers.gl import search as goldreich_levin

    assert gl_residual.ResidualProblem is residual.ResidualProblem is goldreich_levin.ResidualProblem
    assert asj.ResidualPasses is asj.solvers.ResidualPasses is residual.ResidualPasses
