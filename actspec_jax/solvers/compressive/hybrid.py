"""The low-degree regression stage of the compressive refit (private).

After peeling, every evaluated mask enters one least-squares fit of ``∅``, the peeled terms and
the low-degree characters the data allow (all ``n`` singletons when there are ``8×`` as many
masks as columns; all pairs too when those fit — small layers). When that leaves room (``N/8``
columns in all) pairs are *screened* in, in two passes of half the room each: the pairs most
correlated with the residual of the current fit, ``C = Xᵀ diag(r) X / N`` (``C[i, j] =
mean(r · x_i x_j)``, the residual's estimated coefficient on ``χ_{i,j}``), then a refit and
the same again on its residual — the second pass sees the pairs the first one's strong
neighbours masked.

The added (non-peeled) coefficients are then **shrunk** by the positive-part factor
``max(0, 1 − se²/ĉ²)`` (``se`` the HC1 standard error): for a prediction the expected squared
error of keeping ``ĉ`` is ``se²`` and of dropping it ``c²``, and the factor interpolates —
terms with ``|ĉ| ≤ se`` (and below ``10⁻⁶·rms f``, float32 round-off of an exactly sparse
fit) are dropped, large ones are left as they are. (The round-off floor was ``10⁻³·std f``: on
the sentiment layer, whose pair coefficients are tiny against its mean, that dropped every
screened pair — 545 terms, held-out R² 0.99933 at 10k; with ``10⁻⁶·rms f``: 1045 terms, 0.99944,
ls2 0.99935.) Reported standard errors are the least-squares ones.
Peeled terms are always reported, unshrunk.

**Which added terms are kept** is chosen per call (:func:`choose_keep_z`): ``|ĉ| ≥ z·se`` for
``z ∈ {1, 2, 3}``, by the squared error on every other held-out uniform mask, with the whole
candidate stage (screening included) rerun on the other rows. No fixed ``z`` wins everywhere:
measured with fixed rules ``z = 1 / 2 / 3``, a planted spectrum with a 10 % dense tail (n = 100,
s = 20, at SPEX's smallest budget) gave R² 0.881 / 0.883 / 0.896 and MNIST 10k (key 1) 0.9016 /
0.9020 / 0.9003 — a tail with no low-degree structure wants the strict rule, a real layer the
loose one. Only the final fit has HC1 errors; the screening fits are coefficients only and the
validation fit uses classical errors (each HC1 pass costs a second sweep over the data).

Measured on MNIST ``relu_0`` (class 7, 256 units) at 10k evaluations, keys 1–3 (same data per
key): held-out R² 0.8922 (mean) with one screening pass and a ``3·se`` hard trim (the previous
rule), 0.8932 untrimmed, 0.8971 shrunk, **0.9004** with two passes and shrinkage.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from actspec_jax.solvers.compressive.refit import predict

__all__ = ["candidate_fit", "choose_keep_z", "hybrid_refit", "keep_rule", "screen_pairs"]

Fit = Callable[..., tuple[np.ndarray, np.ndarray]]
PASSES = 2  # screening passes (half of the room each)
#: Added terms below this share of ``rms f`` are float32 round-off of the fit, not terms.
ROUND_OFF = 1e-6
#: Keep rules ``|ĉ| ≥ z·se`` chosen among (on held-out rows), and the fewest validation rows.
KEEP_Z = (1.0, 2.0, 3.0)
MIN_VALIDATION = 32


def hybrid_refit(
    masks: Any,
    values: np.ndarray,
    found: dict,
    n: int,
    *,
    singletons: str,
    fit: Fit,
    held_rows: np.ndarray | None = None,
) -> tuple[list, np.ndarray, np.ndarray, int, float | None]:
    """``(subsets, coef, stderr, added, z)`` of the refit (see the module docstring).

    ``masks: float[N, n]`` of ±1, ``values: float[N]``; ``found`` the peeled terms;
    ``fit(masks, values, subsets, n) → (coef, stderr)`` the least-squares fit; ``held_rows``:
    indices of the rows that are independent uniform masks (the keep rule ``|ĉ| ≥ z·se`` is
    chosen on every other one of them, :func:`choose_keep_z`; ``None`` or too few: ``z = 1``).
    ``added`` counts the kept terms that peeling did not find; ``z`` is ``None`` when none
    were fitted.
    """
    z = choose_keep_z(masks, values, found, n, singletons=singletons, fit=fit, held_rows=held_rows)
    subsets, coef, err, fixed = candidate_fit(masks, values, found, n, singletons=singletons, fit=fit)
    if fixed == len(subsets):
        return subsets, coef, err, 0, None
    keep, factor = keep_rule(coef, err, fixed, values, z)
    subsets = [s for s, k in zip(subsets, keep) if k]
    return subsets, (coef * factor)[keep], err[keep], int(keep[fixed:].sum()), z


def candidate_fit(
    masks: Any, values: np.ndarray, found: dict, n: int, *, singletons: str, fit: Fit, stderr: str = "hc1"
) -> tuple[list, np.ndarray, np.ndarray, int]:
    """The unshrunk fit of ``∅``, the peeled terms, the low-degree columns and the screened
    pairs: ``(subsets, coef, stderr, fixed)`` with the first ``fixed`` columns (``∅`` and the
    peeled terms) never shrunk or dropped. The fits before the last one are coefficients only;
    the last one has ``stderr`` errors (:func:`~.refit.least_squares`)."""
    peeled = sorted({s for s in found if s}, key=lambda s: (len(s), s))
    count, extra = values.shape[0], []
    for degree in (1, 2):  # as far as the data allow
        more = [s for s in itertools.combinations(range(n), degree) if s not in found]
        width = 1 + len(peeled) + len(extra) + len(more)
        if singletons == "never" or (degree == 2 and singletons == "always"):
            break
        if singletons == "auto" and count < 8 * width:
            break
        extra += more
    subsets = [(), *peeled, *extra]
    room = count // 8 - len(subsets)
    screens = room > 0 and bool(extra) and len(extra[-1]) == 1
    coef, err = fit(masks, values, subsets, n, "none" if screens else stderr)
    if screens:
        shares = [room // PASSES + (room % PASSES if step == PASSES - 1 else 0) for step in range(PASSES)]
        shares = [share for share in shares if share > 0]
        for step, share in enumerate(shares):
            subsets = subsets + screen_pairs(masks, values, subsets, coef, share, n)
            coef, err = fit(masks, values, subsets, n, stderr if step == len(shares) - 1 else "none")
    return subsets, np.asarray(coef, np.float64), np.asarray(err, np.float64), 1 + len(peeled)


def keep_rule(
    coef: np.ndarray, err: np.ndarray, fixed: int, values: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(keep: bool[K], factor: float[K])``: added terms kept at ``|ĉ| ≥ z·se`` (and above the
    round-off floor), then shrunk by ``max(0, 1 − se²/ĉ²)``; the first ``fixed`` as fitted."""
    factor = np.clip(1.0 - err**2 / np.maximum(coef**2, 1e-300), 0.0, 1.0)
    factor[:fixed] = 1.0
    keep = np.ones(coef.shape[0], bool)
    small = ROUND_OFF * float(np.sqrt(np.mean(np.square(values))))
    tail = np.abs(coef[fixed:])
    keep[fixed:] = (factor[fixed:] > 0) & (tail >= small) & (tail >= z * err[fixed:])
    return keep, factor


