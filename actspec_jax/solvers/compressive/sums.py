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

from actspec_jax.solvers.compressive.multiton import Code, Subset

__all__ = ["factor_bin", "worth_factoring"]

#: Largest number of terms one bin is factored into, and candidate magnitudes searched.
MOST_TERMS, WIDTH = 8, 14
#: A bin is searched only when at least this many pairs of its values are equal (within the
#: tolerance): ``K`` terms give at most ``2^K`` distinct values among the ``P+1`` (29–41), so
#: an exactly sparse bin repeats values (≥ 2 pairs with probability ≈ 0.99 at ``K = 6``, 0.8 at
#: 7, 0.5 at 8), while on MNIST ``relu_0`` at 10k evaluations 1 bin in 192 did.
MIN_REPEATS = 2
#: ... and only when that many are unlikely to be chance near-coincidences of a dense bin's values:
#: ``P(Poisson(λ) ≥ repeats) ≤ GATE_P``, with ``λ`` the count expected at the tolerance from the
#: pairs within ``WIDE`` times it (a dense function's values are locally uniform; an exactly
#: sparse bin's differences are discrete). On a random 20→256→5 MLP at 5,000 evaluations the
#: repeat count alone let 595 bins through (18 s of factoring, nothing found): chance pairs there
#: have ``λ ≈ 0.2``, so 2 repeats have ``P ≈ 0.02``.
GATE_P, WIDE = 1e-4, 64
#: Sign-table entries × delays evaluated per chunk of candidate sets (memory bound).
CHUNK_ENTRIES = 1 << 22


def worth_factoring(values: np.ndarray, tol: float) -> np.ndarray:
    """``bool[B]``: which bins ``values: float[B, P+1]`` repeat values more than chance allows
    (the gate of :data:`MIN_REPEATS` and :data:`GATE_P`), all bins at once.

    Pairs within ``tol`` (``near``) and within ``WIDE·tol`` (``wide``) are counted from the
    sorted values; ``λ = (wide − near)/(WIDE − 1)`` is the chance count at ``tol``."""
    from scipy.stats import poisson

    v = np.sort(np.asarray(values, np.float64), axis=1)
    near = np.zeros(v.shape[0], np.int64)
    wide = np.zeros(v.shape[0], np.int64)
    for lag in range(1, v.shape[1]):
        gap = v[:, lag:] - v[:, :-lag]
        near += (gap <= tol).sum(axis=1)
        wide += (gap <= WIDE * tol).sum(axis=1)
    chance = (wide - near) / (WIDE - 1.0)
    return (near >= MIN_REPEATS) & (poisson.sf(near - 1, chance) <= GATE_P)


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
    decoded = code.decode(rows[1:].T < 0)  # one batched decode of every column
    if any(k is None or not k or len(k) > code.max_degree for k in decoded):
        return []
    terms = list(decoded)
    if (code.bins(terms)[c] != j).any():
        return []
    signs = code.signs(terms)[c]  # [K, P+1]
    if not np.array_equal(signs * signs[:, :1], rows.T):
        return []  # a decoded word does not re-encode to these bits
    cols = list(signs)
    design = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(design, u, rcond=None)
    if float(np.abs(u - design @ coef).max()) > tol or len(set(terms)) < len(terms):
        return []
    return list(zip(terms, (float(x) for x in coef)))
