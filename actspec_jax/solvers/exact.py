"""Exact spectra: evaluate all ``2^n`` masks in chunks, then one fast Walsh–Hadamard transform.

For ``v[k] = f(x_k)`` in the enumeration order of :mod:`actspec_jax.transforms.indexing`,
``f̂(S) = fwht(v)[S] / 2^n``. Cost: ``2^n`` evaluations of the problem plus ``O(n 2^n)``
for the transform; memory: the value table ``float[B, 2^n]`` (``B`` outputs), its
transform, and one chunk of evaluations sized by the memory budget.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import (
    ActSpecError,
    NonFiniteOutputError,
    ProblemTooLargeError,
    format_bytes,
)
from actspec_jax.problems.base import Problem
from actspec_jax.solvers._memory import (
    available_memory,
    bytes_per_mask,
    chunk_size_for_budget,
    default_block_size,
    default_memory_budget,
    evaluate_blocked,
)
from actspec_jax.spectrum import Spectrum, SpectrumBatch
from actspec_jax.transforms.indexing import enumerate_masks, index_to_subset, subsets_from_indices
from actspec_jax.transforms.wht import fwht

__all__ = ["ExactSolver", "exact_value_table"]

Progress = Callable[[int, int], None]


@functools.partial(jax.jit, static_argnames=("chunk", "n", "block"), donate_argnums=(1,))
def _fill_chunk(
    problem: Problem, table: jax.Array, start: jax.Array, *, chunk: int, n: int, block: int | None
) -> jax.Array:
    masks = enumerate_masks(start, chunk, n)
    values = evaluate_blocked(problem.evaluate_unchecked, masks, block)
    values = values.reshape(chunk, -1).T.astype(table.dtype)
    return jax.lax.dynamic_update_slice(table, values, (jnp.int32(0), start))


@jax.jit
def _spectrum_from_table(table: jax.Array) -> jax.Array:
    return fwht(table) / table.shape[-1]


def _table_dtype(dtype: Any) -> Any:
    dtype = jnp.dtype(dtype or jnp.float32)
    if dtype == jnp.float64 and not jax.config.jax_enable_x64:
        raise ActSpecError(
            "dtype=float64 needs 64-bit mode: call jax.config.update('jax_enable_x64', True) first."
        )
    if dtype not in (jnp.float32, jnp.float64):
        raise ActSpecError(f"dtype must be float32 or float64, got {dtype}.")
    return dtype


def exact_value_table(
    problem: Problem,
    *,
    dtype: Any = None,
    memory_budget: int | None = None,
    chunk_size: int | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
) -> jax.Array:
    """Values of the problem on all ``2^n`` masks: ``float[B, 2^n]`` (``B = num_outputs``).

    Column ``k`` is mask ``x_k`` (bit ``i`` of ``k`` set ⇔ neuron ``i`` ablated). Each chunk
    (one compiled call, sized by ``memory_budget``) is evaluated ``block_size`` masks at a time
    in a compiled loop (default: cache-sized blocks on CPU, whole chunks on accelerators).
    Raises :class:`NonFiniteOutputError` if any value is NaN or inf.
    """
    n = problem.n
    total = 1 << n
    dtype = _table_dtype(dtype)
    per_mask = bytes_per_mask(problem.evaluate_unchecked, n)
    if chunk_size is None:
        budget = memory_budget if memory_budget is not None else default_memory_budget()
        chunk = chunk_size_for_budget(per_mask, budget, limit=total)
    else:
        if chunk_size < 1:
            raise ActSpecError(f"chunk_size must be >= 1, got {chunk_size}.")
        chunk = 1 << int(np.floor(np.log2(min(chunk_size, total))))
    if block_size is not None and block_size < 1:
        raise ActSpecError(f"block_size must be >= 1, got {block_size}.")
    block = block_size if block_size is not None else default_block_size(per_mask)
    block = None if block is None else 1 << int(np.floor(np.log2(min(block, chunk))))
    table = jnp.zeros((problem.num_outputs, total), dtype)
    for start in range(0, total, chunk):
        table = _fill_chunk(problem, table, jnp.int32(start), chunk=chunk, n=n, block=block)
        if progress is not None:
            table.block_until_ready()
            progress(min(start + chunk, total), total)
    finite = jnp.isfinite(table)
    if not bool(jnp.all(finite)):
        row, col = np.argwhere(~np.asarray(finite))[0]
        raise NonFiniteOutputError(
            f"the model output is NaN/inf for mask {int(col)} (ablated neurons "
            f"{list(index_to_subset(int(col)))}, output {int(row)}). Check the fill values and the "
            "output selector (e.g. log of a zero probability)."
        )
    return table


@dataclasses.dataclass(frozen=True)
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

    def _guard(self, problem: Problem) -> None:
        n = problem.n
        itemsize = jnp.dtype(self.dtype or jnp.float32).itemsize
        need = 2 * problem.num_outputs * (1 << min(n, 62)) * itemsize
        hint = (
            "Use the Goldreich–Levin search for large layers (actspec_jax.GoldreichLevin(tau=0.1)), "
            "or mask a subset of the neurons (units=[...])."
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

    def dense(self, problem: Problem, *, progress: Progress | None = None) -> jax.Array:
        """Full spectrum ``float[*output_shape, 2^n]`` (index ``S`` = subset bitmask)."""
        self._guard(problem)
        table = exact_value_table(
            problem,
            dtype=self.dtype,
            memory_budget=self.memory_budget,
            chunk_size=self.chunk_size,
            block_size=self.block_size,
            progress=progress,
        )
        return _spectrum_from_table(table).reshape((*problem.output_shape, -1))

    def __call__(
        self,
        problem: Problem,
        *,
        key: jax.Array | None = None,
        progress: Progress | None = None,
    ) -> Spectrum | SpectrumBatch:
        """Solve ``problem``. ``key`` is accepted for a uniform solver API and recorded only."""
        if self.top_k < 1:
            raise ActSpecError(f"top_k must be >= 1, got {self.top_k}.")
        if not 0.0 <= self.rtol < 1.0:
            raise ActSpecError(f"rtol must be in [0, 1), got {self.rtol}.")
        started = time.perf_counter()
        dense = self.dense(problem, progress=progress).reshape(problem.num_outputs, -1)
        n = problem.n
        k = min(self.top_k, dense.shape[-1])
        norms = jnp.sum(dense * dense, axis=-1)
        _, top_idx = jax.lax.top_k(jnp.abs(dense), k)
        top_val = jnp.take_along_axis(dense, top_idx, axis=-1)
        dense_np, norms_np = np.asarray(dense), np.asarray(norms)
        top_idx, top_val = np.asarray(top_idx), np.asarray(top_val)
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
                    dense=dense_np[b] if self.keep_dense else None,
                    output_label=label,
                    output_index=b,
                )
            )
        if not problem.output_shape:
            return spectra[0]
        return SpectrumBatch(spectra=tuple(spectra), output_shape=problem.output_shape)
