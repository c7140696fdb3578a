"""The masked problem: a model cut at a layer, seen as a function of a neuron mask.

For a mask ``x ∈ {−1,+1}^n`` (+1 = kept; see :mod:`actspec_jax.transforms.indexing`) and
inputs ``u_1 … u_m`` with layer activations ``A_j = features(u_j)``:

    Ã_j(x) = where(x = +1, A_j, F_j)           (mask applied on the neuron axis, at every
                                                 token / spatial position)
    f(x)   = aggregate_j  select(head(Ã_j(x)))

Fills ``F``: ``'zero'`` (ReLU "off"), ``'mean'`` (mean activation over the inputs and
positions, per neuron), ``'resample'`` (the activation of the same neuron on *another*
input, drawn with an explicit key — the paper prototype's hybrid), or an array
broadcastable to ``A``. Aggregates: ``'mean'`` over inputs (one function) or ``'none'``
(one function per input — the batched path). Under uniform ``x`` this is a genuine
pseudo-Boolean function, so exact transforms and Goldreich–Levin guarantees apply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.problems._selected import (
    Aggregate,
    SelectedOutputProblem,
    check_request,
    output_labels_for,
    precision_record,
)
from actspec_jax.problems.cut import CutModel
from actspec_jax.problems.outputs import OutputSelector
from actspec_jax.problems.positions import restrict_problem
from actspec_jax.problems.sites import AxisError, Site, SiteView, resolve_site

__all__ = ["FILLS", "MaskedProblem", "masked_problem"]

#: The named fills of an ablated unit: zero, its mean over the inputs, or another input's value.
FILLS = ("zero", "mean", "resample")


def _describe_inputs(inputs: Any) -> str:
    leaves = jax.tree_util.tree_leaves(inputs)
    shown = ", ".join(f"{np.shape(x)} {getattr(x, 'dtype', type(x).__name__)}" for x in leaves[:4])
    return f"shape/dtype {shown}" + (" …" if len(leaves) > 4 else "")


def _check_inputs(inputs: Any) -> None:
    """Inputs: numeric arrays (no strings/objects), each with a leading batch axis."""
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves:
        raise ActSpecError("inputs is empty: pass a batch of inputs with a leading batch axis (m, …).")
    for leaf in leaves:
        try:
            dtype = getattr(leaf, "dtype", None)
            dtype = np.dtype(np.asarray(leaf).dtype if dtype is None else dtype)
        except TypeError:  # e.g. PRNG key arrays: leave them to the model
            continue
        numeric = dtype.kind in "biuf" or jnp.issubdtype(dtype, jnp.floating)  # bfloat16 is kind 'V'
        if not numeric:
            raise ActSpecError(
                f"inputs must be numeric arrays, got dtype {dtype} ({_describe_inputs(inputs)}); "
                "encode text as token ids first."
            )
        if np.ndim(leaf) < 1:
            raise ActSpecError(
                f"inputs need a leading batch axis (m, …), got a scalar ({_describe_inputs(inputs)})."
            )


def check_batch(got: int, inputs: Any, what: str) -> None:
    """``what`` must have the inputs' batch ``m`` first. A call argument closed over with its own
    batch axis (an attention mask passed through ``apply_kwargs`` for 24 inputs, with one input
    given) broadcasts against the inputs and would silently change both the batch and the values."""
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(inputs) if np.ndim(leaf) >= 1]
    m = int(np.shape(leaves[0])[0]) if leaves else got
    if got != m:
        raise ActSpecError(
            f"{what} have batch {got}, but {m} input(s) were given: an array the model closes over or "
            "receives as a call argument (an attention mask or segment ids in apply_kwargs, say) has its "
            "own batch axis. Pass it with the inputs instead, so it is split with them: inputs=(x, mask) "
            "and a call/method that unpacks the tuple."
        )


def _check_units(units: Any, num_neurons: int) -> None:
    """``units`` are neuron indices; a boolean mask is refused with the conversion."""
    array = np.asarray(units)
    if array.dtype == bool:
        raise ActSpecError(
            f"units takes neuron indices, but got a boolean mask of length {array.size} "
            f"({int(array.sum())} True): pass units=np.flatnonzero(mask) instead."
        )
    if array.dtype.kind == "f" and not np.all(np.equal(np.mod(array, 1), 0)):
        raise ActSpecError(f"units must be whole neuron indices in 0..{num_neurons - 1}, got {units!r}.")
    if array.dtype.kind not in "iuf" or array.ndim != 1:
        raise ActSpecError(
            f"units must be a 1-D sequence of neuron indices in 0..{num_neurons - 1}, got {array.dtype} "
            f"of shape {array.shape}."
        )


def _fill_values(
    activations: jax.Array, fill: str | jax.Array, key: jax.Array | None
) -> tuple[jax.Array, str]:
    if not isinstance(fill, str):
        values = jnp.asarray(fill, activations.dtype)
        try:
            jnp.broadcast_shapes(values.shape, activations.shape)
        except ValueError as err:
            raise ActSpecError(
                f"fill array of shape {values.shape} does not broadcast to the activations "
                f"{activations.shape}."
            ) from err
        return values, "array"
    if fill == "zero":
        return jnp.zeros((), activations.dtype), fill
    if fill == "mean":
        axes = tuple(range(activations.ndim - 1))
        return jnp.mean(activations, axis=axes), fill
    if fill == "resample":
        if key is None:
            raise ActSpecError("fill='resample' draws other inputs at random: pass key=jax.random.key(…).")
        m = activations.shape[0]
        if m < 2:
            raise ActSpecError("fill='resample' needs at least 2 inputs to take values from another one.")
        order = jax.random.permutation(key, m)
        source = jnp.empty_like(order).at[order].set(jnp.roll(order, -1))
        return activations[source], fill
    raise ActSpecError(f"unknown fill {fill!r}; use one of {FILLS} or an array of fill values.")


def _site_fill(fill: str | jax.Array, view: SiteView, raw: jax.Array) -> str | jax.Array:
    """An array fill given in the layer's own layout, moved into the site's view.

    Accepted: the variables' shape (``[C]`` for channels, ``[H]`` for heads, ``[k]`` for a
    basis) placed on the variable axes; an array of the layer's full rank (or trailing
    broadcast when the variables are the trailing axes); anything else is refused rather than
    broadcast against the wrong axis.
    """
    if isinstance(fill, str) or view.identity:
        return fill
    values = jnp.asarray(fill, raw.dtype)
    var_shape = (
        (int(view.dictionary.shape[0]),)
        if view.dictionary is not None
        else tuple(view.shape[a] for a in view.axes)
    )
    if values.shape == var_shape:
        return values.reshape(-1)
    if view.dictionary is not None:
        raise AxisError(
            f"a fill array for a basis site gives one code per direction, shape {list(var_shape)}; "
            f"got {list(values.shape)}."
        )
    if values.ndim == raw.ndim:
        full = jnp.broadcast_to(values, raw.shape)
        return view.view(full)[0]
    raise AxisError(
        f"fill array of shape {list(values.shape)} is ambiguous for the site on axes {list(view.axes)} of "
        f"layer {view.layer!r} (shape {list(raw.shape)}): pass shape {list(var_shape)} (one value per "
        f"variable) or an array of rank {raw.ndim} in the layer's layout."
    )


@jax.tree_util.register_pytree_node_class
class MaskedProblem(SelectedOutputProblem):
    """Model cut at a layer + inputs + fill + output selector → ``f(masks)``.

    Build it with :meth:`from_cut` (or :func:`masked_problem`). Attributes are arrays
    (leaves) and static settings, so the problem passes through ``jit`` as a pytree.

    Shapes: ``activations float[m, ..., N]``; the mask covers ``n = N`` neurons, or the
    ``n = len(units)`` neurons listed in ``units`` with the other ``N − n`` always kept.
    """

    def __init__(
        self,
        *,
        head: Any,
        params: Any,
        activations: jax.Array,
        fill_values: jax.Array,
        inputs: Any,
        units: jax.Array | None,
        selector: OutputSelector,
        aggregate: Aggregate,
        labels: tuple[str, ...] | None,
        info: str,
        out_labels: tuple[str, ...] | None,
    ) -> None:
        self.head = head
        self.params = params
        self.activations = activations
        self.fill_values = fill_values
        self.inputs = inputs
        self.units = units
        self.selector = selector
        self.aggregate = aggregate
        self._labels = labels
        self._info = info
        self._out_labels = out_labels

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cut(
        cls,
        cut: CutModel,
        inputs: Any,
        *,
        output: str | OutputSelector,
        fill: str | jax.Array = "zero",
        aggregate: Aggregate = "mean",
        units: Sequence[int] | None = None,
        labels: Sequence[str] | None = None,
        key: jax.Array | None = None,
        site: Site | None = None,
        restrict_head: bool = True,
    ) -> MaskedProblem:
        """Build the problem; computes the activations once.

        Args:
          cut: the model split at a layer (:func:`actspec_jax.cut_model`, …).
          inputs: a batch of inputs (any pytree with a leading batch axis ``m ≥ 1``).
          output: what to explain, e.g. ``'indicator:7'``, ``'logit_diff:1-0'``, ``'logits'``.
          fill: ``'zero'``, ``'mean'``, ``'resample'`` or an array (see module docstring).
          aggregate: ``'mean'`` over inputs, or ``'none'`` for one function per input.
          units: optional neuron indices to mask (others kept); default all ``N``.
          labels: optional label per masked neuron.
          key: PRNG key, required by ``fill='resample'``.
          site: what is masked (:func:`actspec_jax.site`: axis, positions, basis); default the
            cut's own site, or its layer's default variables. Its ``layer`` must be the cut's.
          restrict_head: for an output at one position of sequence outputs (``'log_prob:42@last'``)
            run the rest of the model on that position only, when it is position-wise there
            (checked on its jaxpr and numerically; :mod:`actspec_jax.problems.positions`;
            ``describe()['head_positions']`` says so): ``T`` times less work a mask for a cut in
            the last block. ``False``: always run it on every position.
        """
        _check_inputs(inputs)
        selector = check_request(output, aggregate, inputs)
        the_site = site if site is not None else (cut.site or Site(cut.layer))
        if the_site.layer not in (None, cut.layer):
            raise ActSpecError(
                f"site is for layer {the_site.layer!r} but the model was cut at {cut.layer!r}; cut at "
                "the site's layer (cut_model(model, params, site)) or leave site.layer=None."
            )
        try:
            raw = jnp.asarray(jax.jit(cut.features)(cut.params, inputs))
        except jax.errors.UnexpectedTracerError as err:
            raise ActSpecError(
                f"layer {cut.layer!r} could not be read out of the model: it runs inside a transform of the "
                "model itself (remat/checkpoint, scan, a layer stack), which does not let its value out. Cut "
                "at a module outside that transform."
            ) from err
        except (TypeError, IndexError) as err:
            raise ActSpecError(
                f"layer {cut.layer!r} could not be computed on the inputs ({_describe_inputs(inputs)}): "
                f"{type(err).__name__}: {str(err).splitlines()[0]}. Inputs need a leading batch axis "
                "(m, …) and the dtype the model takes (e.g. float32 images, int32 token ids)."
            ) from err
        if raw.ndim < 2:
            raise ActSpecError(
                f"layer {cut.layer!r} returned activations of shape {raw.shape}, with no batch "
                f"axis: the inputs ({_describe_inputs(inputs)}) look like a single input. Pass a batch "
                "with a leading axis, e.g. inputs[None] for a batch of one."
            )
        check_batch(raw.shape[0], inputs, f"layer {cut.layer!r}'s activations")
        view = resolve_site(
            the_site,
            raw.shape,
            layer=cut.layer,
            feature_axis=cut.feature_axis,
            strict=cut.strict_axes,
            names=None if cut.axis_names is None else tuple(cut.axis_names(inputs)),
            module=None if cut.layer_type is None else (lambda: cut.layer_type(inputs)),
        )
        cut, inputs, activations = view.apply(cut, inputs, raw)
        num_neurons = activations.shape[-1]
        fill_values, fill_name = _fill_values(activations, _site_fill(fill, view, raw), key)
        fill_values = view.gate_fill(fill_values, activations)

        unit_array = None
        if units is not None:
            _check_units(units, num_neurons)
            unit_list = [int(u) for u in units]
            if not unit_list:
                raise ActSpecError("units is empty: name at least one neuron to mask.")
            bad = [u for u in unit_list if not 0 <= u < num_neurons]
            if bad or len(set(unit_list)) != len(unit_list):
                raise ActSpecError(
                    f"units must be distinct neuron indices in 0..{num_neurons - 1} of layer "
                    f"{cut.layer!r}; got {'out-of-range ' + str(bad) if bad else 'duplicates'}."
                    + (
                        " It looks like a 0/1 mask: pass the indices, units=np.flatnonzero(mask)."
                        if not bad and set(unit_list) <= {0, 1}
                        else ""
                    )
                )
            unit_array = jnp.asarray(unit_list, jnp.int32)
        n = num_neurons if unit_array is None else int(unit_array.shape[0])
        if labels is not None and len(labels) != n:
            raise ActSpecError(f"got {len(labels)} labels for {n} masked neurons.")
        if labels is None:
            ids = range(num_neurons) if unit_array is None else unit_list
            labels = [view.labels[i] for i in ids]

        m = activations.shape[0]
        outputs = jax.eval_shape(cut.head, cut.params, activations, inputs)
        check_batch(outputs.shape[0] if outputs.ndim else 0, inputs, "the model's outputs")
        out_labels = output_labels_for(selector, outputs, m, aggregate)
        head, position = cut.head, None
        if restrict_head:  # one position of sequence outputs, a position-wise rest: only it runs
            keep = _keep_vector(unit_array, num_neurons)
            found = restrict_problem(
                cut.head, cut.params, activations, fill_values, inputs, selector, keep, n
            )
            if found is not None:
                head, activations, fill_values, selector, position = found
        info = json.dumps(
            {
                "layer": cut.layer,
                "neurons_in_layer": int(num_neurons),
                "units": None if unit_array is None else unit_list,
                "output": selector.describe(),
                "fill": fill_name,
                "fill_key": None if key is None else np.asarray(jax.random.key_data(key)).tolist(),
                "aggregate": aggregate,
                "num_inputs": int(m),
                "activation_shape": [int(s) for s in activations.shape],
                **precision_record(activation=activations.dtype, output=outputs.dtype),
                **({} if view.identity and view.positions is None else view.describe()),
                **({} if view.identity else {"layer_shape": [int(s) for s in raw.shape]}),
                **({} if position is None else {"head_positions": [position]}),
            }
        )
        problem = cls(
            head=head,
            params=cut.params,
            activations=activations,
            fill_values=fill_values,
            inputs=inputs,
            units=unit_array,
            selector=selector,
            aggregate=aggregate,
            labels=tuple(str(a) for a in labels),
            info=info,
            out_labels=out_labels,
        )
        problem.check_unmasked_outputs()
        return problem

    # ------------------------------------------------------------------ Problem API
    @property
    def n(self) -> int:
        return int(self.activations.shape[-1] if self.units is None else self.units.shape[0])

    @property
    def num_inputs(self) -> int:
        return int(self.activations.shape[0])

    def keep_mask(self, mask: jax.Array) -> jax.Array:
        """Boolean keep-vector over all ``N`` neurons of the layer for one mask ``float[n]``."""
        return _keep_vector(self.units, self.activations.shape[-1])(mask)

    def masked_activations(self, mask: jax.Array) -> jax.Array:
        """``Ã(x)``: activations with ablated neurons replaced by the fill, ``float[m, ..., N]``."""
        return jnp.where(self.keep_mask(mask), self.activations, self.fill_values)

    def outputs(self, mask: jax.Array) -> jax.Array:
        """Model outputs ``[m, ..., classes]`` under one mask ``float[n]`` (before selection)."""
        return self.head(self.params, self.masked_activations(mask), self.inputs)

    # ------------------------------------------------------------------ pytree
    def tree_flatten(self):
        children = (self.params, self.activations, self.fill_values, self.inputs, self.units)
        aux = (self.head, self.selector, self.aggregate, self._labels, self._info, self._out_labels)
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        params, activations, fill_values, inputs, units = children
        head, selector, aggregate, labels, info, out_labels = aux
        return cls(
            head=head,
            params=params,
            activations=activations,
            fill_values=fill_values,
            inputs=inputs,
            units=units,
            selector=selector,
            aggregate=aggregate,
            labels=labels,
            info=info,
            out_labels=out_labels,
        )


def _keep_vector(units: jax.Array | None, num_neurons: int) -> Any:
    """``mask float[n] → bool[N]``: the layer's keep vector (units not listed are always kept)."""

    def keep(mask: jax.Array) -> jax.Array:
        if units is None:
            return mask > 0
        return jnp.ones((num_neurons,), dtype=bool).at[units].set(mask > 0)

    return keep


#: The problem of a model cut at a layer: :meth:`MaskedProblem.from_cut` itself (same signature,
#: arguments and docstring), under the short name the tour uses.
masked_problem = MaskedProblem.from_cut
