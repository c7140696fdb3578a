"""What model-based problems share: validated requests, output labels and aggregation.

:class:`SelectedOutputProblem` is the base of :class:`~actspec_jax.MaskedProblem` and
:class:`~actspec_jax.MultiLayerProblem`: a model's outputs ``[m, ..., classes]`` under a
mask, reduced by an output selector and aggregated over the ``m`` inputs (``'mean'``) or
kept per input (``'none'``).
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.diagnostics import LowPrecisionWarning
from actspec_jax.errors import ActSpecError, NonFiniteOutputError
from actspec_jax.problems.base import Problem
from actspec_jax.problems.outputs import OutputSelector, check_selected_shape, parse_output

__all__ = [
    "Aggregate",
    "SelectedOutputProblem",
    "check_request",
    "output_labels_for",
    "poison_non_finite",
    "precision_record",
]

_LOW_PRECISION = ("bfloat16", "float16")


def precision_record(**dtypes: Any) -> dict[str, str]:
    """``{'<name>_dtype': str}`` for the problem's description (e.g. ``activation=…, output=…``),
    warning (:class:`~actspec_jax.diagnostics.LowPrecisionWarning`) when any is bfloat16/float16:
    every value is rounded to ~3 significant digits (bf16) before the spectrum is taken, so
    coefficients below ~1e-3 of the output's scale are round-off (measured: 2.4e-4 error on a
    0.09 coefficient in bf16)."""
    record = {f"{name}_dtype": str(jnp.dtype(dtype)) for name, dtype in dtypes.items()}
    low = [
        f"{name} {record[f'{name}_dtype']}" for name in dtypes if record[f"{name}_dtype"] in _LOW_PRECISION
    ]
    if low:
        warnings.warn(
            LowPrecisionWarning(
                f"the model computes in low precision ({', '.join(low)}): coefficients below ~1e-3 of the "
                "output's scale are round-off. For small terms run the model in float32 (its layers' "
                "dtype, or cast parameters and inputs: "
                "jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params))."
            ),
            stacklevel=4,
        )
    return record


Aggregate = Literal["mean", "none"]


def check_request(output: str | OutputSelector, aggregate: str, inputs: Any) -> OutputSelector:
    """Parse the output selector and reject an unknown aggregate or an empty input batch."""
    selector = parse_output(output)
    if aggregate not in ("mean", "none"):
        raise ActSpecError(f"aggregate must be 'mean' or 'none', got {aggregate!r}.")
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves or any(np.ndim(a) == 0 or np.shape(a)[0] == 0 for a in leaves):
        raise ActSpecError(
            "the input batch is empty: pass at least one input (arrays with a leading batch axis)."
        )
    return selector


def output_labels_for(
    selector: OutputSelector, outputs: Any, num_inputs: int, aggregate: str
) -> tuple[str, ...] | None:
    """Validate the selector against the model's outputs and label the flattened functions."""
    if not hasattr(outputs, "shape") or outputs.ndim < 1:
        raise ActSpecError("the model must return an array of outputs [m, ..., classes].")
    num_classes = outputs.shape[-1]
    selector.validate(num_classes)
    extra = check_selected_shape(selector, outputs, num_inputs)
    per_class = selector.output_labels(num_classes)
    if per_class is None and extra:
        per_class = tuple(f"{selector.describe()}[{k}]" for k in range(extra[0]))
    if aggregate != "none":
        return per_class
    per_input = [f"input {j}" for j in range(num_inputs)]
    if per_class:
        return tuple(f"{a} / {b}" for a in per_input for b in per_class)
    return tuple(per_input)


def poison_non_finite(raw: jax.Array, selected: jax.Array) -> jax.Array:
    """``selected`` (``[m, …]``) with every input whose raw model outputs (``raw: [m, …]``) hold a
    NaN/inf set to NaN.

    Selectors can hide a broken model: ``argmax`` of a NaN row is 0 (``indicator:c`` would count it
    as class 0) and XLA's fused softmax can return finite probabilities from NaN logits under
    ``jit``. Checking the raw outputs before the selector lets every solver's non-finite check fire.
    """
    axes = tuple(range(1, raw.ndim))
    finite = jnp.all(jnp.isfinite(raw), axis=axes) if axes else jnp.isfinite(raw)
    finite = finite.reshape(finite.shape + (1,) * (selected.ndim - 1))
    return jnp.where(finite, selected, jnp.nan)


class SelectedOutputProblem(Problem):
    """Shared behaviour; subclasses set ``selector``, ``aggregate``, ``_labels``, ``_info``
    (a JSON string), ``_out_labels`` and implement :meth:`outputs` (``[m, ..., classes]``)."""

    selector: OutputSelector
    aggregate: Aggregate
    _labels: tuple[str, ...] | None
    _info: str
    _out_labels: tuple[str, ...] | None

    def outputs(self, mask: jax.Array) -> jax.Array:
        raise NotImplementedError

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels if self._labels is not None else super().labels

    @property
    def output_shape(self) -> tuple[int, ...]:
        cached = self.__dict__.get("_output_shape")
        if cached is None:  # traced once per instance; problems are immutable
            probe = jax.ShapeDtypeStruct((1, self.n), jnp.float32)
            cached = tuple(jax.eval_shape(self.evaluate_unchecked, probe).shape[1:])
            self.__dict__["_output_shape"] = cached
        return cached

    @property
    def output_labels(self) -> tuple[str, ...]:
        return self._out_labels if self._out_labels else super().output_labels

    def _value(self, mask: jax.Array) -> jax.Array:
        raw = self.outputs(mask)
        selected = poison_non_finite(raw, self.selector(raw))
        return jnp.mean(selected, axis=0) if self.aggregate == "mean" else selected

    def evaluate_unchecked(self, masks: jax.Array) -> jax.Array:
        return jax.vmap(self._value)(masks)

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "n": self.n, **json.loads(self._info)}

    def check_unmasked_outputs(self) -> None:
        """Refuse a model whose outputs are already NaN/inf with every neuron kept."""
        base = jax.jit(type(self).evaluate_unchecked)(self, jnp.ones((1, self.n), jnp.float32))
        if isinstance(base, jax.core.Tracer):  # built inside the caller's jit/vmap/grad: no host check
            return
        if not bool(jnp.all(jnp.isfinite(base))):
            raise NonFiniteOutputError(
                "the model's output is NaN/inf on the unmasked inputs already; check the inputs and "
                "the parameters before analysing the layer."
            )
