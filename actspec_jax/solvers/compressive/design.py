"""Structured subsampling: the masks of one round and their aliased bins (private).

Group ``c`` of a round draws a random binary matrix ``M_c ∈ {0,1}^{n×b}`` and a random offset
``o_c ∈ {0,1}^n``; with delays ``d_0 = 0, d_1 … d_P`` it evaluates ``f`` at the ``2^b`` bit
patterns ``M_c ℓ ⊕ o_c ⊕ d_p`` (``ℓ ∈ {0,1}^b``; bit ``i`` set ⇔ neuron ``i`` ablated, mask
entry ``−1``). Since ``f(x) = Σ_k F[k] (−1)^{⟨k, bits(x)⟩}``, the normalised WHT over ``ℓ``
of each delay's ``2^b`` values is

    U_c[p, j] = Σ_{k : M_cᵀ k = j} F[k] (−1)^{⟨k, o_c ⊕ d_p⟩},

so every coefficient lands in one of ``2^b`` bins per group (its *bin* ``j = M_cᵀ k``), and
a bin holding one coefficient shows it under every delay with sign ``(−1)^{⟨k, o_c ⊕ d_p⟩}``.
The random offset makes every single mask uniform on ``{−1,+1}^n`` (used by the refit) and
randomises the signs in which colliding coefficients add.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.transforms.wht import fwht

__all__ = [
    "ElementTables",
    "bins_of",
    "draw_groups",
    "element_tables",
    "group_bins",
    "group_masks",
    "signs_of",
    "structured_characters",
    "subset_rows",
    "support_of",
    "term_bins",
    "term_signs",
    "uniform_masks",
]


@functools.partial(jax.jit, static_argnames=("groups", "n", "b", "held"))
def _draw(key: jax.Array, groups: int, n: int, b: int, held: int) -> tuple[jax.Array, ...]:
    k1, k2, k3 = jax.random.split(key, 3)
    uniform = jnp.where(jax.random.bernoulli(k3, 0.5, (held, n)), -1.0, 1.0).astype(jnp.float32)
    # column r of every M_c from its own key: the first b columns do not depend on b (nested plans)
    columns = jax.vmap(lambda r: jax.random.bernoulli(jax.random.fold_in(k1, r), 0.5, (groups, n)))
    hashes = jnp.moveaxis(columns(jnp.arange(b)), 0, -1)
    return hashes, jax.random.bernoulli(k2, 0.5, (groups, n)), uniform


def draw_groups(key: jax.Array, groups: int, n: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """``M: bool[C, n, b]`` and offsets ``o: bool[C, n]`` of one round (one compiled draw).

    *Nested*: column ``r`` of ``M_c`` and the offsets do not depend on ``b``, so the round drawn at
    ``b`` is the ``ℓ < 2^b`` half of the round drawn at ``b + 1`` from the same key — a larger budget
    re-uses every mask of a smaller one (:mod:`~actspec_jax.solvers.compressive.ledger`)."""
    hashes, offsets, _ = _draw(key, groups, n, b, 0)
    return np.asarray(hashes), np.asarray(offsets)


def uniform_masks(key: jax.Array, count: int, n: int) -> jax.Array:
    """``float32[count, n]`` independent uniform ±1 masks."""
    return _draw(key, 1, n, 1, count)[2]


@functools.partial(jax.jit, static_argnames=("b",))
def _masks(hashes: jax.Array, offsets: jax.Array, delays: jax.Array, b: int) -> jax.Array:
    ell = (jnp.arange(1 << b)[:, None] >> jnp.arange(b)[None, :]) & 1  # [2^b, b]
    coset = (ell @ jnp.swapaxes(hashes, 1, 2).astype(jnp.int32)) & 1  # [C, 2^b, n]
    shift = offsets[:, None, :] ^ delays[None, :, :]  # [C, P+1, n]
    bits = coset[:, None, :, :] ^ shift[:, :, None, :].astype(jnp.int32)  # [C, P+1, 2^b, n]
    return (1 - 2 * bits).astype(jnp.float32)


def group_masks(hashes: np.ndarray, offsets: np.ndarray, delays: np.ndarray, b: int) -> jax.Array:
    """``float32[C·(P+1)·2^b, n]`` masks (group, delay, ℓ order); ``delays`` includes ``d_0 = 0``."""
    out = _masks(jnp.asarray(hashes), jnp.asarray(offsets), jnp.asarray(delays), b)
    return out.reshape(-1, out.shape[-1])


@functools.partial(jax.jit, static_argnames=("shape",))
def _bins(values: jax.Array, shape: tuple[int, int, int]) -> jax.Array:
    return fwht(values.reshape(shape).astype(jnp.float32)) / shape[-1]


def group_bins(values: jax.Array, groups: int, delays: int, b: int) -> np.ndarray:
    """``U: float64[C, P+1, 2^b]`` from the values in :func:`group_masks` order (batched FWHT)."""
    return np.asarray(_bins(values, (groups, delays, 1 << b)), np.float64)


def bins_of(support: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Bin index ``Σ_r (M_cᵀ k)_r 2^r`` of ``support: bool[K, n]`` in every group → ``int[C, K]``."""
    parity = (support.astype(np.int64) @ hashes.astype(np.int64)) & 1  # [C, K, b]
    return (parity << np.arange(hashes.shape[-1])).sum(axis=-1)


