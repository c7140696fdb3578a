"""Singleton and multiton decoding, and peeling, over the bins of one round (private).

Host-side, float64. Bins are ``U: float[C, P+1, J]`` (group, delay, bin; delay 0 is
``d = 0``). A bin ``u = U[c, :, j]`` is tried as a singleton ``F[k]`` when its mean energy
exceeds the noise floor:

1. bits ``β_p = [u_p · u_0 < 0]`` for ``p ≥ 1`` (the signs relative to the undelayed value);
2. support ``k`` from the bits: the BCH syndrome decoder (degree-bounded) or the bits
   themselves (unit delays, unbounded);
3. checks: ``k``'s bin in group ``c`` is ``j`` (``b`` free parity checks), ``|k| ≤`` the
   degree bound, and the residual ``mean_p (u_p − a·σ_p)²`` with ``σ_p = (−1)^{⟨k, o_c ⊕ d_p⟩}``
   and ``a = mean_p u_p σ_p`` is at most ``max(2σ̂², e/(4(P+1)))`` (``σ̂²`` the noise floor per
   bin value, ``e`` the bin's energy) and at most ``e/4``; ``a² ≥ σ̂²``. The relative bound
   ``e/(4(P+1))`` is a quarter of what one wrong sign among the ``P+1`` values costs
   (``≈ 4e/(P+1)``): a low quantile of the energies underestimates the noise of one bin when
   the noise is a few small coefficients per bin (χ²₁-like energies), and without it a
   clean singleton over a faint floor was rejected (n=7, one degree-4 term, bins_log2=6).

**Multitons.** With ``s`` terms in ``C·2^b`` bins, plain peeling stalls once few bins are
singletons (20 terms in 3 groups × 8 bins: 6 found). A sweep that accepts no singleton
decodes the bins that hold several terms, in three ways, each verified before a term is peeled:

* *in-bin joint decoding* (:func:`~.multiton.joint_bins`): atoms ``σ_1 … σ_K`` (``K ≤ 3``) added greedily
  from the Chase candidates of the least-squares residual until the residual is at the
  singleton tolerance — ``u`` is explained by ``K`` hash-consistent BCH words;
* *successive interference cancellation* (:func:`_score`): in ``u = Σ_i c_i σ_i`` the sign of
  ``u_p`` is the dominant term's wherever the others do not outweigh it (always for two
  terms: ``|c₁ ± c₂|`` has the sign of ``c₁``), so its support is decoded from the signs
  (Chase: also with the least reliable ``|u_p|`` flipped); it is *confirmed* when the bins it
  hashes to in the other groups correlate with its character (``z``-score of
  :func:`_confirmed`) and peeled with the least-squares amplitude over all groups;
* *cross-group soft combining* (:func:`_combined`): the delays are shared by the groups, so a
  term's bins in two groups are parallel up to sign; their aligned sum decodes terms that the
  noise hides in each bin alone (√2 the SNR).

Before those, when ``exact_tol > 0``, every non-empty bin is *factored* exactly
(:func:`~.sums.factor_bin`): on an exactly sparse function each value is a signed sum of the
bin's magnitudes, which gives every term's syndrome at once (up to 8 terms a bin; accepts
nothing where a tail or noise is present).

When all of those stall, the *joint search* (:mod:`~.search`) scores supports against all
groups' bins at once — ``z = Σ_c a_c / √(Σ_c e_c/(P+1))``, no bin's signs needed — and takes
those above the largest score a wrong support of their size would reach (``√(2 ln(d·C(n,
|k|)))``): over every support of degree ≤ 4 while that is cheap (n ≤ 107), else over the pairs
of halves the loudest bins' most reliable signs point to; at most :data:`MAX_SEARCHES` a round.

An accepted ``(k, a)`` is subtracted from its bin in *every* group (peeling), which can turn
collisions elsewhere into singletons; sweeps repeat until one accepts nothing. The noise floor
``σ̂²`` is re-estimated every sweep as the 10 % quantile of the bin energies (most bins of a
sparse spectrum are empty, and a long tail or additive noise spreads evenly, so a low quantile measures the
non-sparse part; a median overestimates it once most bins hold a term and then rejects good
singletons — measured on 20 terms in 16 bins),
and never below the user's ``noise_level·Var f / 2^b``. A coefficient found twice adds up
(a later singleton of the same support corrects an amplitude taken from a multiton).
"""

from __future__ import annotations

import numpy as np

from actspec_jax.solvers.compressive.multiton import Code, combined, joint_bins, many_candidates, score
from actspec_jax.solvers.compressive.search import (
    joint_z,
    match_supports,
    null_levels,
    pairs_affordable,
    search_bins,
    search_supports,
)
from actspec_jax.solvers.compressive.sums import factor_bin, worth_factoring

__all__ = ["peel", "subtract"]

#: Takes of one support per round at most (a term whose bins disagree would otherwise flip forever).
MAX_TAKES = 4
#: Candidates of one joint search rescored and taken while above the null level; searches per
#: round; the loudest bins a matching search looks at (a real layer's 768 bins at 40k
#: evaluations would cost a minute a search, for tail terms the refit fits anyway).
SEARCH_TOP, MAX_SEARCHES, SEARCH_BINS = 32, 6, 96