def choose_keep_z(
    masks: Any,
    values: np.ndarray,
    found: dict,
    n: int,
    *,
    singletons: str,
    fit: Fit,
    held_rows: np.ndarray | None,
) -> float:
    """The ``z ∈`` :data:`KEEP_Z` of the keep rule with the least squared error on validation rows.

    Every other row of ``held_rows`` (independent uniform masks) is set aside; the whole
    candidate stage — low-degree columns and the screening — is rerun on the other rows (when
    the screening saw the validation rows it picked the pairs that fit their noise, and the
    loosest rule always won), and each rule's prediction of the set-aside values is scored.
    ``1.0`` (the loosest) without :data:`MIN_VALIDATION` validation rows or low-degree columns.
    Ties go to the larger ``z`` (fewer terms).
    """
    if held_rows is None or len(held_rows) < 2 * MIN_VALIDATION:
        return KEEP_Z[0]
    rows = np.asarray(held_rows)
    val = rows[::2]
    train = np.setdiff1d(np.arange(values.shape[0]), val)
    x = np.asarray(masks)
    subsets, coef, err, fixed = candidate_fit(
        x[train], values[train], found, n, singletons=singletons, fit=fit, stderr="classical"
    )
    if fixed == len(subsets):
        return KEEP_Z[0]
    best, best_err = KEEP_Z[0], np.inf
    for z in KEEP_Z:
        keep, factor = keep_rule(coef, err, fixed, values[train], z)
        pred = predict(x[val], [s for s, k in zip(subsets, keep) if k], (coef * factor)[keep], n)
        mse = float(np.mean((values[val] - pred) ** 2))
        if mse <= best_err * (1 + 1e-9):
            best, best_err = z, mse
    return best


def screen_pairs(masks: Any, values: np.ndarray, subsets: list, coef: np.ndarray, room: int, n: int) -> list:
    """The ``room`` pairs not in ``subsets`` most correlated with the residual of the current fit.

    All ``n(n−1)/2`` pair correlations at once: ``C = Xᵀ diag(r) X / N`` with ``X`` the ±1
    masks (unbiased for the residual's coefficients on uniform masks).
    """
    x = np.asarray(masks, np.float32)
    fitted = predict(x, subsets, coef, n)
    resid = (values - fitted).astype(np.float32)
    corr = np.abs((x * resid[:, None]).T @ x) / x.shape[0]
    have = {s for s in subsets if len(s) == 2}
    iu = np.triu_indices(n, 1)
    pairs = []
    for t in np.argsort(-corr[iu]):
        pair = (int(iu[0][t]), int(iu[1][t]))
        if pair not in have:
            pairs.append(pair)
            if len(pairs) >= room:
                break
    return pairs