def signs_of(support: np.ndarray, offsets: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """``σ[C, K, P+1] = (−1)^{⟨k, o_c ⊕ d_p⟩}``: the sign of each term of ``support: bool[K, n]``
    under each delay of each group (its value in its bin is ``F[k]·σ``)."""
    k = support.astype(np.int64)
    base = (k @ offsets.T.astype(np.int64)) & 1  # [K, C]
    shift = (k @ delays.T.astype(np.int64)) & 1  # [K, P+1]
    parity = base.T[:, :, None] ^ shift[None, :, :]
    return 1.0 - 2.0 * parity


def support_of(subset: tuple[int, ...], n: int) -> np.ndarray:
    """``bool[1, n]`` indicator row of one subset."""
    row = np.zeros((1, n), bool)
    row[0, list(subset)] = True
    return row


# ---------------------------------------------------------------- sparse supports (memory linear in n)
class ElementTables(NamedTuple):
    """Per-element tables of one round, each with a zero pad slot at index ``n``:
    ``hash_words: int64[C, n+1]`` (row ``i`` of ``M_c`` packed as ``Σ_r M_c[i, r] 2^r``),
    ``offset_bits: bool[C, n+1]`` (``o_c[i]``), ``delay_bits: bool[n+1, P+1]`` (``d_p[i]``) and
    ``sign_bytes: uint8[C, n+1, ⌈(P+1)/8⌉]`` (the bits ``o_c[i] ⊕ d_p[i]`` packed little-endian, so
    the sign pattern of any support is an XOR of its elements' bytes)."""

    hash_words: np.ndarray
    offset_bits: np.ndarray
    delay_bits: np.ndarray
    sign_bytes: np.ndarray


def element_tables(hashes: np.ndarray, offsets: np.ndarray, delays: np.ndarray) -> ElementTables:
    """The :class:`ElementTables` of ``hashes: bool[C, n, b]``, ``offsets: bool[C, n]``,
    ``delays: bool[P+1, n]`` — ``O(C·n + n·P)`` memory, built once per round."""
    groups, n, b = hashes.shape
    words = np.zeros((groups, n + 1), np.int64)
    words[:, :n] = (np.asarray(hashes, np.int64) << np.arange(b, dtype=np.int64)).sum(axis=-1)
    offset_bits = np.zeros((groups, n + 1), bool)
    offset_bits[:, :n] = offsets
    delay_bits = np.zeros((n + 1, delays.shape[0]), bool)
    delay_bits[:n] = np.asarray(delays, bool).T
    sign_bytes = np.stack(
        [np.packbits(offset_bits[c][:, None] ^ delay_bits, axis=1, bitorder="little") for c in range(groups)]
    )
    return ElementTables(words, offset_bits, delay_bits, sign_bytes)


def subset_rows(subsets: Sequence[tuple[int, ...]], n: int) -> np.ndarray:
    """``int64[K, w]``: the elements of each subset, padded with ``n`` (the tables' zero slot)."""
    width = max([1, *(len(s) for s in subsets)])
    rows = np.full((len(subsets), width), n, np.int64)
    for row, subset in enumerate(subsets):
        rows[row, : len(subset)] = subset
    return rows


def term_bins(tables: ElementTables, rows: np.ndarray) -> np.ndarray:
    """Bin ``j_c(k) = M_cᵀ k`` of every subset (``rows`` from :func:`subset_rows`) → ``int64[C, K]``."""
    return np.bitwise_xor.reduce(tables.hash_words[:, rows], axis=-1)


def term_signs(tables: ElementTables, rows: np.ndarray) -> np.ndarray:
    """``σ[C, K, P+1] = (−1)^{⟨k, o_c ⊕ d_p⟩}`` of every subset (``rows`` from :func:`subset_rows`)."""
    base = np.bitwise_xor.reduce(tables.offset_bits[:, rows], axis=-1)  # [C, K]
    shift = np.bitwise_xor.reduce(tables.delay_bits[rows], axis=1)  # [K, P+1]
    return 1.0 - 2.0 * (base[:, :, None] ^ shift[None, :, :])


def _parity(x: np.ndarray) -> np.ndarray:
    """Parity of the set bits of non-negative ``int64`` values (< 2^32)."""
    for shift in (16, 8, 4, 2, 1):
        x = x ^ (x >> shift)
    return x & 1


def structured_characters(tables: ElementTables, rows: np.ndarray, b: int) -> np.ndarray:
    """``float32[C·(P+1)·2^b, K]``: the characters ``χ_k`` of the subsets ``rows``
    (:func:`subset_rows`) on one round's masks, in (group, delay, ℓ) order, without the masks:
    ``χ_k(M_c ℓ ⊕ o_c ⊕ d_p) = σ_c(k)[p] · (−1)^{⟨j_c(k), ℓ⟩}`` (bin ``j_c(k)``, sign ``σ_c(k)``)."""
    where = term_bins(tables, rows)  # [C, K]
    signs = term_signs(tables, rows).astype(np.float32)  # [C, K, P+1]
    ell = np.arange(1 << b, dtype=np.int64)
    walsh = 1.0 - 2.0 * _parity(ell[None, :, None] & where[:, None, :]).astype(np.float32)  # [C, 2^b, K]
    out = signs.transpose(0, 2, 1)[:, :, None, :] * walsh[:, None, :, :]  # [C, P+1, 2^b, K]
    return out.reshape(-1, rows.shape[0])