def subtract(bins: np.ndarray, terms: dict, code: Code) -> None:
    """Remove known ``terms {subset: coef}`` from every group's bins, in place."""
    if not terms:
        return
    subsets = list(terms)
    coef = np.asarray(list(terms.values()), np.float64)
    where = code.bins(subsets)  # [C, K]
    signs = code.signs(subsets)  # [C, K, P+1]
    for c in range(bins.shape[0]):
        np.add.at(bins[c].T, where[c], -(coef[:, None] * signs[c]))


def peel(
    bins: np.ndarray,
    code: Code,
    *,
    floor: float,
    z_min: float = 3.0,
    joint: int = 3,
    pairs: int = 64,
    max_sweeps: int = 256,
    exact_tol: float = 0.0,
    search: str | None = None,
    deep: bool = False,
) -> tuple[dict[tuple[int, ...], float], dict[str, int]]:
    """Peel singletons, then multitons, from ``bins: float[C, P+1, J]`` (modified in place).

    Every sweep first accepts the clean singletons (the residual test of the module docstring).
    A sweep that finds none tries, in this order and until one of them accepts a term, the
    in-bin joint decoding of every busy bin (``joint`` atoms at most; 1 turns it off), the
    cross-group-confirmed dominant terms (:func:`~.multiton.score` ``≥ z_min``, Chase depth
    ``chase``), the ``pairs`` best cross-group combined decodes and, with ``search``, the
    joint search of :mod:`~.search` (``'all'``: every support, ``'match'``: those the busy bins'
    reliable signs point to; taken above the null level of their size, ``√(2 ln(d·C(n, |k|)))``,
    rescored after every peel). ``code`` is the round's design and decoder
    (:class:`~.multiton.Code`). Returns ``{subset: coef}`` and counters
    (``multi``, ``joint``, ``combined``, ``search``: terms taken by each multiton stage;
    ``searches``: joint searches run; ``search_capped``: 1 when the last of the
    :data:`MAX_SEARCHES` allowed still took terms, so more may have been left in the bins;
    ``pair_halves``: 1 when a matching search also paired pairs, i.e. looked for degree 3–4 supports
    — always at small ``n``, else only once a term of degree > 2 is known (``deep``: from an
    earlier round, or found in this one), :func:`~.search.pairs_affordable`: on real layers, whose
    terms the search finds are singletons and pairs, this keeps the search linear in ``n``);
    ``search_bins``: the most loud bins a matching search looked at (fewer than the
    :data:`SEARCH_BINS` heard at large ``n``, :func:`~.search.search_bins`).
    """
    n, max_degree = code.n, code.max_degree
    found: dict[tuple[int, ...], float] = {}
    counters = ("sweeps", "accepted", "exact", "multi", "joint", "combined", "search", "decode_failures")
    extra = ("rejected", "searches", "search_capped", "pair_halves", "search_bins")
    stats = dict.fromkeys((*counters, *extra), 0)
    cache: dict[tuple[int, int], list[tuple[int, ...]]] = {}  # Chase candidates per untouched bin
    tried: set[tuple[int, int]] = set()  # bins whose joint decode failed and that no peel touched since
    unfactored: set[tuple[int, int]] = set()  # the same for the exact factorization
    takes: dict[tuple[int, ...], int] = {}

    def take(subset: tuple[int, ...], amp: float, stage: str | None = None) -> None:
        takes[subset] = takes.get(subset, 0) + 1
        found[subset] = found.get(subset, 0.0) + amp
        subtract(bins, {subset: amp}, code)
        for c, j in enumerate(code.bins([subset])[:, 0]):
            cache.pop((c, int(j)), None)
            tried.discard((c, int(j)))
            unfactored.discard((c, int(j)))
        stats["accepted"] += 1
        if stage:
            stats[stage] += 1

    for _ in range(max_sweeps):
        stats["sweeps"] += 1
        before = stats["accepted"]
        energy = (bins * bins).mean(axis=1)  # [C, J]
        noise = max(float(np.quantile(energy, 0.1)), floor)
        busy = [(int(c), int(j)) for c, j in zip(*np.nonzero(energy > 2.0 * noise))]
        touched: set[tuple[int, int]] = set()  # bins a take of this sweep changed: retried next sweep
        for c, j, subset, amp in _singletons(bins, busy, code, noise, stats):
            if (c, j) not in touched and takes.get(subset, 0) < MAX_TAKES:
                take(subset, amp)
                touched.update(enumerate(int(b) for b in code.bins([subset])[:, 0]))
        if stats["accepted"] == before and exact_tol > 0:  # every non-empty bin: no noise floor here
            fresh = [(int(c), int(j)) for c, j in zip(*np.nonzero(energy > exact_tol**2))]
            fresh = [bin_ for bin_ in fresh if bin_ not in unfactored]
            unfactored.update(fresh)
            gate = worth_factoring(np.stack([bins[c, :, j] for c, j in fresh]), exact_tol) if fresh else []
            for c, j in [bin_ for bin_, ok in zip(fresh, gate) if ok]:
                for subset, amp in factor_bin(bins, c, j, code, exact_tol):
                    if takes.get(subset, 0) < MAX_TAKES:
                        take(subset, amp, "exact")
        if stats["accepted"] == before and joint > 1:
            fresh = [bin_ for bin_ in busy if bin_ not in tried]
            tried.update(fresh)
            touched = set()  # a take changes the bins of its term: those are retried next sweep
            for (c, j), terms in zip(fresh, joint_bins(bins, fresh, code, noise, joint)):
                if not terms or (c, j) in touched:
                    continue
                if bins.shape[0] > 1 and not all(score(bins, k, c, code, 0.0, 0.0)[0] > 0 for k, _ in terms):
                    continue  # another group contradicts an atom's sign
                for subset, amp in terms:
                    take(subset, amp, "joint")
                    touched.update(enumerate(int(b) for b in code.bins([subset])[:, 0]))
        if stats["accepted"] == before and bins.shape[0] > 1:
            ranked = []
            fresh = [(c, j) for c, j in busy if (c, j) not in cache]
            cache.update(zip(fresh, many_candidates([bins[c, :, j] for c, j in fresh], fresh, code)))
            for c, j in busy:
                ranked += [
                    (z, k, c) for k in cache[(c, j)] if (z := score(bins, k, c, code, noise, z_min)[0]) > 0
                ]
            for _, subset, c in sorted(ranked, key=lambda row: -row[0]):
                z, amp = score(bins, subset, c, code, noise, z_min)
                if z > 0 and takes.get(subset, 0) < MAX_TAKES:  # still confirmed after earlier peels
                    take(subset, amp, "multi")
        if stats["accepted"] == before and bins.shape[0] > 1:
            for subset, c in combined(bins, busy, code, pairs):
                z, amp = score(bins, subset, c, code, noise, z_min)
                if z > 0 and subset not in found:
                    take(subset, amp, "combined")
        if stats["accepted"] == before and search and bins.shape[0] > 1 and stats["searches"] < MAX_SEARCHES:
            # the best joint scores, each rescored on the bins the ones before left; a weak term's
            # bins need not be busy (it is seen in all groups at once)
            stats["searches"] += 1
            taken_before = stats["search"]
            levels = null_levels(n, max_degree)
            loud = np.argsort(-energy, axis=None)[:SEARCH_BINS]
            heard = [divmod(int(f), energy.shape[1]) for f in loud if energy.flat[f] > noise]
            if search == "all":
                ranked = search_supports(bins, code, SEARCH_TOP)
            else:  # pairs as halves (degree 3–4 supports) once such terms are known to exist
                pair_halves = pairs_affordable(n, deep or any(len(k) > 2 for k in found))
                stats["pair_halves"] = max(stats["pair_halves"], int(pair_halves))
                ranked = match_supports(bins, heard, code, SEARCH_TOP, pair_halves=pair_halves)
                stats["search_bins"] = max(stats["search_bins"], min(len(heard), search_bins(n)))
            for _, subset in ranked:
                z, amp = joint_z(bins, subset, code)
                if abs(z) >= levels[len(subset)] and takes.get(subset, 0) < MAX_TAKES:
                    take(subset, amp, "search")
            # the last search allowed still took terms: more may be left (said, not silent)
            stats["search_capped"] = int(stats["searches"] == MAX_SEARCHES and stats["search"] > taken_before)
        if stats["accepted"] == before:
            break
    return found, stats


