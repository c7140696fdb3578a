"""What a solver analyses: a pseudo-Boolean function of a neuron mask.

A *problem* knows its number of variables ``n``, a label per variable, and how to
evaluate a batch of masks ``float32[k, n]`` (±1, +1 = kept; see
:mod:`actspec_jax.transforms.indexing`) to values ``float32[k, *output_shape]``.
``output_shape == ()`` is one function; a non-empty ``output_shape`` is a batch of
functions (e.g. every class logit, or one function per input) that share every mask
evaluation — solvers then return one spectrum per output.

Problems are pytrees, so solvers pass them straight into ``jax.jit``: array data are
leaves, the callables and settings are static.
"""

from __future__ import annotations

import abc
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError, MaskError

__all__ = ["FunctionProblem", "Problem", "check_masks", "check_real_output"]


def check_masks(masks: Any, n: int) -> jax.Array:
    """Validate a mask batch: ``float[k, n]`` with entries ±1. Returns it as a jax array.

    Shape and dtype are checked always; values only when the array is concrete (not traced).
    """
    if not hasattr(masks, "shape") or not hasattr(masks, "dtype"):
        masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != n:
        raise MaskError(
            f"masks must have shape [k, n] = [k, {n}] (one row per mask, one column per neuron), "
            f"got shape {tuple(masks.shape)}. A single mask needs a leading batch axis: masks[None]."
        )
    if not jnp.issubdtype(masks.dtype, jnp.floating):
        raise MaskError(
            f"masks must be floating point with entries ±1 (+1 = kept, −1 = ablated), got dtype "
            f"{masks.dtype}. Convert boolean keep-masks with jnp.where(keep, 1.0, -1.0)."
        )
    if not isinstance(masks, jax.core.Tracer):
        values = np.asarray(masks)
        bad = ~((values == 1.0) | (values == -1.0))
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise MaskError(
                f"masks must contain only +1 (kept) and −1 (ablated); found {values[row, col]!r} "
                f"at mask {row}, neuron {col}. 0/1 masks convert with 2 * m − 1."
            )
    return jnp.asarray(masks)


