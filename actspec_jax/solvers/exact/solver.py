"""Exact spectra: evaluate all ``2^n`` masks in chunks, then one fast Walsh–Hadamard transform.

For ``v[k] = f(x_k)`` in the enumeration order of :mod:`actspec_jax.transforms.indexing`,
``f̂(S) = fwht(v)[S] / 2^n``. Cost: ``2^n`` evaluations of the problem plus ``O(n 2^n)``
for the transform; memory: the value table ``float[B, 2^n]`` (``B`` outputs), its
transform, and one chunk of evaluations sized by the memory budget.

Two evaluation paths (:func:`exact_value_table`): *direct* (every mask through the whole
head, in cache-sized blocks on CPU) and *incremental* (when the head starts with a
projection: a subset-sum table over the masked neurons' contributions to the projection's
output, then only the rest of the head per mask; see :mod:`actspec_jax.solvers.exact.incremental`).
With several devices the table is split over a 1-D mesh (:mod:`actspec_jax.solvers.common.sharding`):
each device fills its own contiguous block of masks and the transform combines the blocks
with collectives.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from actspec_jax.errors import (
    ActSpecError,
    ProblemTooLargeError,
    format_bytes,
)
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.memory import (
    available_memory,
)
from actspec_jax.solvers.common.settings import (
    Bytes,
    Choice,
    Devices,
    DType,
    Flag,
    Real,
    Whole,
    check_settings,
)
from actspec_jax.solvers.common.sharding import (
    MASK_AXIS,
    DeviceSpec,
    fwht_sharded,
    gather_to_host,
    mesh_size,
)
from actspec_jax.solvers.common.validate import TRACER_ERRORS
from actspec_jax.solvers.exact.table import (  # noqa: F401  (old import path of the table functions)
    Progress,
    _resolve_mesh,
    _spectrum_from_table,
    _TableCheckpoint,
    evaluation_plan,
    exact_value_table,
    is_traced,
)
from actspec_jax.spectrum import Spectrum, SpectrumBatch
from actspec_jax.transforms.indexing import subsets_from_indices

__all__ = ["ExactSolver", "evaluation_plan", "exact_value_table"]

UNDER_JIT_HINT = (
    "it checks the values on the host and returns a host-side Spectrum, so it cannot run on traced "
    "values inside jax.jit / vmap / grad. Inside traced code use the functional form: "
    "actspec_jax.exact_spectrum(problem.evaluate_unchecked, problem.n) -> dense coefficients "
    "float[*output_shape, 2^n] (and actspec_jax.top_terms(dense, k) for the largest ones); "
    "ExactSolver().dense(problem) does this for you."
)


def _transform(table: jax.Array, block_bits: int | None = None, precision: str | None = None) -> jax.Array:
    """``fwht(table) / 2^n``, consuming ``table`` (its buffer is reused where possible)."""
    sharding = getattr(table, "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    # Only our own mask mesh splits the transform; a table that inherited the user's sharding
    # (parameters sharded over their own axes, e.g. "model") is transformed as one array.
    if isinstance(mesh, Mesh) and MASK_AXIS in mesh.axis_names and mesh_size(mesh) > 1:
        return _scale(fwht_sharded(table, mesh, donate=True, block_bits=block_bits, precision=precision))
    return _spectrum_from_table(table, block_bits, precision)


@functools.partial(jax.jit, donate_argnums=(0,))
def _scale(coefficients: jax.Array) -> jax.Array:
    return coefficients / coefficients.shape[-1]


@jax.jit
def _norms(dense: jax.Array) -> jax.Array:
    return jnp.sum(dense * dense, axis=-1)


TOPK_GROUP = 1 << 16  # entries per group of the two-stage top-k (bounded temporary memory)


@functools.partial(jax.jit, static_argnames=("k",))
def _top_k(dense: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Largest-|value| ``k`` entries per row of ``float[B, L]`` (values with sign, indices).

    Rows longer than ``TOPK_GROUP`` go in two stages (top-k per group in a compiled loop,
    then over the candidates), so no full-size sort buffer is ever allocated.
    """
    batch, length = dense.shape
    if length <= TOPK_GROUP or k > TOPK_GROUP:
        _, idx = jax.lax.top_k(jnp.abs(dense), k)
        return jnp.take_along_axis(dense, idx, axis=-1), idx
    groups = length // TOPK_GROUP

    def per_group(g: jax.Array) -> tuple[jax.Array, jax.Array]:
        block = jax.lax.dynamic_slice(dense, (jnp.int32(0), g * TOPK_GROUP), (batch, TOPK_GROUP))
        _, idx = jax.lax.top_k(jnp.abs(block), k)
        return jnp.take_along_axis(block, idx, axis=-1), idx + g * TOPK_GROUP

    vals, idx = jax.lax.map(per_group, jnp.arange(groups, dtype=jnp.int32))
    vals = vals.transpose(1, 0, 2).reshape(batch, -1)
    idx = idx.transpose(1, 0, 2).reshape(batch, -1)
    _, best = jax.lax.top_k(jnp.abs(vals), k)
    return jnp.take_along_axis(vals, best, axis=-1), jnp.take_along_axis(idx, best, axis=-1)


