"""The masks of a compressive plan, generated and evaluated in chunks (private).

Nothing of size ``masks × n`` is kept: a chunk of masks is made on the device from the round's
design (structured rows) or from a key (uniform rows), evaluated, and dropped. At ``n = 262,144``
the 20,000 masks of a plan would be 21 GB as float32; a chunk of 256 is 268 MB.

* **Structured rows** (:class:`StructuredRows`): row ``r`` of a round is ``(c, p, ℓ)`` with
  ``r = (c·(P+1) + p)·2^b + ℓ`` and bits ``M_c ℓ ⊕ o_c ⊕ d_p`` (:mod:`~.design`); bit ``i`` of
  ``M_c ℓ`` is the parity of ``ℓ`` AND row ``i`` of ``M_c`` packed as an integer.
* **Uniform rows** (:class:`UniformRows`): blocks of :data:`BLOCK` rows, block ``q`` the bits of
  ``jax.random.bits(fold_in(key, q))`` packed 32 to a word, so any block can be made again (the
  refit at large ``n`` reads only its support's columns, :meth:`UniformRows.columns`).

:func:`evaluate_rows` cuts the rows into power-of-two chunks of at most the memory budget's chunk
(the binary digits of the count, so at most ``log₂`` sizes ever compile and no padded row is
evaluated), checks the values are finite and reports progress.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError, NonFiniteOutputError

__all__ = ["BLOCK", "StructuredRows", "UniformRows", "evaluate_rows", "progress_ticker"]

#: Rows of one uniform block (one key each).
BLOCK = 64


@functools.partial(jax.jit, static_argnames=("size", "b"))
def _structured(
    words: jax.Array, offsets: jax.Array, delays: jax.Array, start: jax.Array, *, size: int, b: int
):
    rows = start + jnp.arange(size, dtype=jnp.int32)
    per_group = delays.shape[0] << b
    group, delay, ell = rows // per_group, (rows >> b) % delays.shape[0], rows & ((1 << b) - 1)
    coset = (jax.lax.population_count(words[group] & ell[:, None]) & 1).astype(bool)
    bits = coset ^ offsets[group] ^ delays[delay]
    return jnp.where(bits, -1.0, 1.0).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class StructuredRows:
    """The ``C·(P+1)·2^b`` masks of one round (``hashes: bool[C, n, b]``, ``offsets: bool[C, n]``,
    ``delays: bool[P+1, n]``) in (group, delay, ℓ) order, made chunk by chunk."""

    hashes: np.ndarray
    offsets: np.ndarray
    delays: np.ndarray

    @property
    def count(self) -> int:
        return self.hashes.shape[0] * self.delays.shape[0] << self.hashes.shape[2]

    @functools.cached_property
    def _device(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        b = self.hashes.shape[2]
        words = (np.asarray(self.hashes, np.int32) << np.arange(b, dtype=np.int32)).sum(axis=-1)
        return jnp.asarray(words, jnp.int32), jnp.asarray(self.offsets), jnp.asarray(self.delays)

    def chunk(self, start: int, size: int) -> jax.Array:
        """``float32[size, n]`` of ±1: rows ``start … start + size − 1``."""
        words, offsets, delays = self._device
        return _structured(words, offsets, delays, jnp.int32(start), size=size, b=self.hashes.shape[2])


@functools.partial(jax.jit, static_argnames=("blocks", "words"))
def _uniform_words(key: jax.Array, first: jax.Array, *, blocks: int, words: int) -> jax.Array:
    def block(index: jax.Array) -> jax.Array:
        return jax.random.bits(jax.random.fold_in(key, index), (BLOCK, words), jnp.uint32)

    return jax.vmap(block)(first + jnp.arange(blocks)).reshape(blocks * BLOCK, words)


@functools.partial(jax.jit, static_argnames=("n",))
def _unpack(words: jax.Array, *, n: int) -> jax.Array:
    cols = jnp.arange(n)
    bits = (words[:, cols >> 5] >> (cols & 31).astype(jnp.uint32)) & 1
    return jnp.where(bits == 1, -1.0, 1.0).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class UniformRows:
    """``count`` independent uniform ±1 masks of ``n`` units, regenerable block by block from ``key``."""

    key: jax.Array
    count: int
    n: int

    def _words(self, start: int, size: int) -> jax.Array:
        first, last = start // BLOCK, -(-(start + size) // BLOCK)
        words = _uniform_words(self.key, jnp.int32(first), blocks=last - first, words=-(-self.n // 32))
        return words[start - first * BLOCK : start - first * BLOCK + size]

    def chunk(self, start: int, size: int) -> jax.Array:
        """``float32[size, n]`` of ±1: rows ``start … start + size − 1``."""
        return _unpack(self._words(start, size), n=self.n)

    def columns(self, cols: np.ndarray, *, rows_per_call: int = 1024) -> np.ndarray:
        """``bool[count, len(cols)]``: the ablation bits (``True`` = −1) of ``cols`` in every row —
        the full rows are regenerated ``rows_per_call`` at a time and only these columns kept."""
        cols = np.asarray(cols, np.int64)
        out = np.zeros((self.count, cols.size), bool)
        word, shift = jnp.asarray(cols >> 5), jnp.asarray((cols & 31).astype(np.uint32))
        for start in range(0, self.count, rows_per_call):
            size = min(rows_per_call, self.count - start)
            words = self._words(start, size)
            out[start : start + size] = np.asarray(((words[:, word] >> shift) & 1) == 1)
        return out


@jax.jit
def _evaluate(problem: Any, masks: jax.Array) -> jax.Array:
    return problem.evaluate_unchecked(masks)


def evaluate_rows(
    problem: Any,
    rows: Any,
    *,
    chunk: int,
    progress: Callable[[int], None] | None = None,
    syncs: dict[str, int] | None = None,
) -> np.ndarray:
    """``float64[rows.count]``: the problem's values at every row of ``rows`` (a
    :class:`StructuredRows` or :class:`UniformRows`), ``chunk`` (a power of two) masks at a time.

    Pieces are the binary digits of the count above ``chunk``, so no padded mask is evaluated (a
    budget counts real evaluations) and at most ``log₂ chunk`` sizes compile. ``progress(k)`` is
    called after every piece with the masks done in it (the piece is waited for, so a bar shows
    finished work). ``syncs['evaluate']`` counts the host waits: one for the values, plus one a
    piece with ``progress``. Raises :class:`NonFiniteOutputError` on NaN/inf values.
    """
    count = int(rows.count)
    parts, start = [], 0
    while start < count:
        size = min(chunk, 1 << int(math.log2(count - start)))
        parts.append(_evaluate(problem, rows.chunk(start, size)))
        start += size
        if progress is not None:
            jax.block_until_ready(parts[-1])
            progress(size)
    values = np.asarray(jnp.concatenate(parts), np.float64) if parts else np.zeros(0)
    if syncs is not None:
        syncs["evaluate"] = syncs.get("evaluate", 0) + 1 + (len(parts) if progress is not None else 0)
    if not np.all(np.isfinite(values)):
        raise NonFiniteOutputError(
            f"the model output is NaN/inf on {int((~np.isfinite(values)).sum())} of {values.size} masks; "
            "check the fill values and the output selector (e.g. log of a zero probability)."
        )
    return values


def progress_ticker(progress: Callable[[int, int], None] | bool | None, total: int) -> tuple[Any, Any]:
    """``(tick(k), close())`` for ``progress``: a tqdm bar (``True``), a callable or nothing."""
    if progress is None or progress is False:
        return None, lambda: None
    done = [0]
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="mask", unit_scale=True, leave=False, desc="compressive")
        return bar.update, bar.close
    if not callable(progress):
        raise ActSpecError(
            f"progress must be True, a callable progress(done, total) or None, got {progress!r}."
        )

    def tick(count: int) -> None:
        done[0] += count
        progress(done[0], total)

    return tick, lambda: None
