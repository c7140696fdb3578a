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

* *in-bin joint decoding* (:func:`_joint_bin`): atoms ``σ_1 … σ_K`` (``K ≤ 3``) added greedily
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

from actspec_jax.solvers.compressive.design import bins_of, signs_of, support_of
from actspec_jax.solvers.compressive.multiton import Code, candidates, combined, joint_bin, score
from actspec_jax.solvers.compressive.search import joint_z, match_supports, null_levels, search_supports
from actspec_jax.solvers.compressive.sums import factor_bin

__all__ = ["peel", "subtract"]

#: Takes of one support per round at most (a term whose bins disagree would otherwise flip forever).
MAX_TAKES = 4
#: Candidates of one joint search rescored and taken while above the null level; searches per
#: round; the loudest bins a matching search looks at (a real layer's 768 bins at 40k
#: evaluations would cost a minute a search, for tail terms the refit fits anyway).
SEARCH_TOP, MAX_SEARCHES, SEARCH_BINS = 32, 6, 96


def subtract(bins: np.ndarray, terms: dict, n: int, hashes, offsets, delays) -> None:
    """Remove known ``terms {subset: coef}`` from every group's bins, in place."""
    if not terms:
        return
    support = np.zeros((len(terms), n), bool)
    for row, subset in enumerate(terms):
        support[row, list(subset)] = True
    coef = np.asarray(list(terms.values()), np.float64)
    where = bins_of(support, hashes)  # [C, K]
    signs = signs_of(support, offsets, delays)  # [C, K, P+1]
    for c in range(bins.shape[0]):
        np.add.at(bins[c].T, where[c], -(coef[:, None] * signs[c]))


def peel(
    bins: np.ndarray,
    *,
    n: int,
    hashes: np.ndarray,
    offsets: np.ndarray,
    delays: np.ndarray,
    decode,
    max_degree: int,
    floor: float,
    chase: int = 0,
    z_min: float = 3.0,
    joint: int = 3,
    pairs: int = 64,
    max_sweeps: int = 256,
    exact_tol: float = 0.0,
    search: str | None = None,
) -> tuple[dict[tuple[int, ...], float], dict[str, int]]:
    """Peel singletons, then multitons, from ``bins: float[C, P+1, J]`` (modified in place).

    Every sweep first accepts the clean singletons (the residual test of the module docstring).
    A sweep that finds none tries, in this order and until one of them accepts a term, the
    in-bin joint decoding of every busy bin (``joint`` atoms at most; 1 turns it off), the
    cross-group-confirmed dominant terms (:func:`~.multiton.score` ``≥ z_min``, Chase depth
    ``chase``), the ``pairs`` best cross-group combined decodes and, with ``search``, the
    joint search of :mod:`~.search` (``'all'``: every support, ``'match'``: those the busy bins'
    reliable signs point to; taken above the null level of their size, ``√(2 ln(d·C(n, |k|)))``,
    rescored after every peel). ``decode`` maps
    ``bool[P]`` sign bits to a support or ``None``. Returns ``{subset: coef}`` and counters
    (``multi``, ``joint``, ``combined``, ``search``: terms taken by each multiton stage;
    ``searches``: joint searches run; ``search_capped``: 1 when the last of the
    :data:`MAX_SEARCHES` allowed still took terms, so more may have been left in the bins).
    """
    code = Code(n, hashes, offsets, delays, decode, max_degree, chase)
    found: dict[tuple[int, ...], float] = {}
    counters = ("sweeps", "accepted", "exact", "multi", "joint", "combined", "search", "decode_failures")
    stats = dict.fromkeys((*counters, "rejected", "searches", "search_capped"), 0)
    cache: dict[tuple[int, int], list[tuple[int, ...]]] = {}  # Chase candidates per untouched bin
    tried: set[tuple[int, int]] = set()  # bins whose joint decode failed and that no peel touched since
    unfactored: set[tuple[int, int]] = set()  # the same for the exact factorization
    takes: dict[tuple[int, ...], int] = {}

    def take(subset: tuple[int, ...], amp: float, stage: str | None = None) -> None:
        takes[subset] = takes.get(subset, 0) + 1
        found[subset] = found.get(subset, 0.0) + amp
        subtract(bins, {subset: amp}, n, hashes, offsets, delays)
        for c, j in enumerate(bins_of(support_of(subset, n), hashes)[:, 0]):
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
        for c, j in busy:
            term = _singleton(bins[c, :, j], c, j, code, noise, stats)
            if term is not None and takes.get(term[0], 0) < MAX_TAKES:
                take(*term)
        if stats["accepted"] == before and exact_tol > 0:  # every non-empty bin: no noise floor here
            for c, j in [(int(c), int(j)) for c, j in zip(*np.nonzero(energy > exact_tol**2))]:
                if (c, j) in unfactored:
                    continue
                unfactored.add((c, j))
                for subset, amp in factor_bin(bins, c, j, code, exact_tol):
                    if takes.get(subset, 0) < MAX_TAKES:
                        take(subset, amp, "exact")
        if stats["accepted"] == before and joint > 1:
            for c, j in busy:
                if (c, j) in tried:
                    continue
                tried.add((c, j))
                terms = joint_bin(bins, c, j, code, noise, joint)
                if bins.shape[0] > 1 and not all(score(bins, k, c, code, 0.0, 0.0)[0] > 0 for k, _ in terms):
                    continue  # another group contradicts an atom's sign
                for subset, amp in terms:
                    take(subset, amp, "joint")
        if stats["accepted"] == before and bins.shape[0] > 1:
            ranked = []
            for c, j in busy:
                if (c, j) not in cache:
                    cache[(c, j)] = candidates(bins[c, :, j], c, j, code)
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
            ranked = (
                search_supports(bins, code, SEARCH_TOP)
                if search == "all"
                else match_supports(bins, heard, code, SEARCH_TOP)
            )
            for _, subset in ranked:
                z, amp = joint_z(bins, subset, code)
                if abs(z) >= levels[len(subset)] and takes.get(subset, 0) < MAX_TAKES:
                    take(subset, amp, "search")
            # the last search allowed still took terms: more may be left (said, not silent)
            stats["search_capped"] = int(stats["searches"] == MAX_SEARCHES and stats["search"] > taken_before)
        if stats["accepted"] == before:
            break
    return found, stats


def _singleton(u: np.ndarray, c: int, j: int, code: Code, noise: float, stats: dict):
    """``(k, a)`` when bin ``u = U[c, :, j]`` passes the singleton test, else ``None``."""
    e = float((u * u).mean())
    if e <= 2.0 * noise:
        return None  # emptied by an earlier peel in this sweep
    subset = code.decode(u[1:] * u[0] < 0)
    if subset is None or len(subset) > code.max_degree:
        stats["decode_failures"] += 1
        return None
    support = support_of(subset, code.n)
    if int(bins_of(support, code.hashes[c : c + 1])[0, 0]) != j:
        stats["rejected"] += 1
        return None
    sign = signs_of(support, code.offsets[c : c + 1], code.delays)[0, 0]
    amp = float((u * sign).mean())
    resid = float(((u - amp * sign) ** 2).mean())
    tolerance = max(2.0 * noise, e / (4.0 * u.shape[0]))
    if resid > tolerance or resid > 0.25 * e or amp * amp < noise:
        stats["rejected"] += 1
        return None
    return subset, amp
