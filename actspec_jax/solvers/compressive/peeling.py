"""Singleton detection, support recovery and peeling over the bins of one round (private).

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

An accepted ``(k, a)`` is subtracted from its bin in *every* group (peeling), which can turn
collisions elsewhere into singletons; sweeps repeat until one accepts nothing. The noise floor
``σ̂²`` is re-estimated every sweep as the 10 % quantile of the bin energies (most bins of a
sparse spectrum are empty, and a long tail or additive noise spreads evenly, so a low quantile measures the
non-sparse part; a median overestimates it once most bins hold a term and then rejects good
singletons — measured on 20 terms in 16 bins),
and never below the user's ``noise_level·Var f / 2^b``. A coefficient found twice adds up.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from actspec_jax.solvers.compressive.design import bins_of

__all__ = ["peel", "subtract"]


def _signs(support: np.ndarray, offsets: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """``σ[C, K, P+1] = (−1)^{⟨k, o_c ⊕ d_p⟩}`` for ``support: bool[K, n]``."""
    k = support.astype(np.int64)
    base = (k @ offsets.T.astype(np.int64)) & 1  # [K, C]
    shift = (k @ delays.T.astype(np.int64)) & 1  # [K, P+1]
    parity = base.T[:, :, None] ^ shift[None, :, :]
    return 1.0 - 2.0 * parity


def subtract(bins: np.ndarray, terms: dict, n: int, hashes, offsets, delays) -> None:
    """Remove known ``terms {subset: coef}`` from every group's bins, in place."""
    if not terms:
        return
    support = np.zeros((len(terms), n), bool)
    for row, subset in enumerate(terms):
        support[row, list(subset)] = True
    coef = np.asarray(list(terms.values()), np.float64)
    where = bins_of(support, hashes)  # [C, K]
    signs = _signs(support, offsets, delays)  # [C, K, P+1]
    for c in range(bins.shape[0]):
        np.add.at(bins[c].T, where[c], -(coef[:, None] * signs[c]))


def peel(
    bins: np.ndarray,
    *,
    n: int,
    hashes: np.ndarray,
    offsets: np.ndarray,
    delays: np.ndarray,
    decode: Callable[[np.ndarray], tuple[int, ...] | None],
    max_degree: int,
    floor: float,
    max_sweeps: int = 32,
) -> tuple[dict[tuple[int, ...], float], dict[str, int]]:
    """Peel singletons from ``bins`` (modified in place) → ``{subset: coef}`` and counters."""
    found: dict[tuple[int, ...], float] = {}
    stats = {"sweeps": 0, "accepted": 0, "decode_failures": 0, "rejected": 0}
    for _ in range(max_sweeps):
        stats["sweeps"] += 1
        energy = (bins * bins).mean(axis=1)  # [C, J]
        noise = max(float(np.quantile(energy, 0.1)), floor)
        accepted = 0
        for c, j in zip(*np.nonzero(energy > 2.0 * noise)):
            u = bins[c, :, j]
            e = float((u * u).mean())
            if e <= 2.0 * noise:
                continue  # emptied by an earlier peel in this sweep
            subset = decode(u[1:] * u[0] < 0)
            if subset is None or len(subset) > max_degree:
                stats["decode_failures"] += 1
                continue
            support = np.zeros((1, n), bool)
            support[0, list(subset)] = True
            if int(bins_of(support, hashes[c : c + 1])[0, 0]) != j:
                stats["rejected"] += 1
                continue
            sign = _signs(support, offsets[c : c + 1], delays)[0, 0]
            amp = float((u * sign).mean())
            resid = float(((u - amp * sign) ** 2).mean())
            tolerance = max(2.0 * noise, e / (4.0 * u.shape[0]))
            if resid > tolerance or resid > 0.25 * e or amp * amp < noise:
                stats["rejected"] += 1
                continue
            found[subset] = found.get(subset, 0.0) + amp
            subtract(bins, {subset: amp}, n, hashes, offsets, delays)
            accepted += 1
        stats["accepted"] += accepted
        if not accepted:
            break
    return found, stats
