"""Shapley, Banzhaf and interaction indices, exactly, from a Fourier spectrum.

**The game.** A spectrum describes ``f`` over ±1 masks; the cooperative game it defines
gives coalition ``T ⊆ {0…n−1}`` the value ``g(T) = f(x)`` with ``x_i = +1`` (kept) for
``i ∈ T`` and ``−1`` (ablated) otherwise, so ``g(∅)`` is the fully ablated layer and
``g(N)`` the unmodified model. Its Möbius coefficients ``a(T)`` (Harsanyi dividends) follow
from the Fourier coefficients by ``a(T) = (−2)^{|T|} Σ_{R⊇T} (−1)^{|R|} f̂(R)``
(:mod:`actspec_jax.transforms.mobius`).

**Every index is a linear map of size-only weights.** Each index below is symmetric
(permuting players permutes the index), so it distributes a Möbius coefficient ``a(T)``
onto the subsets ``S ⊆ T`` with a weight ``m(|T|, |S|)`` (below, ``t = |T|``,
``s = |S|``, ``k`` the order). Composing with F→M, a Fourier term ``R`` (``r = |R|``)
contributes ``w(r, s) f̂(R)`` to every ``S ⊆ R``, with

    w(r, s) = Σ_{t=s}^{r} C(r−s, t−s) 2^t (−1)^{r−t} m(t, s),

computed once in exact rational arithmetic. Hence:

* dense spectra (``Spectrum.dense``, all ``2^n`` coefficients): ``I(S) = Σ_{R⊇S} w(|R|,|S|) f̂(R)``,
  one superset-sum transform (``O(n 2^n)``) per order ``s ≤ k``, batched in one jit call — exact;
* sparse spectra (``K`` listed terms, any ``n``): each term is spread onto its
  ``Σ_{s≤k} C(r, s)`` subsets — exact for the sparse approximation, never ``2^n`` work.

**Definitions** (``m(t, s)``; conventions for ``S = ∅`` follow shapiq 1.4's ExactComputer):

* ``SV`` — Shapley value (Shapley 1953): ``φ_i = Σ_{T⊆N∖i} t!(n−t−1)!/n! [g(T∪i) − g(T)]``;
  ``m(t,1) = 1/t``. For a Fourier term: ``w(r,1) = 2/r`` for odd ``r``, 0 for even ``r``.
  Empty set: ``g(∅)``.
* ``BV`` — Banzhaf value (Banzhaf 1965): ``β_i = 2^{1−n} Σ_{T⊆N∖i} [g(T∪i) − g(T)]``;
  ``m(t,1) = 2^{1−t}``, i.e. ``β_i = 2 f̂({i})``. Empty set: the mean game value
  ``2^{−n} Σ_T g(T) = f̂(∅)`` (the Banzhaf interaction index of ``∅``, as shapiq's
  ExactComputer returns it).
* ``SII`` — Shapley interaction index (Grabisch & Roubens 1999):
  ``I(S) = Σ_{T⊆N∖S} (n−t−s)! t!/(n−s+1)! Δ_S g(T)``, ``Δ_S g(T) = Σ_{L⊆S} (−1)^{s−l} g(T∪L)``;
  ``m(t,s) = 1/(t−s+1)`` (also for ``S = ∅``).
* ``BII`` — Banzhaf interaction index (Grabisch & Roubens 1999): ``2^{s−n} Σ_T Δ_S g(T)``;
  ``m(t,s) = 2^{s−t}``.
* ``k-SII`` — k-Shapley values (Bordt & von Luxburg 2023; Lundberg et al. 2020 for k = 2),
  SII aggregated with Bernoulli numbers (``B_1 = −1/2``):
  ``I_k(S) = Σ_{S⊆L, |L|≤k} B_{|L|−s} SII(L)`` for ``1 ≤ s ≤ k``, so
  ``m(t,s) = Σ_{j=s}^{min(k,t)} C(t−s, j−s) B_{j−s}/(t−j+1)``; ``I_k(∅) = g(∅)``.
  Efficient: ``Σ_{1≤|S|≤k} I_k(S) = g(N) − g(∅)``.
* ``STII`` — Shapley–Taylor interaction index (Sundararajan, Dhamdhere & Agarwal 2020):
  ``I(S) = Δ_S g(∅) = a(S)`` for ``s < k``; for ``s = k``
  ``I(S) = (k/n) Σ_{T⊆N∖S} Δ_S g(T) / C(n−1, t)``, i.e. ``m(t,k) = 1/C(t,k)``.
* ``FSII`` — Faithful Shapley interaction index (Tsai, Yeh & Ravikumar 2023): the
  ``E(S), |S| ≤ k`` minimising ``Σ_T μ(T)(g(T) − Σ_{S⊆T} E(S))²`` with the Shapley kernel
  ``μ(T) ∝ 1/(C(n,t) t (n−t))`` and ``g(∅), g(N)`` fitted exactly. Their closed form:
  ``m(t,s) = [t = s]`` for ``t ≤ k``, else
  ``(−1)^{k−s} s/(k+s) C(k,s) C(t−1,k)/C(t+k−1,k+s)``; ``E(∅) = g(∅)``.
* ``FBII`` — Faithful Banzhaf interaction index (Tsai et al. 2023): the same regression
  with uniform weights and no constraints. Its fit is the orthogonal projection onto
  polynomials of degree ``≤ k`` — the Fourier truncation — so ``w(r,s) = [r ≤ k] 2^s (−1)^{r−s}``
  (Möbius form: ``m(t,s) = (−1)^{k−s} 2^{s−t} C(t−s−1, k−s)`` for ``t > k``).
* ``Moebius`` — the Möbius coefficients (Rota 1964; Harsanyi 1963), ``m(t,s) = [t = s]``.

Returned dicts map sorted neuron tuples (``()`` = empty set) to values. Dense spectra
give every subset of size ``≤ k``; sparse ones give the subsets some listed term reaches
(every other value is exactly 0 for the sparse approximation).
"""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction
from math import comb
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.transforms.indexing import subset_to_index, unpack_subsets
from actspec_jax.transforms.mobius import (
    check_terms,
    expand_terms,
    fourier_to_moebius_dense,
    superset_sum,
)

