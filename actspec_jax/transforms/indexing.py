"""Index and sign conventions shared by every part of actspec_jax.

**The sign convention** (the one place it is stated; everything else refers here):

* A *mask* is a vector ``x ∈ {−1, +1}^n`` over the ``n`` neurons of one layer.
  ``x_i = +1`` **keeps** neuron ``i`` (its real value passes through) and
  ``x_i = −1`` **ablates** it (its value is replaced by the problem's fill).
* The Fourier (Walsh) coefficient of ``f`` at a subset ``S ⊆ {0, …, n−1}`` is
  ``f̂(S) = E_x[f(x) χ_S(x)]`` with ``χ_S(x) = ∏_{i∈S} x_i`` and ``x`` uniform, so
  ``f(x) = Σ_S f̂(S) χ_S(x)``. With +1 = kept, a positive ``f̂({i})`` means
  keeping neuron ``i`` raises the output.
* Masks and subsets are both numbered by bitmasks: the enumeration index
  ``k ∈ [0, 2^n)`` has bit ``i`` set ⇔ neuron ``i`` is **ablated** in mask ``k``,
  and subset ``S`` has index ``Σ_{i∈S} 2^i``. Then ``χ_S(x_k) = (−1)^{popcount(k & S)}``
  and the Sylvester Walsh–Hadamard transform of the value table ``v[k] = f(x_k)`` is
  ``2^n · f̂(S)`` at index ``S``. Mask 0 keeps every neuron (the unmodified model).
* Subsets with more than 32 neurons are bit-packed into ``uint32`` words,
  neuron ``i`` at bit ``i % 32`` of word ``i // 32`` (little-endian order).

Libraries that use 0/1 coalitions with 1 = present (shapiq, SPEX) relate to ours by
``x_i = 2 z_i − 1``; their conversions carry ``(−1)^{|S|}`` factors wherever a
parity over ablated players appears.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "characters",
    "enumerate_masks",
    "index_to_subset",
    "membership_from_packed",
    "num_words",
    "pack_subsets",
    "subset_to_index",
    "subsets_from_indices",
    "unpack_subsets",
]

WORD_BITS = 32


def num_words(n: int) -> int:
    """Number of uint32 words that hold a subset of ``n`` neurons (at least 1)."""
    return max(1, -(-n // WORD_BITS))


def subset_to_index(subset: Iterable[int]) -> int:
    """Bitmask index ``Σ_{i∈S} 2^i`` of a subset (Python int, any size)."""
    index = 0
    for i in subset:
        index |= 1 << int(i)
    return index


def index_to_subset(index: int) -> tuple[int, ...]:
    """Sorted neurons of the subset with bitmask ``index``."""
    index = int(index)
    out = []
    i = 0
    while index:
        if index & 1:
            out.append(i)
        index >>= 1
        i += 1
    return tuple(out)


def enumerate_masks(start: jax.Array | int, count: int, n: int, dtype=jnp.float32) -> jax.Array:
    """Masks ``x_k`` for ``k = start … start + count − 1`` (jittable; ``start`` may be traced).

    Returns ``dtype[count, n]`` with ``x_k[i] = −1`` iff bit ``i`` of ``k`` is set
    (neuron ablated) and ``+1`` otherwise. Requires ``n ≤ 31`` so ``k`` fits int32.
    """
    if n > 31:
        raise ValueError(f"enumerate_masks supports n <= 31 neurons, got n={n}.")
    k = jnp.asarray(start, jnp.int32) + jnp.arange(count, dtype=jnp.int32)
    bits = (k[:, None] >> jnp.arange(n, dtype=jnp.int32)[None, :]) & 1
    return (1 - 2 * bits).astype(dtype)


def pack_subsets(membership: np.ndarray) -> np.ndarray:
    """Bit-pack boolean membership ``bool[K, n]`` into ``uint32[K, num_words(n)]``."""
    membership = np.asarray(membership, dtype=bool)
    k, n = membership.shape
    words = num_words(n)
    padded = np.zeros((k, words * WORD_BITS), dtype=np.uint64)
    padded[:, :n] = membership
    weights = np.uint64(1) << np.arange(WORD_BITS, dtype=np.uint64)
    packed = (padded.reshape(k, words, WORD_BITS) * weights).sum(axis=-1)
    return packed.astype(np.uint32)


def unpack_subsets(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_subsets`: ``uint32[K, W]`` → ``bool[K, n]``."""
    packed = np.asarray(packed, dtype=np.uint32)
    shifts = np.arange(WORD_BITS, dtype=np.uint32)
    bits = (packed[:, :, None] >> shifts) & np.uint32(1)
    return bits.reshape(packed.shape[0], packed.shape[1] * WORD_BITS)[:, :n].astype(bool)


def membership_from_packed(packed: jax.Array, n: int) -> jax.Array:
    """Jittable unpack: ``uint32[K, W]`` → ``float32[K, n]`` of 0/1 memberships."""
    shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
    bits = (packed[:, :, None] >> shifts) & jnp.uint32(1)
    return bits.reshape(packed.shape[0], packed.shape[1] * WORD_BITS)[:, :n].astype(jnp.float32)


def subsets_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """Subset bitmask indices (``int[K]``, ``n ≤ 63``) → packed ``uint32[K, W]``."""
    indices = np.asarray(indices, dtype=np.uint64)
    words = num_words(n)
    out = np.zeros((indices.shape[0], words), dtype=np.uint32)
    for w in range(words):
        out[:, w] = ((indices >> np.uint64(WORD_BITS * w)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return out


def packed_from_tuples(subsets: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """Sequence of neuron-index tuples → packed ``uint32[K, W]`` (validates range)."""
    membership = np.zeros((len(subsets), n), dtype=bool)
    for row, subset in enumerate(subsets):
        for i in subset:
            if not 0 <= int(i) < n:
                raise ValueError(f"subset {tuple(subset)} names neuron {i}, outside 0..{n - 1}.")
            membership[row, int(i)] = True
    return pack_subsets(membership)


def characters(masks: jax.Array, membership: jax.Array) -> jax.Array:
    """Characters ``χ_S(x) = ∏_{i∈S} x_i`` for every mask and subset (jittable).

    Args:
      masks: ``float[k, n]`` of ±1 (+1 = kept).
      membership: ``float[K, n]`` of 0/1 (1 = neuron in S).

    Returns:
      ``float32[k, K]`` of ±1. Computed as ``(−1)^{#ablated ∩ S}`` with one matrix
      product of 0/1 values, which is exact in float32 (and in bf16 inputs with f32
      accumulation on matrix units) for ``n < 2^24``.
    """
    ablated = (masks < 0).astype(jnp.float32)
    counts = jnp.matmul(ablated, membership.astype(jnp.float32).T, preferred_element_type=jnp.float32)
    parity = jnp.mod(jnp.round(counts), 2.0)
    return 1.0 - 2.0 * parity