#: What each setting of :class:`ExactSolver` accepts (upper bounds: sanity, far above use).
EXACT_RULES = {
    "max_n": Whole(1, 48),
    "top_k": Whole(1),
    "rtol": Real(0.0, 1.0, high_open=True),
    "memory_budget": Bytes(),
    "chunk_size": Whole(1, 1 << 40, optional=True),
    "block_size": Whole(1, 1 << 40, optional=True),
    "dtype": DType(),
    "keep_dense": Flag(),
    "incremental": Flag(optional=True),
    "devices": Devices(),
    "wht_block_bits": Whole(1, 30, optional=True),
    "wht_precision": Choice(("default", "high", "highest"), optional=True),
    "checkpoint_every_s": Real(0.0, infinite=True),
    "keep_checkpoint": Flag(),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExactSolver:
    """Exact Fourier spectrum by enumerating every mask and one fast WHT.

    Args:
      max_n: refuse problems with more variables (the table has ``2^n`` entries per output).
      top_k: at most this many terms in the sparse :class:`~actspec_jax.Spectrum` per output.
      rtol: drop terms with ``|f̂(S)| ≤ rtol · ‖f‖₂`` from the sparse list (float32 round-off
        of exactly-zero coefficients); ``0`` keeps every term.
      memory_budget: bytes of working memory per chunk of masks (default: half of a device's
        free memory, 1 GiB on CPU).
      chunk_size: masks per chunk (overrides the budget; rounded down to a power of two).
      block_size: masks per cache block inside a chunk (default: ~8 MiB of intermediates on
        CPU, no blocking on accelerators).
      dtype: ``float32`` (default) or ``float64`` (needs ``jax_enable_x64``).
      keep_dense: attach the full dense spectrum ``float[2^n]`` to each result.
      incremental: ``None`` (automatic) evaluates through a subset-sum table when the head
        starts with a projection (dense, attention, convolution; see
        :mod:`actspec_jax.solvers.exact.incremental`), ``True`` requires it, ``False`` disables it.
      devices: devices to split the mask table over — ``None`` (default: every device JAX
        sees, rounded down to a power of two), an int, a device list, or a
        :class:`jax.sharding.Mesh` with an axis ``"masks"``. More devices than exist raise
        :class:`~actspec_jax.solvers.common.sharding.DeviceCountError`. Results equal the one-device ones
        (mask values bitwise; the transform to float rounding).
      wht_block_bits: bits per Kronecker factor of the transform (default 5 on CPU, 7 on
        GPU/TPU; see :func:`actspec_jax.transforms.fwht`).
      wht_precision: matmul precision of the transform: ``None`` (``"highest"``: exact float32
        on every backend), ``"high"`` or ``"default"`` (faster on TPU/GPU, ~3 digits).
      checkpoint_every_s: with ``checkpoint_path=`` (a call argument), seconds between saves
        of the partly filled value table; an interrupted solve also saves on its way out.
      keep_checkpoint: leave the checkpoint file in place when the spectrum is done (the caller
        removes it once the results are safely written; ``actspec run`` does).

    Calling the solver on a problem returns a :class:`~actspec_jax.Spectrum` for a single
    function and a :class:`~actspec_jax.SpectrumBatch` for a batch of outputs.
    """

    max_n: int = 26
    top_k: int = 4096
    rtol: float = 1e-6
    memory_budget: int | None = None
    chunk_size: int | None = None
    block_size: int | None = None
    dtype: Any = None
    keep_dense: bool = True
    incremental: bool | None = None
    devices: DeviceSpec = None
    wht_block_bits: int | None = None
    wht_precision: str | None = None
    checkpoint_every_s: float = 60.0
    keep_checkpoint: bool = False

    def __post_init__(self) -> None:
        """Every setting's type and range (:data:`EXACT_RULES`), checked when the solver is built."""
        check_settings(self, EXACT_RULES, "ExactSolver")

    def _guard(self, problem: Problem) -> None:
        n = problem.n
        itemsize = jnp.dtype(self.dtype or jnp.float32).itemsize
        need = 2 * problem.num_outputs * (1 << n) * itemsize  # exact: Python ints do not overflow
        if n <= 62:
            mesh = _resolve_mesh(self.devices, n)
            need //= 1 if mesh is None else mesh_size(mesh)
        hint = (
            "Use the compressive solver for large layers (actspec_jax.CompressiveSolver("
            "max_evaluations=20_000), key=…), the Goldreich–Levin threshold search "
            "(actspec_jax.GoldreichLevin(tau=0.1)), or mask a subset of the neurons (units=[...])."
        )
        if n > self.max_n:
            raise ProblemTooLargeError(
                f"the exact solver enumerates 2^n masks; n={n} exceeds max_n={self.max_n}. The value "
                f"table and its transform would need {format_bytes(need)} for {problem.num_outputs} "
                f"output(s). {hint}"
            )
        free = available_memory()
        if free is not None and need > free:
            raise ProblemTooLargeError(
                f"the exact spectrum of n={n} neurons over {problem.num_outputs} output(s) needs "
                f"{format_bytes(need)} but only {format_bytes(free)} is free. {hint}"
            )

    def dense(
        self,
        problem: Problem,
        *,
        progress: Progress | None = None,
        checkpoint_path: str | os.PathLike | None = None,
    ) -> jax.Array:
        """Full spectrum ``float[*output_shape, 2^n]`` (index ``S`` = subset bitmask).

        ``checkpoint_path``: see :func:`exact_value_table`; removed once the transform is done.

        Traced problems (inside the caller's ``jit``/``vmap``/``grad``) go through the pure
        :func:`actspec_jax.exact_spectrum` (no NaN check, no progress, no checkpoint; one
        device), so this method composes with JAX transformations.
        """
        if is_traced(problem):
            if progress is not None or checkpoint_path is not None:
                raise ActSpecError(f"progress= and checkpoint_path= need concrete values: {UNDER_JIT_HINT}")
            from actspec_jax.solvers.functional import exact_spectrum

            if problem.n > self.max_n:
                raise ProblemTooLargeError(f"n={problem.n} exceeds max_n={self.max_n}.")
            dense = exact_spectrum(
                problem.evaluate_unchecked,
                problem.n,
                chunk_size=self.chunk_size or 4096,
                block_bits=self.wht_block_bits,
                precision=self.wht_precision,
            )
            return dense.reshape((*problem.output_shape, -1))
        self._guard(problem)
        table = exact_value_table(
            problem,
            dtype=self.dtype,
            memory_budget=self.memory_budget,
            chunk_size=self.chunk_size,
            block_size=self.block_size,
            progress=progress,
            incremental=self.incremental,
            devices=self.devices,
            checkpoint_path=checkpoint_path,
            checkpoint_every_s=self.checkpoint_every_s,
        )
        dense = _transform(table, self.wht_block_bits, self.wht_precision)
        if checkpoint_path is not None and not self.keep_checkpoint and os.path.exists(checkpoint_path):
            os.unlink(checkpoint_path)  # the spectrum is complete
        return dense.reshape((*problem.output_shape, -1))

    def __call__(
        self,
        problem: Problem,
        *,
        key: jax.Array | None = None,
        progress: Progress | None = None,
        checkpoint_path: str | os.PathLike | None = None,
    ) -> Spectrum | SpectrumBatch:
        """Solve ``problem``. ``key`` is accepted for a uniform solver API and recorded only.

        ``checkpoint_path``: a file for the partly filled value table, saved every
        ``checkpoint_every_s`` seconds and on interruption; calling again with the same file
        resumes and gives the same spectrum. Removed once the spectrum is built.
        """
        if is_traced(problem):
            raise ActSpecError(f"ExactSolver()(problem) got traced arrays: {UNDER_JIT_HINT}")
        try:
            return self._solve(problem, key=key, progress=progress, checkpoint_path=checkpoint_path)
        except TRACER_ERRORS as err:
            raise ActSpecError(f"ExactSolver()(problem) ran into traced values: {UNDER_JIT_HINT}") from err

    def _solve(
        self,
        problem: Problem,
        *,
        key: jax.Array | None,
        progress: Progress | None,
        checkpoint_path: str | os.PathLike | None,
    ) -> Spectrum | SpectrumBatch:
        if self.top_k < 1:
            raise ActSpecError(f"top_k must be >= 1, got {self.top_k}.")
        if not 0.0 <= self.rtol < 1.0:
            raise ActSpecError(f"rtol must be in [0, 1), got {self.rtol}.")
        started = time.perf_counter()
        plan = evaluation_plan(
            problem,
            memory_budget=self.memory_budget,
            chunk_size=self.chunk_size,
            block_size=self.block_size,
            incremental=self.incremental,
            devices=self.devices,
        )
        dense = self.dense(problem, progress=progress, checkpoint_path=checkpoint_path)
        dense = dense.reshape(problem.num_outputs, -1)
        n = problem.n
        k = min(self.top_k, dense.shape[-1])
        norms = _norms(dense)
        top_val, top_idx = _top_k(dense, k)
        dense_np = gather_to_host(dense) if self.keep_dense else None
        norms_np = gather_to_host(norms)
        top_idx, top_val = gather_to_host(top_idx), gather_to_host(top_val)
        wall = time.perf_counter() - started
        solver_info = {
            "name": "exact",
            "max_n": self.max_n,
            "top_k": self.top_k,
            "rtol": self.rtol,
            "dtype": str(jnp.dtype(self.dtype or jnp.float32)),
            "evaluations": 1 << n,
            "wall_time_s": wall,
            "key": None if key is None else np.asarray(jax.random.key_data(key)).tolist(),
            "backend": jax.default_backend(),
            "evaluation": plan["evaluation"],
            "devices": plan["devices"],
            "chunk": plan["chunk"],
            "block": plan["block"],
            "wht_block_bits": self.wht_block_bits,
            "wht_precision": self.wht_precision or "highest",
        }
        description = problem.describe()
        spectra = []
        for b, label in enumerate(problem.output_labels):
            keep = np.abs(top_val[b]) > self.rtol * np.sqrt(norms_np[b])
            spectra.append(
                Spectrum(
                    n=n,
                    subsets=subsets_from_indices(top_idx[b][keep], n),
                    coefficients=top_val[b][keep],
                    labels=problem.labels,
                    norm_sq=float(norms_np[b]),
                    problem=description,
                    solver=solver_info,
                    dense=dense_np[b] if dense_np is not None else None,
                    output_label=label,
                    output_index=b,
                )
            )
        if not problem.output_shape:
            return spectra[0]
        return SpectrumBatch(spectra=tuple(spectra), output_shape=problem.output_shape)