__all__ = [
    "INDICES",
    "banzhaf_values",
    "empty_value",
    "fourier_index_weights",
    "full_value",
    "interaction_index",
    "moebius",
    "moebius_index_weights",
    "shapley_values",
]

#: Index names accepted by :func:`interaction_index` (shapiq's spelling).
INDICES = ("SV", "BV", "SII", "BII", "k-SII", "STII", "FSII", "FBII", "Moebius")

_ALIASES = {
    "sv": "SV",
    "shapley": "SV",
    "bv": "BV",
    "banzhaf": "BV",
    "sii": "SII",
    "bii": "BII",
    "k-sii": "k-SII",
    "ksii": "k-SII",
    "stii": "STII",
    "fsii": "FSII",
    "fbii": "FBII",
    "moebius": "Moebius",
    "möbius": "Moebius",
    "mobius": "Moebius",
}
Source = Literal["auto", "dense", "terms"]


def _canonical(index: str) -> str:
    name = _ALIASES.get(str(index).strip().lower())
    if name is None:
        raise ActSpecError(f"unknown interaction index {index!r}; choose one of {', '.join(INDICES)}.")
    return name


# --------------------------------------------------------------------------- weights


@functools.lru_cache(maxsize=64)
def _bernoulli(m: int) -> tuple[Fraction, ...]:
    """Bernoulli numbers ``B_0 … B_m`` with ``B_1 = −1/2``."""
    out = [Fraction(1)]
    for j in range(1, m + 1):
        out.append(-sum(comb(j + 1, i) * out[i] for i in range(j)) / (j + 1))
    return tuple(out)


