"""The masks of a compressive plan, generated and evaluated in chunks (private).

Nothing of size ``masks × n`` is kept: a chunk of masks is made on the device from the round's
design (structured rows) or from a key (uniform rows), evaluated, and dropped. At ``n = 262,144``
the 20,000 masks of a plan would be 21 GB as float32; a chunk of 256 is 268 MB.

* **Structured rows** (:class:`StructuredRows`): row ``r`` of a round is ``(c, p, ℓ)`` with
  ``r = (c·(P+1) + p)·2^b + ℓ`` and bits ``M_c ℓ ⊕ o_c ⊕ d_p`` (:mod:`~.design`); bit ``i`` of
  ``M_c ℓ`` is the parity of ``ℓ`` AND row ``i`` of ``M_c`` packed as an integer. They are
  *evaluated* in ℓ-major order (``r' = ℓ·C·(P+1) + c·(P+1) + p``), so the rows of the same round
  at ``b − 1`` are a prefix (the design is nested in ``b``) and a ledger of evaluated prefixes serves
  every budget; :meth:`StructuredRows.logical` puts values back in ``(c, p, ℓ)`` order.
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
import inspect
import math
import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from actspec_jax.errors import ActSpecError, NonFiniteOutputError
from actspec_jax.solvers.common.sharding import gather_to_host, mesh_size, sharded_map

__all__ = ["BLOCK", "StageProgress", "StructuredRows", "UniformRows", "evaluate_rows", "pieces"]

#: Rows of one uniform block (one key each).
BLOCK = 64


@functools.partial(jax.jit, static_argnames=("size", "b", "ell_major"))
def _structured(
    words: jax.Array,
    offsets: jax.Array,
    delays: jax.Array,
    start: jax.Array,
    *,
    size: int,
    b: int,
    ell_major: bool = False,
) -> jax.Array:
    rows = start + jnp.arange(size, dtype=jnp.int32)
    if ell_major:
        per_ell = words.shape[0] * delays.shape[0]
        ell, group, delay = rows // per_ell, (rows % per_ell) // delays.shape[0], rows % delays.shape[0]
    else:
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

    def evaluation_chunk(self, start: int, size: int) -> jax.Array:
        """``float32[size, n]``: rows ``start … start + size − 1`` in evaluation (ℓ-major) order."""
        words, offsets, delays = self._device
        b = self.hashes.shape[2]
        return _structured(words, offsets, delays, jnp.int32(start), size=size, b=b, ell_major=True)

    def logical(self, values: np.ndarray) -> np.ndarray:
        """``values[count, …]`` in evaluation order → the same in ``(c, p, ℓ)`` order."""
        groups, _, b = self.hashes.shape
        shaped = values.reshape(1 << b, groups, self.delays.shape[0], *values.shape[1:])
        return np.moveaxis(shaped, 0, 2).reshape(values.shape)


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

    evaluation_chunk = chunk

    def logical(self, values: np.ndarray) -> np.ndarray:
        """Values in evaluation order are already in row order."""
        return values

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


@functools.partial(jax.jit, static_argnames=("mesh",))
def _evaluate(problem: Any, masks: jax.Array, mesh: Mesh | None = None) -> jax.Array:
    """``float32[B, K]``: the problem at ``masks[B, n]``, outputs flattened; with a mask mesh of
    ``d`` devices (``d`` divides ``B``) each device evaluates ``B/d`` masks."""
    d = 1 if mesh is None else mesh_size(mesh)
    if d == 1 or masks.shape[0] % d:
        out = problem.evaluate_unchecked(masks)
    else:
        split = masks.reshape(d, masks.shape[0] // d, masks.shape[1])
        out = sharded_map(lambda p, m: p.evaluate_unchecked(m), problem, split, mesh)
    return out.reshape(masks.shape[0], -1)


def pieces(start: int, count: int, chunk: int) -> list[tuple[int, int]]:
    """``(start, size)`` of the pieces evaluating rows ``start … count − 1``: ``chunk`` (a power of
    two) at a time, then the binary digits of the rest — a function of ``(start, count)`` only, so a
    run resumed at a piece boundary cuts the rest exactly as the uninterrupted run did."""
    out = []
    while start < count:
        size = min(chunk, 1 << int(math.log2(count - start)))
        out.append((start, size))
        start += size
    return out


def evaluate_rows(
    problem: Any,
    rows: Any,
    *,
    chunk: int,
    start: int = 0,
    progress: Callable[[int], None] | None = None,
    syncs: dict[str, int] | None = None,
    mesh: Mesh | None = None,
    on_piece: Callable[[int, np.ndarray], None] | None = None,
    outputs: int = 1,
) -> np.ndarray:
    """``float64[rows.count − start, K]``: the problem's ``K`` (flattened) outputs at rows
    ``start …`` of ``rows`` (a :class:`StructuredRows` or :class:`UniformRows`) in evaluation order,
    ``chunk`` (a power of two) masks at a time (:func:`pieces`).

    No padded mask is evaluated (a budget counts real evaluations) and at most ``log₂ chunk`` sizes
    compile. ``mesh``: a mask mesh whose devices split every piece. ``progress(k)`` is called after
    every piece with the masks done in it (the piece is waited for, so a bar shows finished work);
    ``on_piece(start, values)`` receives every piece's values on the host (e.g. for a ledger).
    ``syncs['evaluate']`` counts the host waits: one for the values, plus one a piece with
    ``progress`` or ``on_piece``. Raises :class:`NonFiniteOutputError` on NaN/inf values.
    """
    parts, waits = [], 0
    for first, size in pieces(int(start), int(rows.count), chunk):
        parts.append(_evaluate(problem, rows.evaluation_chunk(first, size), mesh))
        if on_piece is not None:
            piece = gather_to_host(parts[-1]).astype(np.float64)
            _check_finite(piece)
            on_piece(first, piece)
            waits += 1
        elif progress is not None:
            jax.block_until_ready(parts[-1])
            waits += 1
        if progress is not None:
            progress(size)
    # gather_to_host: under jax.distributed a mesh's result is a global (replicated) array
    values = (
        np.concatenate([gather_to_host(p) for p in parts]).astype(np.float64)
        if parts
        else np.zeros((0, outputs))
    )
    if syncs is not None:
        syncs["evaluate"] = syncs.get("evaluate", 0) + 1 + waits
    _check_finite(values)
    return values


def _check_finite(values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise NonFiniteOutputError(
            f"the model output is NaN/inf on {int((~np.isfinite(values)).any(axis=-1).sum())} of "
            f"{values.shape[0]} masks; check the fill values and the output selector (e.g. log of a "
            "zero probability)."
        )


class StageProgress:
    """Progress of a compressive solve by stage: ``'evaluate'`` (masks), ``'decode'`` (rounds ×
    outputs), ``'refit'`` (outputs).

    ``progress``: ``True`` — a tqdm bar per stage; a callable — ``progress(done, total)`` for the
    evaluations, or ``progress(done, total, stage)`` for every stage when it takes a third argument
    (a ``stage`` keyword or any third positional parameter; counts monotone within a stage);
    ``None``/``False`` — nothing.
    """

    def __init__(self, progress: Any, masks: int, *, rounds: int, outputs: int) -> None:
        if progress is not None and not isinstance(progress, bool) and not callable(progress):
            raise ActSpecError(
                f"progress must be True, a callable progress(done, total) or None, got {progress!r}."
            )
        self.progress = None if progress is False else progress
        self.totals = {"evaluate": int(masks), "decode": int(rounds), "refit": int(outputs)}
        self.done = dict.fromkeys(self.totals, 0)
        self.staged = _takes_stage(progress) if callable(progress) else None
        self.bar: Any = None
        self.bar_stage: str | None = None
        self._lock = threading.Lock()  # outputs may be decoded on several threads

    @property
    def tick(self) -> Callable[[int], None] | None:
        """:meth:`evaluated`, or ``None`` when nothing listens (the evaluation then never waits)."""
        return None if self.progress is None else self.evaluated

    def evaluated(self, count: int) -> None:
        """``count`` more masks evaluated (or found in the ledger)."""
        if count:
            self.stage("evaluate", count)

    def stage(self, name: str, count: int = 1) -> None:
        """``count`` more steps of stage ``name``."""
        if self.progress is None:
            return
        with self._lock:
            self._stage(name, count)

    def _stage(self, name: str, count: int) -> None:
        self.done[name] += int(count)
        done, total = self.done[name], self.totals[name]
        if self.progress is True:
            if self.bar_stage != name:
                self.close()
                from tqdm.auto import tqdm

                unit = {"evaluate": "mask", "decode": "round", "refit": "output"}[name]
                self.bar = tqdm(total=total, unit=unit, unit_scale=name == "evaluate", leave=False,
                                desc=f"compressive {name}")  # fmt: skip
                self.bar_stage = name
            self.bar.update(done - self.bar.n)
        elif self.staged == "keyword":
            self.progress(done, total, stage=name)
        elif self.staged == "positional":
            self.progress(done, total, name)
        elif name == "evaluate":
            self.progress(done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.bar_stage = None, None


def _takes_stage(fn: Callable[..., Any]) -> str | None:
    """How ``fn`` takes the stage: ``'keyword'`` (a ``stage`` or ``**`` parameter), ``'positional'``
    (a third positional parameter, whatever its name) or ``None`` (``fn(done, total)`` only)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    kinds = inspect.Parameter
    if any(p.name == "stage" or p.kind is kinds.VAR_KEYWORD for p in params):
        return "keyword"
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3 or any(p.kind is kinds.VAR_POSITIONAL for p in params):
        return "positional"
    return None
