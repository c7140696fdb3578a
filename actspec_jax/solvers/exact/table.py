"""The value table of an exact solve: ``f`` at all ``2^n`` masks, in chunks, checkpointed.

:func:`exact_value_table` fills ``float[B, 2^n]`` by one of two paths — *direct* (every mask
through the whole head, in cache-sized blocks on CPU) or *incremental* (a subset-sum table
over the masked neurons' contributions to the head's first projection; see
:mod:`actspec_jax.solvers.exact.incremental`) — on one device or split over a 1-D mesh
(:mod:`actspec_jax.solvers.common.sharding`); :func:`evaluation_plan` says which path and chunk size a
problem gets. :class:`~actspec_jax.solvers.exact.solver.ExactSolver` transforms the table.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from actspec_jax.errors import (
    ActSpecError,
    NonFiniteOutputError,
)
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.checkpoint import (
    CheckpointError,
    fingerprint,
    problem_digest,
    read_checkpoint,
    write_checkpoint,
)
from actspec_jax.solvers.common.memory import (
    bytes_per_mask,
    chunk_size_for_budget,
    default_block_size,
    default_memory_budget,
)
from actspec_jax.solvers.common.sharding import (
    MASK_AXIS,
    DeviceSpec,
    gather_to_host,
    mask_mesh,
    mesh_size,
    table_sharding,
)
from actspec_jax.solvers.exact import incremental as _inc
from actspec_jax.transforms.indexing import enumerate_masks, index_to_subset
from actspec_jax.transforms.wht import fwht_consuming

__all__ = ["evaluation_plan", "exact_value_table", "is_traced"]


def is_traced(tree: Any) -> bool:
    """Whether any array leaf of ``tree`` (e.g. a problem's parameters) is a JAX tracer."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


Progress = Callable[[int, int], None]


def _write_chunk(
    problem: Problem,
    table: jax.Array,
    at: jax.Array,
    first: jax.Array,
    *,
    chunk: int,
    n: int,
    block: int | None,
    incremental: bool,
) -> jax.Array:
    """Write the values of masks ``first … first + chunk − 1`` into ``table[:, at : at + chunk]``.

    Blocks of ``block`` masks are evaluated in a compiled loop and written in place, so the
    only memory beyond the table is one block's intermediates.
    """
    block = chunk if block is None or block >= chunk else block
    if incremental:
        split, reason = _inc.split_head(problem)
        if split is None:  # checked before compiling; kept as a guard
            raise ActSpecError(f"incremental evaluation is not available: {reason}.")
        plan = _inc.prepare(problem, split)
        bits = block.bit_length() - 1
        low = _inc.low_table(plan, bits)

        def one_block(s: jax.Array) -> jax.Array:
            return _inc.block_values(problem, split, plan, low, s, bits)

    else:

        def one_block(s: jax.Array) -> jax.Array:
            return problem.evaluate_unchecked(enumerate_masks(s, block, n))

    def write(i: jax.Array, table: jax.Array) -> jax.Array:
        offset = i * block
        values = one_block(first + offset).reshape(block, -1).T.astype(table.dtype)
        return jax.lax.dynamic_update_slice(table, values, (jnp.int32(0), at + offset))

    if block == chunk:
        return write(jnp.int32(0), table)
    return jax.lax.fori_loop(jnp.int32(0), jnp.int32(chunk // block), write, table)


@functools.partial(jax.jit, static_argnames=("chunk", "n", "block", "incremental"), donate_argnums=(1,))
def _fill_chunk(
    problem: Problem,
    table: jax.Array,
    start: jax.Array,
    *,
    chunk: int,
    n: int,
    block: int | None,
    incremental: bool = False,
) -> jax.Array:
    return _write_chunk(problem, table, start, start, chunk=chunk, n=n, block=block, incremental=incremental)


@functools.partial(
    jax.jit, static_argnames=("chunk", "n", "block", "incremental", "mesh"), donate_argnums=(1,)
)
def _fill_chunk_sharded(
    problem: Problem,
    table: jax.Array,
    start: jax.Array,
    *,
    chunk: int,
    n: int,
    block: int | None,
    incremental: bool,
    mesh: Mesh,
) -> jax.Array:
    """Every device fills ``chunk`` masks of its own block: global index
    ``device · 2^n / d + start + r`` (no communication)."""
    local_len = table.shape[-1] // mesh_size(mesh)

    def body(problem: Problem, local: jax.Array, start: jax.Array) -> jax.Array:
        offset = jax.lax.axis_index(MASK_AXIS).astype(jnp.int32) * local_len
        return _write_chunk(
            problem, local, start, offset + start, chunk=chunk, n=n, block=block, incremental=incremental
        )

    spec = P(None, MASK_AXIS)
    # check_vma=False: the incremental path binds primitives directly (a jaxpr interpreter),
    # which skips jnp's automatic varying-axis promotion; the body uses no collectives.
    return jax.shard_map(body, mesh=mesh, in_specs=(P(), spec, P()), out_specs=spec, check_vma=False)(
        problem, table, start
    )


def _spectrum_from_table(
    table: jax.Array, block_bits: int | None = None, precision: str | None = None
) -> jax.Array:
    """``fwht(table) / 2^n`` consuming ``table``: at most two table-sized arrays alive."""
    return fwht_consuming(table, scale=1.0 / table.shape[-1], block_bits=block_bits, precision=precision)


def _table_dtype(dtype: Any) -> Any:
    dtype = jnp.dtype(dtype or jnp.float32)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ActSpecError(
            "dtype=float64 needs 64-bit mode: call jax.config.update('jax_enable_x64', True) first."
        )
    if dtype not in (jnp.float32, jnp.float64):
        raise ActSpecError(f"dtype must be float32 or float64, got {dtype}.")
    return dtype


def _resolve_mesh(devices: DeviceSpec, n: int) -> Mesh | None:
    """The mask mesh to use, or ``None`` for the single-device path (one device, or a table
    too small to split: ``2^n < d²``)."""
    mesh = mask_mesh(devices)
    d = mesh_size(mesh)
    if d == 1 or (1 << n) < d * d:
        return None
    return mesh


def _use_incremental(problem: Problem, incremental: bool | None) -> tuple[bool, str]:
    if incremental is False:
        return False, "disabled (incremental=False)"
    split, reason = _inc.split_head(problem)
    if split is None and incremental:
        raise ActSpecError(
            f"incremental=True but this problem has no incremental evaluation: {reason}. Use "
            "incremental=None (automatic) or False."
        )
    return split is not None, reason


_PER_MASK = _inc.StructureCache()


def _bytes_per_mask(problem: Problem, incremental: bool) -> int:
    if incremental:
        split, _ = _inc.split_head(problem)
        return bytes_per_mask(lambda m: _inc.evaluate_incremental(problem, m, split), problem.n)
    return bytes_per_mask(problem.evaluate_unchecked, problem.n)


def evaluation_plan(
    problem: Problem,
    *,
    memory_budget: int | None = None,
    chunk_size: int | None = None,
    block_size: int | None = None,
    incremental: bool | None = None,
    devices: DeviceSpec = 1,
) -> dict[str, Any]:
    """How :func:`exact_value_table` will evaluate ``problem``: path, devices, chunk and
    block sizes, bytes per mask. Raises :class:`~actspec_jax.MemoryBudgetError` when the
    budget cannot hold one mask's intermediates (the message names the minimum)."""
    n = problem.n
    total = 1 << n
    use_inc, reason = _use_incremental(problem, incremental)
    per_mask = _PER_MASK.get(problem, lambda: _bytes_per_mask(problem, use_inc), use_inc)
    mesh = _resolve_mesh(devices, n)
    d = 1 if mesh is None else mesh_size(mesh)
    local = total // d
    if chunk_size is None:
        budget = memory_budget if memory_budget is not None else default_memory_budget()
        chunk = chunk_size_for_budget(per_mask, budget, limit=local)
    else:
        if chunk_size < 1:
            raise ActSpecError(f"chunk_size must be >= 1, got {chunk_size}.")
        if memory_budget is not None:
            chunk_size_for_budget(per_mask, memory_budget, limit=local)  # validates the budget
        chunk = 1 << int(np.floor(np.log2(min(chunk_size, local))))
    if block_size is not None and block_size < 1:
        raise ActSpecError(f"block_size must be >= 1, got {block_size}.")
    block = block_size if block_size is not None else default_block_size(per_mask)
    block = None if block is None else 1 << int(np.floor(np.log2(min(block, chunk))))
    return {
        "evaluation": "incremental" if use_inc else "direct",
        "incremental_reason": reason,
        "bytes_per_mask": int(per_mask),
        "chunk": int(chunk),
        "block": block,
        "devices": d,
        "mesh": mesh,
    }


class _TableCheckpoint:
    """The partly filled value table of :func:`exact_value_table` in an ``.npz`` checkpoint."""

    FORMAT = "actspec_jax.exact_table_checkpoint"
    VERSION = 1

    def __init__(self, path: str | os.PathLike, problem: Problem, plan: dict[str, Any], dtype: Any) -> None:
        if jax.process_count() > 1:
            raise ActSpecError(
                "exact-solver checkpoints are written by one process; drop checkpoint_path in a "
                "multi-process run (or run on one host)."
            )
        self.path = os.fspath(path)
        self.shape = (problem.num_outputs, 1 << problem.n)
        self.dtype = np.dtype(dtype)
        doc = {
            "problem": problem_digest(problem),
            "n": problem.n,
            "shape": self.shape,
            "dtype": str(self.dtype),
            **{k: plan[k] for k in ("evaluation", "chunk", "block", "devices")},
        }
        self.fingerprint = fingerprint(doc)
        self.chunk = int(plan["chunk"])
        self.span = self.shape[1] // int(plan["devices"])  # masks per device

    def resume(self, mesh: Mesh | None) -> tuple[jax.Array | None, int]:
        """``(saved table, masks done per device)``, or ``(None, 0)`` when there is no file."""
        if not os.path.exists(self.path):
            return None, 0
        fix = f"Delete {self.path} (or pass another checkpoint_path) to start a fresh solve."
        arrays, meta = read_checkpoint(
            self.path,
            format_tag=self.FORMAT,
            version=self.VERSION,
            fingerprint=self.fingerprint,
            what="exact-solver",
            fix=fix,
        )
        saved = arrays.get("table")
        done = meta.get("done")
        matches = saved is not None and saved.shape == self.shape and saved.dtype == self.dtype
        if not matches:
            raise CheckpointError(f"{self.path}: the saved table does not match this solve. {fix}")
        if not isinstance(done, int) or not 0 <= done <= self.span or done % self.chunk:
            raise CheckpointError(
                f"{self.path}: corrupt progress record (done={done!r}; expected a multiple of the "
                f"chunk {self.chunk} up to {self.span}). {fix}"
            )
        restored = jnp.asarray(saved)
        if mesh is not None:
            restored = jax.device_put(restored, table_sharding(mesh))
        return restored, done

    def save(self, table: jax.Array, done: int) -> None:
        write_checkpoint(
            self.path,
            {"table": gather_to_host(table)},
            {"fingerprint": self.fingerprint, "done": int(done)},
            format_tag=self.FORMAT,
            version=self.VERSION,
        )

    def save_if_intact(self, table: jax.Array, done: int) -> None:
        """Save after an interruption unless the table's buffer was lost with it."""
        try:
            if not table.is_deleted():
                self.save(table, done)
        except Exception:  # the failed chunk took the table with it: keep the last checkpoint
            pass


def exact_value_table(
    problem: Problem,
    *,
    dtype: Any = None,
    memory_budget: int | None = None,
    chunk_size: int | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
    incremental: bool | None = None,
    devices: DeviceSpec = 1,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every_s: float = 60.0,
) -> jax.Array:
    """Values of the problem on all ``2^n`` masks: ``float[B, 2^n]`` (``B = num_outputs``).

    Column ``k`` is mask ``x_k`` (bit ``i`` of ``k`` set ⇔ neuron ``i`` ablated). Each chunk
    (one compiled call, sized by ``memory_budget`` per device) is evaluated ``block_size``
    masks at a time in a compiled loop (default: cache-sized blocks on CPU, whole chunks on
    accelerators).

    Args:
      incremental: ``None`` (default) uses the subset-sum table when the head starts with a
        projection (:func:`actspec_jax.solvers.exact.incremental.supports_incremental`), ``True``
        requires it, ``False`` evaluates every mask through the whole head.
      devices: ``1`` (default here) — one device; ``None``/``"all"``, an int, a device list
        or a :class:`~jax.sharding.Mesh` — split the table over that many devices (the
        result is then sharded on its last axis; see :mod:`actspec_jax.solvers.common.sharding`).
      checkpoint_path: ``.npz`` file for the partly filled table: written atomically every
        ``checkpoint_every_s`` seconds and when the run is interrupted (an exception, Ctrl-C);
        a rerun with the same file resumes where it stopped and gives the same table bit for
        bit. The file is left in place (:class:`ExactSolver` removes it once the spectrum is
        built). Single-process runs only.

    Raises :class:`NonFiniteOutputError` if any value is NaN or inf.
    """
    n = problem.n
    total = 1 << n
    dtype = _table_dtype(dtype)
    plan = evaluation_plan(
        problem,
        memory_budget=memory_budget,
        chunk_size=chunk_size,
        block_size=block_size,
        incremental=incremental,
        devices=devices,
    )
    chunk, block, mesh = plan["chunk"], plan["block"], plan["mesh"]
    use_inc = plan["evaluation"] == "incremental"
    d = 1 if mesh is None else mesh_size(mesh)
    span = total // d  # masks per device
    settings = {"chunk": chunk, "block": block, "incremental": use_inc, "n": n}
    if not checkpoint_every_s >= 0:
        raise ActSpecError(f"checkpoint_every_s must be >= 0 seconds, got {checkpoint_every_s}.")
    saver = None if checkpoint_path is None else _TableCheckpoint(checkpoint_path, problem, plan, dtype)
    table, begin = (None, 0) if saver is None else saver.resume(mesh)
    if mesh is None:
        fill = functools.partial(_fill_chunk, **settings)
        if table is None:
            table = jnp.zeros((problem.num_outputs, total), dtype)
    else:
        fill = functools.partial(_fill_chunk_sharded, **settings, mesh=mesh)
        if table is None:
            table = jax.device_put(jnp.zeros((problem.num_outputs, total), dtype), table_sharding(mesh))
    done = begin
    last_save = time.monotonic()
    try:
        for start in range(begin, span, chunk):
            table = fill(problem, table, jnp.int32(start))
            done = min(start + chunk, span)
            if progress is not None:
                table.block_until_ready()
                progress(done * d, total)
            if saver is not None and done < span and time.monotonic() - last_save >= checkpoint_every_s:
                saver.save(table, done)
                last_save = time.monotonic()
    except BaseException:
        if saver is not None and done > begin:
            saver.save_if_intact(table, done)  # an interrupted run keeps what it computed
        raise
    finite = _all_finite(table)
    if not bool(gather_to_host(finite)):
        bad = ~np.isfinite(gather_to_host(table))
        row, col = np.argwhere(bad)[0]
        raise NonFiniteOutputError(
            f"the model output is NaN/inf for mask {int(col)} (ablated neurons "
            f"{list(index_to_subset(int(col)))}, output {int(row)}). Check the fill values and the "
            "output selector (e.g. log of a zero probability)."
        )
    return table


@jax.jit
def _all_finite(table: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(table))