def check_real_output(dtype: Any, what: str) -> None:
    """Refuse complex (or non-numeric) values: a Walsh spectrum is of a real function, and casting
    would silently drop the imaginary part."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ActSpecError(
            f"{what} returns complex values ({dtype}); spectra are of real functions. Select a real "
            "part explicitly: jnp.real(z), jnp.abs(z) or jnp.angle(z)."
        )
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_):
        raise ActSpecError(f"{what} returns values of dtype {dtype}; it must return real numbers.")


class Problem(abc.ABC):
    """Base class: a batch of pseudo-Boolean functions ``f: {−1,+1}^n → ℝ^{output_shape}``."""

    @property
    @abc.abstractmethod
    def n(self) -> int:
        """Number of variables (neurons) ``n``."""

    @property
    def labels(self) -> tuple[str, ...]:
        """One human-readable label per variable (default ``'0'``, ``'1'``, …)."""
        return tuple(str(i) for i in range(self.n))

    @property
    @abc.abstractmethod
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one evaluation: ``()`` for a single function."""

    @property
    def num_outputs(self) -> int:
        """Number of functions evaluated together (``prod(output_shape)``)."""
        return math.prod(self.output_shape)

    @property
    def output_labels(self) -> tuple[str, ...]:
        """A label per flattened output (``('value',)`` for a single function)."""
        if not self.output_shape:
            return ("value",)
        return tuple(",".join(str(i) for i in idx) for idx in np.ndindex(*self.output_shape))

    @abc.abstractmethod
    def evaluate_unchecked(self, masks: jax.Array) -> jax.Array:
        """Values ``float32[k, *output_shape]`` for masks ``float32[k, n]``; no input checks.

        This is the jittable kernel solvers call inside their own compiled loops.
        """

    def evaluate(self, masks: jax.Array, *, memory_budget: int | None = None) -> jax.Array:
        """Validate ``masks`` (``float[k, n]`` of ±1) and return ``float32[k, *output_shape]``.

        Concrete mask batches are evaluated by a compiled kernel in chunks sized so that one
        chunk's intermediates fit ``memory_budget`` bytes (default: see
        :func:`actspec_jax.solvers.common.memory.default_memory_budget`), so any ``k`` fits. Inside a
        caller's ``jit`` (traced masks) it evaluates in one batch.
        """
        masks = check_masks(masks, self.n)
        if isinstance(masks, jax.core.Tracer):
            return self.evaluate_unchecked(masks)
        from actspec_jax.solvers.common.memory import evaluate_in_chunks

        return evaluate_in_chunks(self, masks, memory_budget=memory_budget)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description stored with every spectrum."""
        return {"kind": type(self).__name__, "n": self.n}


@jax.tree_util.register_pytree_node_class
class FunctionProblem(Problem):
    """A problem from a plain batched function.

    Args:
      f: ``float32[k, n]`` of ±1 (+1 = kept) → ``float32[k]`` (or ``float32[k, *out]`` for a
        batch of functions). Must be jittable and treat rows independently.
      n: number of variables.
      labels: optional label per variable.
      name: optional name recorded in the spectrum's metadata.

    Example:
      >>> from actspec_jax import ExactSolver, FunctionProblem
      >>> problem = FunctionProblem(lambda x: x[:, 0] * x[:, 2], n=3)   # χ_{0,2}
      >>> ExactSolver()(problem).to_dict()
      {(0, 2): 1.0}
    """

    def __init__(
        self,
        f: Callable[[jax.Array], jax.Array],
        n: int,
        *,
        labels: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(f):
            raise TypeError(f"FunctionProblem needs a callable f, got {type(f).__name__}.")
        try:
            count = -1 if isinstance(n, bool) else operator.index(n)
        except TypeError:
            count = -1
        if count < 1:
            raise ActSpecError(f"FunctionProblem: n must be a positive whole number of variables, got {n!r}.")
        self._f = f
        self._n = count
        if labels is not None and len(labels) != self._n:
            raise ActSpecError(
                f"FunctionProblem: got {len(labels)} labels for n={self._n} variables (one per variable)."
            )
        self._labels = tuple(str(a) for a in labels) if labels is not None else None
        self._name = name

    @property
    def f(self) -> Callable[[jax.Array], jax.Array]:
        return self._f

    @property
    def n(self) -> int:
        return self._n

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels if self._labels is not None else super().labels

    @property
    def output_shape(self) -> tuple[int, ...]:
        cached = self.__dict__.get("_output_shape")
        if cached is None:  # traced once per instance
            probe = jax.ShapeDtypeStruct((1, self._n), jnp.float32)
            out = jax.eval_shape(self._f, probe)
            check_real_output(out.dtype, "FunctionProblem: f")
            if out.ndim < 1 or out.shape[0] != 1:
                raise ActSpecError(
                    f"f must map masks [k, n] to values [k, ...]; for k=1 it returned shape {out.shape}."
                )
            cached = self.__dict__["_output_shape"] = tuple(out.shape[1:])
        return cached

    def evaluate_unchecked(self, masks: jax.Array) -> jax.Array:
        out = self._f(masks)
        shape, dtype = tuple(jnp.shape(out)), jnp.result_type(out)
        if not shape or shape[0] != masks.shape[0]:  # static shapes: checked while tracing
            raise ActSpecError(
                f"FunctionProblem: f must return one value per mask row; for masks of shape "
                f"{tuple(masks.shape)} it returned shape {shape}. Treat the rows as a batch (e.g. "
                "x[:, 0] * x[:, 2], not x[0] * x[2]), or wrap a per-mask function with jax.vmap."
            )
        check_real_output(dtype, "FunctionProblem: f")
        return jnp.asarray(out, dtype=jnp.result_type(float))

    def describe(self) -> dict[str, Any]:
        name = self._name or getattr(self._f, "__name__", type(self._f).__name__)
        return {"kind": "FunctionProblem", "n": self._n, "function": str(name)}

    def tree_flatten(self):
        return (), (self._f, self._n, self._labels, self._name)

    @classmethod
    def tree_unflatten(cls, aux, children):
        f, n, labels, name = aux
        return cls(f, n, labels=labels, name=name)
