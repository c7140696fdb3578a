"""The compressive solver as an engine: batched jitted decoding, fields up to GF(2^24), masks made
and evaluated in chunks, a refit without the masks at large n, a memory plan that refuses up
front, counted host syncs and one compilation per plan shape."""

from __future__ import annotations

import itertools
import logging

import jax
import numpy as np
import pytest
from bch_reference import reference_decode
from counting import counting

import actspec_jax as asj
from actspec_jax.errors import ActSpecError, MemoryBudgetError
from actspec_jax.problems.synthetic import random_sparse_polynomial, sparse_polynomial
from actspec_jax.solvers.compressive import bch
from actspec_jax.solvers.compressive import solver as solver_module
from actspec_jax.solvers.compressive.design import (
    draw_groups,
    element_tables,
    group_masks,
    structured_characters,
    subset_rows,
)
from actspec_jax.solvers.compressive.refit import fit_characters, least_squares
from actspec_jax.solvers.compressive.stream import StructuredRows, UniformRows
from actspec_jax.solvers.compressive.sums import worth_factoring


def _syndromes(delays: np.ndarray, subsets: list) -> np.ndarray:
    return np.stack([delays[:, list(s)].sum(axis=1) % 2 == 1 for s in subsets])


@pytest.mark.parametrize(
    "n, t",
    [(12, 4), (100, 4), (1000, 3), (4095, 1), (70_000, 4), (262_144, 2), (1_048_575, 4), (300, 6)],
)
def test_batched_decoder_reads_every_low_degree_support(n: int, t: int) -> None:
    """400 random supports of size 0…t decode to themselves in one batched call, from GF(2^4)
    to GF(2^20) (the host decoder stopped at 2^16 − 1), Chien search included (t = 6); random
    syndromes decode only to supports that re-encode to them."""
    rng = np.random.default_rng(n + t)
    delays = bch.bch_delays(n, t)
    subsets = [
        tuple(sorted(int(i) for i in rng.choice(n, rng.integers(0, t + 1), replace=False)))
        for _ in range(400)
    ]
    decoder = bch.Decoder(n, t)
    assert decoder(_syndromes(delays, subsets)) == subsets
    noise = rng.random((1000, delays.shape[0])) < 0.5
    for bits, got in zip(noise, decoder(noise)):
        if got is not None:
            assert len(got) <= t
            assert np.array_equal(_syndromes(delays, [got])[0], bits)


@pytest.mark.parametrize("n, t", [(60, 4), (1000, 3), (5000, 2)])
def test_batched_decoder_agrees_with_the_host_decoder(n: int, t: int) -> None:
    """On codewords, near-codewords (1–3 flipped bits) and noise, the batched decode equals the
    scalar host decoder it replaced, result for result (``None`` included)."""
    rng = np.random.default_rng(7)
    delays = bch.bch_delays(n, t)
    subsets = [
        tuple(sorted(int(i) for i in rng.choice(n, rng.integers(0, t + 1), replace=False))) for _ in range(60)
    ]
    words = _syndromes(delays, subsets)
    flipped = words.copy()
    for row in flipped:
        row[rng.choice(row.size, rng.integers(1, 4), replace=False)] ^= True
    bits = np.concatenate([words, flipped, rng.random((60, delays.shape[0])) < 0.5])
    got = bch.Decoder(n, t)(bits)
    assert got == [reference_decode(b, n, t) for b in bits]


def test_n_beyond_the_largest_field_is_refused_before_any_evaluation() -> None:
    n = 1 << bch.MAX_FIELD_BITS
    problem, seen = counting(asj.FunctionProblem(lambda x: x[:, 0], n))
    with pytest.raises(ActSpecError, match=r"GF\(2\^25\).*16,777,215"):
        asj.CompressiveSolver(max_evaluations=20_000, max_degree=2)(problem, key=jax.random.key(0))
    jax.effects_barrier()
    assert seen == []


def test_streamed_masks_equal_the_materialised_design() -> None:
    """Chunks of the structured rows are the design's masks; the characters read from the design
    (no masks) equal the products of the masks' columns; uniform rows are the same whichever chunks
    they are made in, and their columns are those of the masks."""
    n, b = 70, 3
    hashes, offsets = draw_groups(jax.random.key(0), 3, n, b)
    delays = np.concatenate([np.zeros((1, n), bool), bch.bch_delays(n, 2)])
    masks = np.asarray(group_masks(hashes, offsets, delays, b))
    rows = StructuredRows(hashes, offsets, delays)
    assert rows.count == masks.shape[0]
    assert np.array_equal(
        np.concatenate([np.asarray(rows.chunk(s, 8)) for s in range(0, rows.count, 8)]), masks
    )
    subsets = [(), (3,), (5, 9, 60), (1, 2, 3, 69)]
    phi = structured_characters(element_tables(hashes, offsets, delays), subset_rows(subsets, n), b)
    assert np.array_equal(phi, np.stack([masks[:, list(s)].prod(axis=1) for s in subsets], axis=1))
    uniform = UniformRows(jax.random.key(3), 200, n)
    whole = np.asarray(uniform.chunk(0, 200))
    parts = np.concatenate([np.asarray(uniform.chunk(s, z)) for s, z in [(0, 128), (128, 64), (192, 8)]])
    assert np.array_equal(whole, parts) and abs(whole.mean()) < 0.05
    assert np.array_equal(uniform.columns(np.array([0, 5, 69])), whole[:, [0, 5, 69]] < 0)