def _m(index: str, t: int, s: int, k: int) -> Fraction:
    """Weight with which Möbius coefficient ``a(T)``, ``|T| = t``, enters ``I(S)``, ``|S| = s ≤ t``."""
    if index == "Moebius":
        return Fraction(int(t == s))
    if index == "SV" and s == 0:
        return Fraction(int(t == 0))
    if index in ("SII", "SV"):
        return Fraction(1, t - s + 1)
    if index in ("BII", "BV"):
        return Fraction(1, 2 ** (t - s))
    if index == "k-SII":
        if s == 0:
            return Fraction(int(t == 0))
        bern = _bernoulli(k)
        return sum(
            (comb(t - s, j - s) * bern[j - s] / (t - j + 1) for j in range(s, min(k, t) + 1)),
            Fraction(0),
        )
    if index == "STII":
        if s < k:
            return Fraction(int(t == s))
        return Fraction(1, comb(t, k))
    if t <= k:
        return Fraction(int(t == s))
    sign = -1 if (k - s) % 2 else 1
    if index == "FSII":
        return sign * Fraction(s, k + s) * comb(k, s) * Fraction(comb(t - 1, k), comb(t + k - 1, k + s))
    if index == "FBII":
        return sign * Fraction(comb(t - s - 1, k - s), 2 ** (t - s))
    raise ActSpecError(f"no weights for index {index!r}.")


def _order(index: str, max_order: int | None) -> int:
    if index in ("SV", "BV"):
        if max_order not in (None, 1):
            raise ActSpecError(f"{index} is a per-neuron value (order 1); got max_order={max_order}.")
        return 1
    return 2 if max_order is None else max_order


@functools.lru_cache(maxsize=256)
def _tables(index: str, order: int, max_size: int) -> tuple[np.ndarray, np.ndarray]:
    m = [
        [_m(index, t, s, order) if s <= t else Fraction(0) for s in range(order + 1)]
        for t in range(max_size + 1)
    ]
    w = [
        [
            sum(
                (comb(r - s, t - s) * 2**t * (-1) ** (r - t) * m[t][s] for t in range(s, r + 1)),
                Fraction(0),
            )
            if s <= r
            else Fraction(0)
            for s in range(order + 1)
        ]
        for r in range(max_size + 1)
    ]
    return np.asarray(m, np.float64), np.asarray(w, np.float64)


def moebius_index_weights(index: str, max_order: int | None, max_size: int) -> np.ndarray:
    """``float64[max_size + 1, k + 1]``: ``m(t, s)``, the weight of Möbius coefficient ``a(T)``
    (``|T| = t``) in ``I(S)`` (``|S| = s ≤ k``, ``S ⊆ T``); computed in exact rationals."""
    name = _canonical(index)
    return _tables(name, _order(name, max_order), int(max_size))[0].copy()


def fourier_index_weights(index: str, max_order: int | None, max_size: int) -> np.ndarray:
    """``float64[max_size + 1, k + 1]``: ``w(r, s)``, the weight of Fourier coefficient ``f̂(R)``
    (``|R| = r``) in ``I(S)`` (``|S| = s ≤ k``, ``S ⊆ R``); computed in exact rationals."""
    name = _canonical(index)
    return _tables(name, _order(name, max_order), int(max_size))[1].copy()


# --------------------------------------------------------------------------- validation


def _validate(spectrum: Any, source: Source) -> tuple[int, np.ndarray, np.ndarray, Any]:
    if hasattr(spectrum, "spectra") and not hasattr(spectrum, "subsets"):
        raise ActSpecError("got a batch of spectra (one per output); pick one output first, e.g. batch[0].")
    if not all(hasattr(spectrum, a) for a in ("n", "subsets", "coefficients")):
        raise ActSpecError(f"expected an actspec_jax Spectrum, got {type(spectrum).__name__}.")
    n, packed, coefs = check_terms(spectrum)
    dense = getattr(spectrum, "dense", None)
    if source not in ("auto", "dense", "terms"):
        raise ActSpecError(f"source must be 'auto', 'dense' or 'terms', got {source!r}.")
    if source == "terms":
        dense = None
    elif source == "dense" and dense is None:
        raise ActSpecError(
            "source='dense' needs a spectrum with the dense array (ExactSolver(keep_dense=True))."
        )
    if dense is not None and tuple(np.shape(dense)) != (1 << n,):
        raise ActSpecError(
            f"the dense spectrum has shape {tuple(np.shape(dense))}, expected ({1 << n},) for n={n}: "
            "it belongs to a different problem."
        )
    return n, packed, coefs, dense


