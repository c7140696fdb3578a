"""Decoding a bin of several exactly sparse terms from its real values (private).

A bin of group ``c`` holding ``K`` terms is ``u_p = Σ_i a_i (−1)^{β_{ip}}`` over the delays
``p = 0 … P`` (``β_{i0} = 0``, ``a_i = F[k_i] (−1)^{⟨k_i, o_c⟩}``, ``β_{ip} = ⟨k_i, d_p⟩`` the
BCH syndrome bits of ``k_i``). The sign decoders of :mod:`~.multiton` read one dominant
term from ``sign u_p``. When the function is exactly sparse (no tail, no noise), the *values*
say more: every ``u_p`` is one of the ``2^K`` signed sums ``Σ_i ε_i m_i`` of the magnitudes
``m_i = |a_i|``, and for generic coefficients the sum pins down the signs ``ε`` of every term
at once. So the bin is factored as ``u = E m`` with ``E ∈ {±1}^{(P+1)×K}``:

0. *a gate*: the bin must repeat values (:data:`MIN_REPEATS`), which a tail's values do not;
1. *magnitudes*: two delays whose sign rows differ in term ``i`` alone give
   ``|u_p − u_q| / 2 = m_i`` — with ``(P+1)P/2`` pairs each ``m_i`` recurs about
   ``(P+1)P/2^{K+1}`` times, while sums of several ``m`` recur less and a tail's differences
   not at all; the recurring values (within the tolerance) are the candidates;
2. *the factorization*: for ``K = 1, 2, …`` and every ``K`` of the candidates, every ``u_p``
   must equal some signed sum within the tolerance (the first ``K`` that fits wins);
3. *supports*: column ``i`` of ``E`` against row 0 is ``β_i``; it is BCH-decoded and must
   re-encode to itself, hash to bin ``j`` and respect the degree bound, for *every* term —
   otherwise nothing is taken.

Used only at a tolerance of float32 round-off (``10⁻⁵·rms f``, the solver's ``EXACT_TOL``): on a
function with a tail no bin factors, so the stage accepts nothing there (0 terms on every noisy
planted case measured). Measured on 20 planted terms (n = 100, 500, 1000; 3 draws) at half of
SPEX's smallest full-recall budget (4 bins per group, ≈ 5 terms per bin): every term found, all
by this stage, where the sign decoders found none (``benchmarks/compressive_planted_ours.py``).
Limits: a magnitude must recur among the differences of its own bin (likely up to ≈ 6 terms per
bin at 29 delays), at most :data:`MOST_TERMS` terms, and coefficients must not be equal in
magnitude (two such terms look alike to the sums).
"""

from __future__ import annotations

import itertools

import numpy as np

from actspec_jax.solvers.compressive.design import bins_of, signs_of, support_of
from actspec_jax.solvers.compressive.multiton import Code, Subset

__all__ = ["factor_bin"]

#: Largest number of terms one bin is factored into, and candidate magnitudes searched.
MOST_TERMS, WIDTH = 8, 14
#: A bin is searched only when at least this many pairs of its values are equal (within the
#: tolerance): ``K`` terms give at most ``2^K`` distinct values among the ``P+1`` (29–41), so
#: an exactly sparse bin repeats values (≥ 2 pairs with probability ≈ 0.99 at ``K = 6``, 0.8 at
#: 7, 0.5 at 8), while on MNIST ``relu_0`` at 10k evaluations 1 bin in 192 did.
MIN_REPEATS = 2
#: Sign-table entries × delays evaluated per chunk of candidate sets (memory bound).
CHUNK_ENTRIES = 1 << 22


def _recurring(halved: np.ndarray, tol: float) -> np.ndarray:
    """Magnitudes among ``halved = |u_p − u_q|/2`` (all pairs) seen at least twice (within ``tol``),
    most frequent first."""
    diffs = np.sort(halved)
    diffs = diffs[diffs > tol]
    if diffs.size < 2:
        return diffs[:0]
    starts = np.flatnonzero(np.concatenate([[True], np.diff(diffs) > tol]))
    counts = np.diff(np.concatenate([starts, [diffs.size]]))
    centres = np.add.reduceat(diffs, starts) / counts
    order = np.argsort(-counts, kind="stable")
    keep = order[counts[order] >= 2]
    return centres[keep][:WIDTH]


def _factor(u: np.ndarray, tol: float, most: int) -> np.ndarray | None:
    """``E: float[P+1, K]`` of ±1 with ``u ≈ E m`` and ``E[0] = +1`` (columns signed), or ``None``.

    Returned as the signed coefficient columns' sign patterns relative to delay 0, i.e.
    ``E[p, i] = (−1)^{β_{ip}}``; the amplitudes ``a`` follow by least squares.
    """
    iu = np.triu_indices(u.shape[0], 1)
    halved = np.abs(u[iu[0]] - u[iu[1]]) / 2.0
    if int((halved <= tol / 2.0).sum()) < MIN_REPEATS:
        return None  # not a few signed sums: a tail or noise (and the search would cost ~0.3 s)
    cands = _recurring(halved, tol)
    for k in range(1, min(most, cands.size) + 1):
        eps = 1.0 - 2.0 * ((np.arange(1 << k)[:, None] >> np.arange(k)[None, :]) & 1)  # [2^k, k]
        combos = np.asarray(list(itertools.combinations(range(cands.size), k)), np.int64)
        step = max(1, CHUNK_ENTRIES // ((1 << k) * u.shape[0]))
        for start in range(0, combos.shape[0], step):
            chosen = cands[combos[start : start + step]]  # [G, k]
            table = chosen @ eps.T  # [G, 2^k]
            dist = np.abs(u[None, :, None] - table[:, None, :])  # [G, P+1, 2^k]
            best = dist.min(axis=2)
            fits = np.flatnonzero((best <= tol).all(axis=1))
            for g in fits:
                signs = eps[np.argmin(dist[g], axis=1)]  # [P+1, k]
                rows = signs * signs[0:1]  # relative to delay 0
                if np.linalg.matrix_rank(rows) == k:  # no two terms with the same pattern
                    return rows
    return None


def factor_bin(
    bins: np.ndarray, c: int, j: int, code: Code, tol: float, most: int = MOST_TERMS
) -> list[tuple[Subset, float]]:
    """Terms ``[(k_i, F̂[k_i])]`` that explain bin ``(c, j)`` exactly (see the module docstring), or ``[]``."""
    u = bins[c, :, j]
    rows = _factor(u, tol, most)
    if rows is None:
        return []
    terms, cols = [], []
    for i in range(rows.shape[1]):
        subset = code.decode(rows[1:, i] < 0)
        if subset is None or not subset or len(subset) > code.max_degree:
            return []
        support = support_of(subset, code.n)
        if int(bins_of(support, code.hashes[c : c + 1])[0, 0]) != j:
            return []
        sign = signs_of(support, code.offsets[c : c + 1], code.delays)[0, 0]
        if not np.array_equal(sign * sign[0], rows[:, i]):
            return []  # the decoded word does not re-encode to these bits
        terms.append(subset)
        cols.append(sign)
    design = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(design, u, rcond=None)
    if float(np.abs(u - design @ coef).max()) > tol or len(set(terms)) < len(terms):
        return []
    return list(zip(terms, (float(x) for x in coef)))
