"""Property-based checks (hypothesis; fixed seeds, small budgets in CI, ×20 with the slow profile).

FWHT involution / Parseval / linearity over lengths and dtypes; the exact solver against the
float64 brute force on random tables and sparse polynomials; index transforms against their
textbook definitions (``tests/analysis/test_indices.py``'s literal :class:`Brute`); every large-n solver
(GL, compressive) against the exact spectrum on random planted problems (3 examples each in CI,
60 under the slow profile: each example is a full search).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brute import brute_force_spectrum
from hypothesis import given, settings
from hypothesis import strategies as st
from robustness._hyp import examples
from robustness._tables import TableProblem, polynomial_table, random_terms

import actspec_jax as asj
from actspec_jax.analysis import indices as ix
from actspec_jax.transforms import fwht, ifwht

seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=examples(20))
@given(
    n=st.integers(0, 12), seed=seeds, dtype=st.sampled_from(["float32", "float64"]), batch=st.integers(1, 3)
)
def test_fwht_involution_parseval_linearity(n, seed, dtype, batch):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, batch, 1 << n))
    a, b = rng.standard_normal(2)
    tol = 1e-4 if dtype == "float32" else 1e-10
    with jax.enable_x64(dtype == "float64"):
        X, Y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        fx, fy = fwht(X), fwht(Y)
        assert fx.dtype == X.dtype
        np.testing.assert_allclose(ifwht(fx), x, atol=tol * max(1, n))
        np.testing.assert_allclose(
            np.sum(np.asarray(fx) ** 2, -1), (1 << n) * np.sum(x**2, -1), rtol=tol * 10
        )
        np.testing.assert_allclose(
            fwht(a * X + b * Y), a * np.asarray(fx) + b * np.asarray(fy), atol=tol * 10 * (1 << n)
        )


@settings(max_examples=examples(8))
@given(
    n=st.integers(1, 10) if examples(1) > 1 else st.sampled_from([3, 6, 8]),
    seed=seeds,
    kind=st.sampled_from(["table", "polynomial"]),
)
def test_exact_solver_matches_float64_brute_force(n, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "table":
        table = rng.standard_normal(1 << n)
    else:
        table = polynomial_table(n, random_terms(rng, n, int(rng.integers(1, 6))))
    table = table.astype(np.float32)
    spec = asj.ExactSolver(top_k=1 << n, rtol=0.0)(TableProblem(table))
    truth = brute_force_spectrum(table.astype(np.float64), n)
    got = spec.to_dict()
    for subset, value in truth.items():
        assert got.get(subset, 0.0) == pytest.approx(value, abs=1e-5)


@settings(max_examples=examples(8))
@given(
    n=st.integers(2, 6), seed=seeds, index=st.sampled_from(["SII", "BII", "STII", "FSII", "FBII", "Moebius"])
)
def test_index_transforms_match_textbook_definitions(n, seed, index):
    from analysis.test_indices import Brute, dense_spectrum, game_table

    fourier = np.random.default_rng(seed).normal(size=1 << n) / math.sqrt(1 << n)
    brute = Brute(game_table(fourier, n), n)
    order = min(2, n)
    truth = {"SII": brute.sii, "BII": brute.bii, "STII": brute.stii, "FSII": brute.fsii,
             "FBII": brute.fbii, "Moebius": brute.moebius}[index](order)  # fmt: skip
    with jax.enable_x64(True):
        ours = ix.interaction_index(dense_spectrum(fourier, n), index, order, source="dense")
        shapley = ix.shapley_values(dense_spectrum(fourier, n), source="terms")
    for key, value in truth.items():
        assert ours.get(key, 0.0) == pytest.approx(value, abs=1e-9), key
    np.testing.assert_allclose(shapley, brute.shapley(), atol=1e-10)


LARGE_N_SOLVERS = {
    "gl": lambda: asj.GoldreichLevin(tau=0.1),
    "compressive": lambda: asj.CompressiveSolver(max_degree=None, refit="held", held=4096, rounds=1),
}


@pytest.mark.parametrize("solver_name", ["gl", "compressive"])
@settings(max_examples=examples(3))
@given(n=st.integers(6, 10), seed=seeds, count=st.integers(1, 5))
def test_large_n_solvers_find_every_coefficient_above_two_tau_with_its_sign(solver_name, n, seed, count):
    rng = np.random.default_rng(seed)
    terms = random_terms(rng, n, count)
    table = (polynomial_table(n, terms) + 0.02 * rng.standard_normal(1 << n)).astype(np.float32)
    problem = TableProblem(table)
    exact = asj.ExactSolver(top_k=1 << n, rtol=0.0)(problem).to_dict()
    tau = 0.1
    big = 2 * tau * math.sqrt(float(np.mean(table.astype(np.float64) ** 2)))
    heavy = {s: v for s, v in exact.items() if abs(v) >= big}
    found = LARGE_N_SOLVERS[solver_name]()(problem, key=jax.random.key(seed % 1000)).to_dict()
    missed = [s for s in heavy if s not in found or np.sign(found[s]) != np.sign(heavy[s])]
    spurious = [s for s, v in found.items() if abs(v) >= big and abs(exact.get(s, 0.0)) < 0.8 * big]
    assert not missed and not spurious, (missed, spurious)