def test_the_refit_from_characters_equals_the_refit_from_masks() -> None:
    """Least squares with HC1 errors on explicit characters (the large-n refit) equals the
    chunked, padded one on the masks."""
    rng = np.random.default_rng(2)
    masks = np.where(rng.random((3000, 30)) < 0.5, -1.0, 1.0).astype(np.float32)
    subsets = [(), (1,), (2, 7), (3, 4, 29)]
    phi = np.stack([masks[:, list(s)].prod(axis=1) for s in subsets], axis=1)
    values = phi @ np.array([0.5, 1.0, -0.7, 0.3]) + 0.2 * np.sin(7 * masks[:, 0] + masks.sum(1))
    support = np.zeros((4, 30), bool)
    for row, s in enumerate(subsets):
        support[row, list(s)] = True
    coef, err, mse = least_squares(masks, values, support)
    coef2, err2, mse2 = fit_characters(phi, values)
    np.testing.assert_allclose(coef2, coef, atol=2e-5)
    np.testing.assert_allclose(err2, err, rtol=1e-3)
    assert mse2 == pytest.approx(mse, rel=1e-3)


def test_a_planted_spectrum_beyond_the_old_field_is_recovered_with_masks_never_kept() -> None:
    """n = 70,000 (GF(2^17), past the host decoder's limit), 8 planted terms of degree ≤ 2 at
    3,000 evaluations: every term found to 1e-4, no other; the refit fits the peeled support from
    its characters (``refit_columns = 'peeled'``), and the plan's memory is linear in n."""
    n = 70_000
    poly = random_sparse_polynomial(jax.random.key(3), n, 8, max_degree=2, min_abs=0.3)
    solver = asj.CompressiveSolver(max_evaluations=3000, max_degree=2)
    spectrum = solver(poly.problem, key=jax.random.key(1))
    found = {k: v for k, v in spectrum.to_dict().items() if abs(v) > 1e-3}
    assert set(found) == set(poly.truth)
    assert max(abs(found[k] - v) for k, v in poly.truth.items()) < 1e-4
    assert spectrum.solver["refit_columns"] == "peeled"
    memory = solver.memory(n)
    assert memory["design"] < 200 * n and memory["search"] < 80 * (n + 1) + 64 * 2_000_000 + 1


def test_host_syncs_are_counted_and_do_not_grow_with_the_bins() -> None:
    """Host syncs of a solve are counted in its metadata; the decode is one batched call per
    stage and sweep, so at 4× the bins (and 4× the evaluations) the count stays within the same
    small bound — the host decoder made one call per bin and delay pattern (thousands)."""
    poly = random_sparse_polynomial(jax.random.key(4), 200, 12, max_degree=2, min_abs=0.3)
    counts = []
    for bits in (4, 6):
        solver = asj.CompressiveSolver(bins_log2=bits, rounds=1, max_degree=2, held=256)
        spectrum = solver(poly.problem, key=jax.random.key(2))
        syncs = spectrum.solver["host_syncs"]
        sweeps = sum(r["sweeps"] for r in spectrum.solver["rounds_run"])
        assert syncs["total"] == sum(v for k, v in syncs.items() if k != "total")
        assert syncs["decode"] <= 4 * sweeps and syncs["evaluate"] == 2 and syncs["bins"] == 1
        counts.append(syncs["total"])
    assert max(counts) <= 40, counts