def _singletons(bins: np.ndarray, busy: list[tuple[int, int]], code: Code, noise: float, stats: dict) -> list:
    """``[(c, j, k, a)]`` for the busy bins ``(c, j)`` of ``bins`` that pass the singleton test
    (module docstring), all decoded in one batched call and checked as arrays."""
    if not busy:
        return []
    cs, js = (np.asarray(v, np.int64) for v in zip(*busy))
    u = bins[cs, :, js]  # [B, P+1]
    decoded = code.decode(u[:, 1:] * u[:, :1] < 0)
    good = [i for i, k in enumerate(decoded) if k is not None and len(k) <= code.max_degree]
    stats["decode_failures"] += len(busy) - len(good)
    if not good:
        return []
    subsets = [decoded[i] for i in good]
    pick = np.asarray(good)
    where = code.bins(subsets)[cs[pick], np.arange(len(good))]
    sign = code.signs(subsets)[cs[pick], np.arange(len(good))]  # [G, P+1]
    v = u[pick]
    e = (v * v).mean(axis=1)
    amp = (v * sign).mean(axis=1)
    resid = ((v - amp[:, None] * sign) ** 2).mean(axis=1)
    tolerance = np.maximum(2.0 * noise, e / (4.0 * v.shape[1]))
    ok = (where == js[pick]) & (resid <= tolerance) & (resid <= 0.25 * e) & (amp * amp >= noise)
    stats["rejected"] += int((~ok).sum())
    return [(int(cs[i]), int(js[i]), subsets[g], float(amp[g])) for g, i in enumerate(pick) if ok[g]]