def _check_order(index: str, order: int, n: int) -> None:
    if not isinstance(order, int | np.integer) or isinstance(order, bool):
        raise ActSpecError(f"max_order must be an integer, got {order!r}.")
    if order < 1:
        raise ActSpecError(f"max_order must be at least 1, got {order}.")
    if order > n:
        raise ActSpecError(
            f"max_order={order} exceeds the number of neurons n={n}: interactions of {index} have at "
            f"most n members. Use max_order <= {n}."
        )


# --------------------------------------------------------------------------- dense path


@functools.lru_cache(maxsize=32)
def _subsets_of_size(n: int, s: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    tuples = list(itertools.combinations(range(n), s))
    return np.asarray([subset_to_index(t) for t in tuples], np.int64), tuples


@jax.jit
def _popcount(length_like: jax.Array) -> jax.Array:
    idx = jnp.arange(length_like.shape[-1], dtype=jnp.uint32)
    return jax.lax.population_count(idx).astype(jnp.int32)


@jax.jit
def _weighted_supersets(dense: jax.Array, columns: jax.Array, rows: jax.Array, idx: jax.Array) -> jax.Array:
    """``Σ_{R⊇S} columns[j, |R|] dense[R]`` at the pairs ``(j, S) = (rows[i], idx[i])``: ``float[I]``.

    All sizes' weighted superset sums in one batched transform; only the requested entries
    leave the device.
    """
    h = columns.astype(dense.dtype)[:, _popcount(dense)] * dense
    return superset_sum(h)[rows, idx]


SUPERSET_GROUP_BYTES = 1 << 28  # at most this much for one group of weighted superset tables


def _dense_index(dense: Any, n: int, w: np.ndarray, sizes: range) -> dict[tuple[int, ...], float]:
    """Every size in one compiled call per group of sizes (one group unless memory-limited)."""
    values = jnp.asarray(dense)
    if not jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(jnp.float32)
    sizes = list(sizes)
    group = max(1, min(len(sizes), SUPERSET_GROUP_BYTES // (values.dtype.itemsize << n)))
    out: dict[tuple[int, ...], float] = {}
    for first in range(0, len(sizes), group):
        chunk = sizes[first : first + group]
        subsets = [_subsets_of_size(n, s) for s in chunk]
        rows = np.concatenate([np.full(len(idx), j, np.int32) for j, (idx, _) in enumerate(subsets)])
        idx = np.concatenate([idx for idx, _ in subsets]).astype(np.int32)
        got = _weighted_supersets(values, jnp.asarray(w[:, chunk].T), jnp.asarray(rows), jnp.asarray(idx))
        tuples = [t for _, ts in subsets for t in ts]
        out.update(zip(tuples, np.asarray(got).astype(np.float64).tolist()))
    return out


# --------------------------------------------------------------------------- public API


def _terms_index(
    n: int, packed: np.ndarray, coefs: np.ndarray, w: np.ndarray, order: int
) -> dict[tuple[int, ...], float]:
    sub, vals = expand_terms(n, packed, coefs, lambda d, s: w[d, s], max_size=order)
    member = unpack_subsets(sub, n)
    out = {(): 0.0}
    out.update({tuple(int(i) for i in np.flatnonzero(row)): float(v) for row, v in zip(member, vals)})
    return out


def interaction_index(
    spectrum: Any,
    index: str = "SII",
    max_order: int | None = None,
    *,
    source: Source = "auto",
) -> dict[tuple[int, ...], float]:
    """An interaction index of the game defined by ``spectrum``, for subsets of size ``≤ max_order``.

    Args:
      spectrum: an :class:`~actspec_jax.Spectrum` (one output).
      index: one of :data:`INDICES` — ``"SV"``, ``"BV"``, ``"SII"``, ``"BII"``, ``"k-SII"``,
        ``"STII"``, ``"FSII"``, ``"FBII"``, ``"Moebius"`` (case-insensitive); definitions
        in the module docstring.
      max_order: largest interaction size ``k`` (default 2; SV and BV are order 1).
      source: ``"auto"`` uses the dense spectrum when attached (exact for the function),
        else the listed terms (exact for the sparse approximation); ``"dense"`` / ``"terms"``
        force one.

    Returns:
      ``{sorted neuron tuple: value}`` including ``()``; dense input lists every subset of
      size ``≤ k`` (ordered by size), sparse input the reachable ones (others are 0).

    Raises:
      ActSpecError: unknown index, ``max_order`` < 1 or > n, or a malformed spectrum.
    """
    name = _canonical(index)
    order = _order(name, max_order)
    n, packed, coefs, dense = _validate(spectrum, source)
    _check_order(name, order, n)
    if dense is not None:
        if name == "Moebius":
            a = np.asarray(fourier_to_moebius_dense(jnp.asarray(dense)), np.float64)
            out: dict[tuple[int, ...], float] = {}
            for s in range(order + 1):
                idx, tuples = _subsets_of_size(n, s)
                out.update(zip(tuples, a[idx].tolist()))
            return out
        _, w = _tables(name, order, n)
        return _dense_index(dense, n, w, range(order + 1))
    max_size = int(unpack_subsets(packed, n).sum(axis=1).max(initial=0))
    _, w = _tables(name, order, max_size)
    return _terms_index(n, packed, coefs, w, order)


def _per_neuron(spectrum: Any, name: str, source: Source) -> np.ndarray:
    n, packed, coefs, dense = _validate(spectrum, source)
    if dense is not None:
        _, w = _tables(name, 1, n)
        values = _dense_index(dense, n, w, range(1, 2))
        return np.asarray([values[(i,)] for i in range(n)], np.float64)
    member = unpack_subsets(packed, n)
    degrees = member.sum(axis=1)
    _, w = _tables(name, 1, int(degrees.max(initial=0)))
    return member.T.astype(np.float64) @ (w[degrees, 1] * coefs)


def shapley_values(spectrum: Any, *, source: Source = "auto") -> np.ndarray:
    """Shapley values ``float64[n]`` of the spectrum's game (Shapley 1953).

    ``φ_i = Σ_{R∋i, |R| odd} 2 f̂(R)/|R|``: a Fourier term ``χ_R`` is a symmetric game on
    ``R`` worth ``χ_R(+1…) − χ_R(−1…) = 1 − (−1)^{|R|}``, shared equally by its ``|R|``
    members. Efficient: ``Σ_i φ_i = g(N) − g(∅)``. ``source`` as in :func:`interaction_index`.
    """
    return _per_neuron(spectrum, "SV", source)


def banzhaf_values(spectrum: Any, *, source: Source = "auto") -> np.ndarray:
    """Banzhaf values ``float64[n]`` (Banzhaf 1965): ``β_i = E_T[g(T∪i) − g(T)] = 2 f̂({i})``
    over uniformly random coalitions ``T ⊆ N∖i``."""
    return _per_neuron(spectrum, "BV", source)


def moebius(
    spectrum: Any, max_order: int | None = None, *, source: Source = "auto"
) -> dict[tuple[int, ...], float]:
    """Möbius coefficients ``{T: a(T)}`` of the game, ``|T| ≤ max_order`` (default all)
    (Rota 1964). ``g(T) = Σ_{U⊆T} a(U)`` and ``a(∅) = g(∅)``."""
    n = int(spectrum.n)
    return interaction_index(spectrum, "Moebius", n if max_order is None else max_order, source=source)


def _signed_sum(spectrum: Any, signed: bool) -> float:
    n, packed, coefs, dense = _validate(spectrum, "auto")
    if dense is not None:
        values = np.asarray(dense, np.float64)
        if not signed:
            return float(values.sum())
        parity = np.asarray(_popcount(jnp.zeros(1 << n, jnp.int8))) % 2
        return float((values * (1 - 2 * parity)).sum())
    if not signed:
        return float(coefs.sum())
    degrees = unpack_subsets(packed, n).sum(axis=1)
    return float((coefs * (1 - 2 * (degrees % 2))).sum())


def empty_value(spectrum: Any) -> float:
    """``g(∅) = f(−1, …, −1) = Σ_R (−1)^{|R|} f̂(R)``: every neuron ablated (shapiq's baseline)."""
    return _signed_sum(spectrum, signed=True)


def full_value(spectrum: Any) -> float:
    """``g(N) = f(+1, …, +1) = Σ_R f̂(R)``: the unmodified model."""
    return _signed_sum(spectrum, signed=False)