def test_a_second_solve_compiles_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Decode, mask generation, evaluation and refit compile once per plan shape: a second solve
    of the same plan (another key, so other terms and other bins) compiles nothing."""
    poly = random_sparse_polynomial(jax.random.key(5), 300, 10, max_degree=4, min_abs=0.3)
    solver = asj.CompressiveSolver(max_evaluations=3000)
    solver(poly.problem, key=jax.random.key(0))
    caplog.clear()
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        solver(poly.problem, key=jax.random.key(1))
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert not compiles, compiles[:3]


def test_a_plan_that_does_not_fit_in_memory_is_refused_before_any_evaluation(monkeypatch) -> None:
    problem, seen = counting(asj.FunctionProblem(lambda x: x[:, 0] * x[:, 1], 5000))
    solver = asj.CompressiveSolver(max_evaluations=40_000)
    monkeypatch.setattr(solver_module, "available_memory", lambda: 100 << 20)
    with pytest.raises(
        MemoryBudgetError, match=r"needs about .* GiB .* 100\.0 MiB is available.*max_evaluations"
    ):
        solver(problem, key=jax.random.key(0))
    jax.effects_barrier()
    assert seen == []
    memory = solver.memory(5000)
    assert memory["peak"] == memory["design"] + memory["values"] + max(
        memory["evaluation"], memory["search"], memory["refit"]
    )


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_a_bad_memory_budget_is_refused(bad) -> None:
    with pytest.raises(ActSpecError, match="memory_budget"):
        asj.CompressiveSolver(max_evaluations=2000, memory_budget=bad)(
            asj.FunctionProblem(lambda x: x[:, 0], 20), key=jax.random.key(0)
        )


def test_progress_reports_every_evaluation() -> None:
    problem = sparse_polynomial(40, {(1,): 1.0, (2, 3): 0.5}).problem
    seen: list[tuple[int, int]] = []
    spectrum = asj.CompressiveSolver(max_evaluations=2000)(
        problem, key=jax.random.key(0), progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (spectrum.solver["evaluations"], spectrum.solver["evaluations"])
    assert all(a[0] < b[0] for a, b in itertools.pairwise(seen))
    with pytest.raises(ActSpecError, match="progress"):
        asj.CompressiveSolver(max_evaluations=2000)(problem, key=jax.random.key(0), progress="yes")


def test_the_factorization_gate_passes_exact_bins_and_not_chance_repeats() -> None:
    """Exactly sparse bins (signed sums of 3–6 magnitudes) pass the gate; dense bins whose values
    came within the tolerance of each other by chance (float32-rounded normals, 37 delays) do not."""
    rng = np.random.default_rng(0)
    exact = []
    for k in (3, 4, 5, 6):
        m = rng.uniform(0.3, 1.0, k)
        exact.append((1 - 2 * (rng.random((37, k)) < 0.5)) @ m)
    dense = rng.normal(0, 0.02, (600, 37)).astype(np.float32).astype(np.float64)
    tol = 1.7e-5
    assert worth_factoring(np.stack(exact), tol).all()
    chance = np.array(
        [(np.abs(v[:, None] - v[None, :])[np.triu_indices(37, 1)] <= tol).sum() >= 2 for v in dense]
    )
    assert chance.sum() > 5  # the old gate (≥ 2 repeats) let these through
    assert not worth_factoring(dense, tol).any()


def test_the_iterative_refit_matches_the_explicit_gram(monkeypatch) -> None:
    """Above ``ITERATIVE_ABOVE`` columns (here all 2,016 pairs of 64 units, the 64 singletons and a
    few higher-degree terms, on 12,000 masks) conjugate gradients on the implicit pair columns give
    the explicit Gram's coefficients to 1e-2 of a standard error, and the approximate standard
    errors ``√Σe² / (N − K)`` are within 10 % of the exact HC1 ones."""
    from actspec_jax.solvers.compressive import refit

    rng = np.random.default_rng(3)
    n, count = 64, 12_000
    masks = np.where(rng.random((count, n)) < 0.5, -1.0, 1.0).astype(np.float32)
    subsets = [(), *((i,) for i in range(n)), *itertools.combinations(range(n), 2), (1, 2, 3), (4, 5, 6, 7)]
    support = np.zeros((len(subsets), n), bool)
    for row, s in enumerate(subsets):
        support[row, list(s)] = True
    truth = rng.normal(0, 0.05, len(subsets))
    truth[0] = -6.0  # a large mean, as on the sentiment layer
    values = refit.predict(masks, subsets, truth, n) + 0.05 * np.sin(masks @ rng.normal(size=n))
    coef, err, mse = refit.least_squares(masks, values, support)
    monkeypatch.setattr(refit, "ITERATIVE_ABOVE", 10**9)
    exact, exact_err, _ = refit.least_squares(masks, values, support)
    assert np.abs(coef - exact).max() < 1e-2 * exact_err.min()  # both accumulate in float32
    direct = float(np.mean((values - refit.predict(masks, subsets, coef, n)) ** 2))
    assert mse == pytest.approx(direct, rel=1e-3)  # (the Gram's Σv² − 2cᵀΦᵀv + cᵀGc cancels at mean −6)
    ratio = exact_err / err
    assert ratio.min() > 0.9 and ratio.max() < 1.1, (ratio.min(), ratio.max())
