"""The compressive solver as an engine citizen: many outputs from one design, a resumable and
nested query ledger, progress by stage (devices: ``tests/scale/test_multidevice.py``)."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from counting import counting

import actspec_jax as asj
from actspec_jax.diagnostics import IncompleteResultWarning
from actspec_jax.errors import ActSpecError
from actspec_jax.problems.synthetic import random_sparse_polynomial
from actspec_jax.solvers.common.checkpoint import CheckpointError
from actspec_jax.solvers.compressive.design import draw_groups
from actspec_jax.solvers.compressive.stream import StructuredRows, pieces

N, OUTPUTS = 48, 3


def _functions() -> tuple[list, asj.FunctionProblem]:
    """Three planted sparse functions of the same 48 units, and the problem of all three at once."""
    planted = [random_sparse_polynomial(jax.random.key(10 + k), N, 8, max_degree=2) for k in range(OUTPUTS)]

    def f(x: jax.Array) -> jax.Array:
        return jnp.stack([p.problem.evaluate_unchecked(x) for p in planted], axis=-1)

    return planted, asj.FunctionProblem(f, N, name="three_planted")


def _same(a: asj.Spectrum, b: asj.Spectrum) -> None:
    assert a.subset_tuples() == b.subset_tuples()
    np.testing.assert_array_equal(a.coefficients, b.coefficients)
    np.testing.assert_array_equal(a.stderr, b.stderr)


SOLVER = asj.CompressiveSolver(max_degree=2, max_evaluations=2000, singletons="never")


def test_design_is_nested_in_the_bins() -> None:
    """The round drawn at b is the ℓ < 2^b half of the round drawn at b + 1 (same key), and in
    evaluation order its rows are a prefix."""
    key = jax.random.key(4)
    small, large = draw_groups(key, 3, 20, 3), draw_groups(key, 3, 20, 4)
    np.testing.assert_array_equal(small[0], large[0][:, :, :3])
    np.testing.assert_array_equal(small[1], large[1])
    delays = np.eye(20, dtype=bool)[:5]
    a, b = StructuredRows(*small, delays), StructuredRows(*large, delays)
    np.testing.assert_array_equal(
        np.asarray(a.evaluation_chunk(0, a.count)), np.asarray(b.evaluation_chunk(0, a.count))
    )
    values = np.arange(a.count, dtype=np.float64)
    logical = a.logical(values)
    reorder = np.asarray(a.chunk(0, a.count))
    ordered = np.asarray(a.evaluation_chunk(0, a.count))
    np.testing.assert_array_equal(a.logical(ordered), reorder)  # the same permutation for rows
    assert sorted(logical.tolist()) == values.tolist()


def test_pieces_depend_on_start_and_count_only() -> None:
    full = pieces(0, 1000, 128)
    assert sum(size for _, size in full) == 1000 and all(size <= 128 for _, size in full)
    for cut in (128, 512, 896, 992):
        assert full[[s for s, _ in full].index(cut) :] == pieces(cut, 1000, 128)


def test_many_outputs_share_one_evaluation_of_the_plan() -> None:
    """K outputs: one evaluation of the plan, a SpectrumBatch whose every spectrum equals the
    single-output solve of that output with the same key."""
    planted, problem = _functions()
    wrapped, seen = counting(problem)
    batch = SOLVER(wrapped, key=jax.random.key(0))
    jax.effects_barrier()
    plan = SOLVER.plan(N)
    assert isinstance(batch, asj.SpectrumBatch) and len(batch) == OUTPUTS
    assert sum(seen) == plan["total"] == 2000
    for k, (spectrum, truth) in enumerate(zip(batch, planted)):
        assert spectrum.output_index == k and spectrum.solver["evaluations"] == 2000
        assert spectrum.solver["outputs_decoded"] == OUTPUTS
        single = SOLVER(truth.problem, key=jax.random.key(0))
        assert spectrum.subset_tuples() == single.subset_tuples()
        np.testing.assert_allclose(spectrum.coefficients, single.coefficients, rtol=1e-5, atol=1e-6)
        found = {s for s in spectrum.subset_tuples() if s}
        assert set(truth.truth) - {()} <= found


def test_many_outputs_get_their_own_degree_profiles_from_one_estimate() -> None:
    """Without a budget (n > 24) every output's spectrum carries its own degree profile, all from
    one estimate on one set of masks (counted apart), each equal to the single-output solve's."""
    _, problem = _functions()
    wrapped, seen = counting(problem)
    solver = dataclasses.replace(SOLVER, max_evaluations=None)
    batch = solver(wrapped, key=jax.random.key(0))
    jax.effects_barrier()
    assert sum(seen) == solver.plan(N)["total"] + solver.profile_evaluations
    profiles = [asj.DegreeProfile.from_dict(s.solver["degree_profile"]) for s in batch]
    assert all(p.evaluations == solver.profile_evaluations for p in profiles)
    assert not np.allclose(profiles[0].weights, profiles[1].weights)  # each output's own
    single = solver(
        asj.FunctionProblem(lambda x: problem.evaluate_unchecked(x)[..., 1], N), key=jax.random.key(0)
    )
    alone = asj.DegreeProfile.from_dict(single.solver["degree_profile"])
    np.testing.assert_allclose(profiles[1].weights, alone.weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(profiles[1].shares, alone.shares, rtol=1e-4, atol=1e-6)


def test_ledger_resumes_an_interrupted_run_to_the_same_spectrum(tmp_path) -> None:
    """Interrupted inside the evaluation (the progress callback raises KeyboardInterrupt), the
    ledger keeps what was evaluated; the rerun evaluates only the rest and returns the
    uninterrupted run's spectrum, bit for bit."""
    planted, _ = _functions()
    problem = planted[0].problem
    solver = asj.CompressiveSolver(
        max_degree=2, max_evaluations=2000, singletons="never", memory_budget=64 << 10, checkpoint_every_s=0
    )
    fresh = solver(problem, key=jax.random.key(1))
    path = tmp_path / "ledger.npz"

    def stop(done: int, total: int) -> None:
        if done >= 700:
            raise KeyboardInterrupt

    wrapped, seen = counting(problem)  # one problem object: the ledger is tied to the problem
    with pytest.raises(KeyboardInterrupt):
        solver(wrapped, key=jax.random.key(1), progress=stop, checkpoint_path=path)
    assert path.exists()
    jax.effects_barrier()
    seen.clear()
    resumed = solver(wrapped, key=jax.random.key(1), checkpoint_path=path)
    jax.effects_barrier()
    ledger = resumed.solver["ledger"]
    assert 700 <= ledger["reused"] < 2000 and ledger["evaluated"] == 2000 - ledger["reused"]
    assert sum(seen) == ledger["evaluated"] + ledger["verified"] and ledger["verified"] == 4
    _same(resumed, fresh)
    again = solver(wrapped, key=jax.random.key(1), checkpoint_path=path)
    assert again.solver["ledger"]["evaluated"] == 0
    _same(again, fresh)


def test_a_larger_budget_reuses_every_evaluation_of_the_smaller(tmp_path) -> None:
    """2k then 4k on one ledger: the 4k run evaluates exactly 2k new masks and agrees with a fresh
    4k run with the same key."""
    planted, _ = _functions()
    problem = planted[1].problem
    small = asj.CompressiveSolver(max_degree=2, max_evaluations=2000, singletons="never")
    large = asj.CompressiveSolver(max_degree=2, max_evaluations=4000, singletons="never")
    path = tmp_path / "ledger.npz"
    wrapped, seen = counting(problem)
    small(wrapped, key=jax.random.key(2), checkpoint_path=path)
    jax.effects_barrier()
    seen.clear()
    grown = large(wrapped, key=jax.random.key(2), checkpoint_path=path)
    jax.effects_barrier()
    assert grown.solver["ledger"]["reused"] == 2000 and sum(seen) == 2000 + grown.solver["ledger"]["verified"]
    fresh = large(problem, key=jax.random.key(2))
    assert grown.subset_tuples() == fresh.subset_tuples()
    np.testing.assert_allclose(grown.coefficients, fresh.coefficients, rtol=1e-6, atol=1e-7)


def test_foreign_and_corrupt_ledgers_are_refused_with_the_file_named(tmp_path) -> None:
    planted, _ = _functions()
    problem = planted[0].problem
    path = tmp_path / "ledger.npz"
    SOLVER(problem, key=jax.random.key(3), checkpoint_path=path)
    with pytest.raises(CheckpointError, match="written for a different key, so"):
        SOLVER(problem, key=jax.random.key(4), checkpoint_path=path)
    other_degree = dataclasses.replace(SOLVER, max_degree=SOLVER.max_degree + 1)
    with pytest.raises(CheckpointError, match="written for a different max_degree, so"):
        other_degree(problem, key=jax.random.key(3), checkpoint_path=path)
    with pytest.raises(CheckpointError, match="values of a different function"):
        SOLVER(planted[1].problem, key=jax.random.key(3), checkpoint_path=path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        SOLVER(problem, key=jax.random.key(3), checkpoint_path=path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a ledger")
    with pytest.raises(CheckpointError, match=re.escape(str(garbage))) as info:
        SOLVER(problem, key=jax.random.key(3), checkpoint_path=garbage)
    assert "not an .npz archive" in str(info.value) and "pickled" not in str(info.value)


def test_progress_by_stage_is_monotone() -> None:
    _, problem = _functions()
    calls: list[tuple[str, int, int]] = []
    SOLVER(problem, key=jax.random.key(0), progress=lambda d, t, stage: calls.append((stage, d, t)))
    stages = [c[0] for c in calls]
    assert stages[0] == "evaluate" and {"decode", "refit"} <= set(stages)
    first = {s: stages.index(s) for s in ("evaluate", "decode", "refit")}
    assert first["evaluate"] < first["decode"] < first["refit"]
    for stage in ("evaluate", "decode", "refit"):
        done = [d for s, d, _ in calls if s == stage]
        totals = {t for s, _, t in calls if s == stage}
        assert done == sorted(done) and len(totals) == 1 and done[-1] == totals.pop()
    plain: list[tuple[int, int]] = []
    SOLVER(problem, key=jax.random.key(0), progress=lambda d, t: plain.append((d, t)))
    assert plain[-1] == (2000, 2000)


@pytest.mark.parametrize("every", [-1, float("nan"), "often", True])
def test_bad_checkpoint_interval_is_refused(every) -> None:
    planted, _ = _functions()
    with pytest.raises(ActSpecError, match="checkpoint_every_s"):
        asj.CompressiveSolver(max_evaluations=2000, checkpoint_every_s=every)(
            planted[0].problem, key=jax.random.key(0)
        )


@pytest.mark.parametrize(
    "setting, value",
    [
        ("max_evaluations", "x"),
        ("max_evaluations", float("nan")),
        ("max_evaluations", True),
        ("max_evaluations", 0),
        ("max_degree", 2.5),
        ("groups", 0),
        ("groups", "3"),
        ("rounds", "2"),
        ("held", -3),
        ("bins_log2", 3.5),
        ("noise_level", "a"),
        ("noise_level", float("inf")),
        ("profile_evaluations", -5),
        ("degree_profile", "yes"),
        ("memory_budget", -1),
    ],
)
def test_every_setting_is_validated_up_front(setting, value) -> None:
    """Hostile settings raise ActSpecError naming the setting at construction, never a raw error
    from deep inside JAX or NumPy."""
    with pytest.raises(ActSpecError, match=setting):
        asj.CompressiveSolver(**{setting: value})


def test_whole_floats_are_taken_as_ints() -> None:
    planted, _ = _functions()
    solver = asj.CompressiveSolver(max_degree=2.0, max_evaluations=2e3, groups=3.0, singletons="never")
    assert solver.max_evaluations == 2000 and isinstance(solver.groups, int)
    spectrum = solver(planted[0].problem, key=jax.random.key(0))
    assert spectrum.solver["evaluations"] == 2000


def test_a_progress_callback_with_any_third_parameter_gets_the_stage() -> None:
    planted, _ = _functions()
    seen: list[str] = []
    SOLVER(planted[0].problem, key=jax.random.key(0), progress=lambda d, t, st: seen.append(st))
    assert {"evaluate", "decode", "refit"} <= set(seen)


def test_wrong_problem_and_checkpoint_path_are_clear_errors(tmp_path) -> None:
    planted, _ = _functions()
    with pytest.raises(ActSpecError, match="needs a Problem"):
        SOLVER(lambda m: m.sum(-1), key=jax.random.key(0))
    with pytest.raises(ActSpecError, match="must be a file path"):
        SOLVER(planted[0].problem, key=jax.random.key(0), checkpoint_path=123)
    with pytest.raises(ActSpecError, match="is a folder"):
        SOLVER(planted[0].problem, key=jax.random.key(0), checkpoint_path=tmp_path)


def test_an_unexplained_output_is_named_in_its_warning() -> None:
    """Of two outputs, the dense one (a high-frequency cosine of the mask: no sparse part) is
    reported as unexplained, and the warning names that output; the sparse one carries no
    diagnostic."""
    planted = random_sparse_polynomial(jax.random.key(3), 20, 4, max_degree=2, min_abs=0.5)
    w = jax.random.normal(jax.random.key(5), (20,))

    def f(x: jax.Array) -> jax.Array:
        return jnp.stack([planted.problem.evaluate_unchecked(x), jnp.cos(97.0 * (x @ w))], axis=-1)

    problem = asj.FunctionProblem(f, 20)
    with pytest.warns(
        IncompleteResultWarning, match=rf"output {re.escape(problem.output_labels[1])}: "
    ) as seen:
        batch = asj.CompressiveSolver(max_degree=2, max_evaluations=1000)(problem, key=jax.random.key(0))
    assert all(problem.output_labels[0] not in str(w.message) for w in seen)
    assert "diagnostics" not in batch[0].solver
    assert [d["code"] for d in batch[1].solver["diagnostics"]] == ["unexplained"]
