"""One mask over the neurons of several layers at once (e.g. the heads of every block).

For named linen sub-modules ``L_1 … L_r`` with ``N_1 … N_r`` neurons (last axis), a mask
``x ∈ {−1,+1}^n``, ``n = N_1 + … + N_r``, is the concatenation of one mask per layer in
the order given. In ONE forward pass every listed layer's output is *gated*:

    out_l ← where(x_l = +1, out_l(computed now), F_l)      (at every leading position)

so a kept neuron in a later layer is recomputed from the residual stream as modified by
the earlier layers' masks (not frozen to its clean value). For a single layer this is
exactly :class:`~actspec_jax.problems.masked.MaskedProblem`. Fills ``F_l`` follow
``MaskedProblem``: ``'zero'``, ``'mean'`` (per neuron over the *clean* pass's inputs and
positions), ``'resample'`` (another input's clean value, the same permutation for every
layer), or an array; one setting for all layers or one per layer.

    f(x) = aggregate_j  select(model(u_j; gated by x))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.problems._selected import (
    Aggregate,
    SelectedOutputProblem,
    check_request,
    output_labels_for,
    precision_record,
)
from actspec_jax.problems.cut import _check_array_output, _linen_layers, _linen_variables
from actspec_jax.problems.masked import _fill_values
from actspec_jax.problems.outputs import OutputSelector
from actspec_jax.problems.sites import AxisError, Site, features_last_layer

__all__ = ["MultiLayerProblem", "multi_layer_problem"]

Forward = Callable[[Any, Any, tuple, tuple], jax.Array]


def _path(context: Any) -> str:
    return "/".join(str(p) for p in context.module.path)


def _capture(module: nn.Module, variables: Any, inputs: Any, layers: Sequence[str], method: Any, kwargs):
    """Clean forward pass: outputs of ``layers`` (each must run exactly once)."""
    wanted = set(layers)
    seen: dict[str, list[jax.Array]] = {name: [] for name in layers}
    modules: dict[str, nn.Module] = {}

    def interceptor(next_fun, args, kw, context):
        out = next_fun(*args, **kw)
        if context.method_name == "__call__" and _path(context) in wanted:
            seen[_path(context)].append(out)
            modules.setdefault(_path(context), context.module)
        return out

    with nn.intercept_methods(interceptor), jax.disable_jit():  # see cut.py on nn.jit
        module.apply(variables, inputs, method=method, **kwargs)
    missing = [name for name in layers if not seen[name]]
    if missing:
        listing = _linen_layers(module, variables, inputs, method, kwargs)
        raise UnknownLayerError(
            missing[0], [f"{k} {list(s)}" for k, s in listing.items()], model=type(module).__name__
        )
    for name, outs in seen.items():
        if len(outs) > 1:
            raise ActSpecError(
                f"layer {name!r} is called {len(outs)} times in one forward pass (a shared module); "
                "mask a module that runs once."
            )
    outs = [_check_array_output(seen[name][0], name) for name in layers]
    for name, out in zip(layers, outs):
        if out.ndim >= 4 and not features_last_layer(modules[name]):
            raise AxisError(
                f"layer {name!r} (a {type(modules[name]).__name__}) has shape {list(out.shape)}: a "
                "multi-layer problem gates each layer's last axis, which is taken at rank 4 or more only "
                "for Flax's dense and convolution layers or a module declaring "
                "features_last = True. Cut at a module whose last axis holds the units (e.g. a tap "
                "after moving the heads last)."
            )
    return outs


def _gated_forward(module: nn.Module, layers: tuple[str, ...], method: Any, kwargs: Mapping) -> Forward:
    """``forward(variables, inputs, keeps, fills)``: one pass with every listed layer gated."""
    index = {name: i for i, name in enumerate(layers)}
    kwargs = dict(kwargs)

    def forward(variables: Any, inputs: Any, keeps: tuple, fills: tuple) -> jax.Array:
        def interceptor(next_fun, args, kw, context):
            out = next_fun(*args, **kw)
            i = index.get(_path(context)) if context.method_name == "__call__" else None
            return out if i is None else jnp.where(keeps[i], out, fills[i])

        with nn.intercept_methods(interceptor), jax.disable_jit():
            return module.apply(variables, inputs, method=method, **kwargs)

    return forward


@jax.tree_util.register_pytree_node_class
class MultiLayerProblem(SelectedOutputProblem):
    """Several layers of a linen module masked together → ``f(masks)`` (see module docstring).

    Build it with :meth:`from_linen` (or :func:`multi_layer_problem`). Mask column ``k``
    belongs to the layer whose :attr:`layer_slices` range contains ``k``.
    """

    def __init__(
        self,
        *,
        forward: Forward,
        params: Any,
        inputs: Any,
        fill_values: tuple[jax.Array, ...],
        layers: tuple[str, ...],
        sizes: tuple[int, ...],
        selector: OutputSelector,
        aggregate: Aggregate,
        labels: tuple[str, ...],
        info: str,
        out_labels: tuple[str, ...] | None,
    ) -> None:
        self.forward = forward
        self.params = params
        self.inputs = inputs
        self.fill_values = fill_values
        self.layers = layers
        self.sizes = sizes
        self.selector = selector
        self.aggregate = aggregate
        self._labels = labels
        self._info = info
        self._out_labels = out_labels

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_linen(
        cls,
        module: nn.Module,
        variables: Any,
        layers: Sequence[str],
        inputs: Any,
        *,
        output: str | OutputSelector,
        fill: str | jax.Array | Sequence[str | jax.Array] = "zero",
        aggregate: Aggregate = "mean",
        labels: Sequence[str] | None = None,
        key: jax.Array | None = None,
        method: str | Callable | None = None,
        apply_kwargs: Mapping[str, Any] | None = None,
    ) -> MultiLayerProblem:
        """Build the problem; runs one clean forward pass for the fills and checks.

        Args:
          module, variables: the linen model and its variables (bare params are wrapped).
          layers: ``'/'``-joined sub-module paths, in mask order (each must run once).
          inputs: a batch of inputs (leading batch axis ``m ≥ 1``).
          output: e.g. ``'logit_diff:1-0'``, ``'indicator:7'``, ``'logits'``.
          fill: one fill for all layers or a sequence with one per layer (see module docstring).
          aggregate: ``'mean'`` over inputs, or ``'none'`` for one function per input.
          labels: optional label per masked neuron (default ``'layer[i]'``).
          key: PRNG key, required by ``fill='resample'``.
          method, apply_kwargs: as for :func:`actspec_jax.cut_linen`.
        """
        layers = tuple(str(name) for name in (layers if not isinstance(layers, str) else [layers]))
        if not layers:
            raise ActSpecError("layers is empty: name at least one layer to mask.")
        if len(set(layers)) != len(layers):
            raise ActSpecError(f"layers must be distinct, got {list(layers)}.")
        selector = check_request(output, aggregate, inputs)
        fills = list(fill) if isinstance(fill, (list, tuple)) else [fill] * len(layers)
        if len(fills) != len(layers):
            raise ActSpecError(f"got {len(fills)} fills for {len(layers)} layers; pass one or one per layer.")

        variables = _linen_variables(variables)
        kwargs = dict(apply_kwargs or {})
        clean = _capture(module, variables, inputs, layers, method, kwargs)
        fill_values, fill_names = [], []
        for acts, f in zip(clean, fills):
            values, name = _fill_values(jnp.asarray(acts), f, key)
            fill_values.append(values)
            fill_names.append(name)
        sizes = tuple(int(a.shape[-1]) for a in clean)
        n = sum(sizes)
        if labels is not None and len(labels) != n:
            raise ActSpecError(f"got {len(labels)} labels for {n} masked neurons.")
        if labels is None:
            labels = [f"{name}[{i}]" for name, size in zip(layers, sizes) for i in range(size)]

        forward = _gated_forward(module, layers, method, kwargs)
        keeps = tuple(jnp.ones((s,), bool) for s in sizes)
        outputs = jax.eval_shape(forward, variables, inputs, keeps, tuple(fill_values))
        m = int(clean[0].shape[0])
        out_labels = output_labels_for(selector, outputs, m, aggregate)
        info = json.dumps(
            {
                "layers": list(layers),
                "sizes": list(sizes),
                "output": selector.describe(),
                "fill": fill_names,
                "aggregate": aggregate,
                "num_inputs": m,
                "activation_shapes": [[int(s) for s in a.shape] for a in clean],
                **precision_record(activation=clean[0].dtype, output=outputs.dtype),
                "semantics": "gated: later layers recomputed from the masked earlier ones",
            }
        )
        problem = cls(
            forward=forward,
            params=variables,
            inputs=inputs,
            fill_values=tuple(fill_values),
            layers=layers,
            sizes=sizes,
            selector=selector,
            aggregate=aggregate,
            labels=tuple(str(a) for a in labels),
            info=info,
            out_labels=out_labels,
        )
        problem.check_unmasked_outputs()
        return problem

    @classmethod
    def from_model(
        cls,
        model: Any,
        params: Any,
        layers: Sequence[str | Site],
        inputs: Any,
        *,
        output: str | OutputSelector,
        units: Mapping[str, Sequence[int]] | None = None,
        fill: str | jax.Array | Sequence[str | jax.Array] = "zero",
        aggregate: Aggregate = "mean",
        labels: Sequence[str] | None = None,
        key: jax.Array | None = None,
        method: str | Callable | None = None,
        apply_kwargs: Mapping[str, Any] | None = None,
        call: Callable | None = None,
        batched: bool | None = None,
        state: Any = None,
        input_axes: Sequence[str] | None = None,
        batch_axis: str | None = None,
        side_inputs: Mapping[str, Any] | None = None,
    ) -> MultiLayerProblem:
        """Several layers of a model of any family (linen, nnx, dm-haiku, Equinox, penzai) masked
        together.

        The mask is the concatenation of one mask per layer, in the order given; each layer is
        gated on the axis of its site (the variables' axis, as for
        :func:`~actspec_jax.masked_problem`: ``site('attn/heads', axis=2)`` for heads), at every
        other position, in one forward pass (see the module docstring).

        Args:
          model, params: as for :func:`~actspec_jax.cut_model` (``params=None`` for nnx and
            Equinox; haiku's ``state=`` and the family options below as there).
          layers: layer names or :class:`~actspec_jax.Site` s with one ``axis`` (and optional
            ``name``/``kind`` for labels); positions and bases are single-layer features.
          inputs: a batch of inputs (leading batch axis ``m ≥ 1``).
          output, fill, aggregate, labels, key: as for :meth:`from_linen`.
          units: optional ``{layer: indices}``: mask only those units of that layer (the others
            are kept); layers not named are masked whole.
        """
        from actspec_jax.problems.multi_runners import layer_runner
        from actspec_jax.problems.sites import as_site, resolve_axes

        sites = [as_site(layer) for layer in (layers if not isinstance(layers, (str, Site)) else [layers])]
        names = tuple(str(s.layer) for s in sites)
        if not names or len(set(names)) != len(names):
            raise ActSpecError(f"layers must be distinct and at least one, got {list(names)}.")
        for s in sites:
            if s.basis is not None or s.positions is not None:
                raise ActSpecError(
                    f"site for {s.layer!r}: positions and bases mask one layer (masked_problem); a "
                    "multi-layer problem takes each layer's axis (and name/kind for labels)."
                )
        unknown = sorted(set(units or {}) - set(names))
        if unknown:
            raise ActSpecError(f"units names layers {unknown} that are not among the layers {list(names)}.")
        selector = check_request(output, aggregate, inputs)
        fills = list(fill) if isinstance(fill, (list, tuple)) else [fill] * len(names)
        if len(fills) != len(names):
            raise ActSpecError(f"got {len(fills)} fills for {len(names)} layers; pass one or one per layer.")
        runner = layer_runner(
            model, params, names, inputs, method=method, apply_kwargs=apply_kwargs, call=call,
            batched=batched, state=state, input_axes=input_axes, batch_axis=batch_axis,
            side_inputs=side_inputs,
        )  # fmt: skip
        clean, modules = runner.capture(runner.params, inputs)
        axis_names = runner.axis_names or [None] * len(names)
        gates_for, fill_values, sizes, all_labels, fill_names, axes = [], [], [], [], [], []
        for s, name, acts, module, f, axes_named in zip(sites, names, clean, modules, fills, axis_names):
            (axis,) = _one_axis(
                resolve_axes(
                    s, tuple(acts.shape), layer=name, feature_axis=runner.feature_axis,
                    strict=runner.strict, module=lambda module=module: module, names=axes_named,
                ),
                name,
            )  # fmt: skip
            size = int(acts.shape[axis])
            chosen = _chosen_units((units or {}).get(name), size, name)
            moved = jnp.moveaxis(jnp.asarray(acts), axis, -1)
            if isinstance(f, str):
                values, fill_name = _fill_values(moved, f, key)
                values = jnp.moveaxis(jnp.broadcast_to(values, moved.shape), -1, axis)
            else:
                values, fill_name = _array_fill(f, acts, axis, name), "array"
            gates_for.append((axis, acts.ndim, size, chosen))
            fill_values.append(values)
            fill_names.append(fill_name)
            sizes.append(size if chosen is None else len(chosen))
            axes.append(axis)
            stem = s.name or name
            ids = range(size) if chosen is None else chosen
            all_labels += [f"{stem}.{s.kind}[{i}]" if s.kind else f"{stem}[{i}]" for i in ids]
        n = sum(sizes)
        if labels is not None and len(labels) != n:
            raise ActSpecError(f"got {len(labels)} labels for {n} masked units.")

        def forward(p: Any, x: Any, keeps: tuple, fill_arrays: tuple) -> jax.Array:
            gates = tuple(
                (_broadcast_keep(keep, *spec), fill_array)
                for keep, spec, fill_array in zip(keeps, gates_for, fill_arrays)
            )
            return runner.run(p, x, gates)

        keeps = tuple(jnp.ones((z,), bool) for z in sizes)
        outputs = jax.eval_shape(forward, runner.params, inputs, keeps, tuple(fill_values))
        m = int(clean[0].shape[0])
        info = json.dumps(
            {
                "layers": list(names),
                "family": runner.family,
                "sizes": sizes,
                "axes": axes,
                "units": {k: [int(u) for u in v] for k, v in (units or {}).items()},
                "output": selector.describe(),
                "fill": fill_names,
                "aggregate": aggregate,
                "num_inputs": m,
                "activation_shapes": [[int(z) for z in a.shape] for a in clean],
                **precision_record(activation=clean[0].dtype, output=outputs.dtype),
                "semantics": "gated: later layers recomputed from the masked earlier ones",
            }
        )
        problem = cls(
            forward=forward,
            params=runner.params,
            inputs=inputs,
            fill_values=tuple(fill_values),
            layers=names,
            sizes=tuple(sizes),
            selector=selector,
            aggregate=aggregate,
            labels=tuple(str(a) for a in (labels if labels is not None else all_labels)),
            info=info,
            out_labels=output_labels_for(selector, outputs, m, aggregate),
        )
        problem.check_unmasked_outputs()
        return problem

    # ------------------------------------------------------------------ Problem API
    @property
    def n(self) -> int:
        return sum(self.sizes)

    @property
    def layer_slices(self) -> dict[str, tuple[int, int]]:
        """``{layer: (start, stop)}``: the mask columns of each layer."""
        bounds = np.cumsum((0, *self.sizes))
        return {name: (int(a), int(b)) for name, a, b in zip(self.layers, bounds[:-1], bounds[1:])}

    def keeps(self, mask: jax.Array) -> tuple[jax.Array, ...]:
        """Per-layer boolean keep-vectors ``bool[N_l]`` for one mask ``float[n]``."""
        keep = mask > 0
        return tuple(keep[a:b] for a, b in self.layer_slices.values())

    def outputs(self, mask: jax.Array) -> jax.Array:
        """Model outputs ``[m, ..., classes]`` under one mask ``float[n]`` (before selection)."""
        return self.forward(self.params, self.inputs, self.keeps(mask), self.fill_values)

    # ------------------------------------------------------------------ pytree
    def tree_flatten(self):
        children = (self.params, self.inputs, self.fill_values)
        aux = (
            self.forward,
            self.layers,
            self.sizes,
            self.selector,
            self.aggregate,
            self._labels,
            self._info,
            self._out_labels,
        )
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        params, inputs, fill_values = children
        forward, layers, sizes, selector, aggregate, labels, info, out_labels = aux
        return cls(
            forward=forward,
            params=params,
            inputs=inputs,
            fill_values=fill_values,
            layers=layers,
            sizes=sizes,
            selector=selector,
            aggregate=aggregate,
            labels=labels,
            info=info,
            out_labels=out_labels,
        )


def _array_fill(fill: Any, acts: jax.Array, axis: int, layer: str) -> jax.Array:
    """An array fill as the layer's shape: one value per variable (``[N]``, placed on the site's
    axis, as :func:`~actspec_jax.masked_problem` takes it) or an array of the layer's own rank."""
    values = jnp.asarray(fill, acts.dtype)
    size = int(acts.shape[axis])
    if values.shape == (size,):
        shape = [1] * acts.ndim
        shape[axis] = size
        return jnp.broadcast_to(values.reshape(shape), acts.shape)
    if values.ndim == acts.ndim:
        try:
            return jnp.broadcast_to(values, acts.shape)
        except ValueError:
            pass
    raise ActSpecError(
        f"a fill array for layer {layer!r} gives one value per variable (shape [{size}], on axis {axis}) "
        f"or has the layer's shape {list(acts.shape)} (broadcastable); got {list(values.shape)}."
    )


def _one_axis(axes: tuple[int, ...], layer: str) -> tuple[int]:
    if len(axes) != 1:
        raise AxisError(f"layer {layer!r}: a multi-layer problem gates one axis per layer, got {list(axes)}.")
    return (axes[0],)


def _chosen_units(chosen: Sequence[int] | None, size: int, layer: str) -> list[int] | None:
    if chosen is None:
        return None
    picked = [int(u) for u in chosen]
    if not picked or len(set(picked)) != len(picked) or not all(0 <= u < size for u in picked):
        raise ActSpecError(
            f"units for layer {layer!r} must be distinct indices in 0..{size - 1}, got {picked}."
        )
    return picked


def _broadcast_keep(keep: jax.Array, axis: int, rank: int, size: int, chosen: list[int] | None) -> jax.Array:
    """``bool[n_l]`` over the chosen units → ``bool`` of shape ``1 … size … 1`` (``size`` at ``axis``)."""
    full = keep if chosen is None else jnp.ones((size,), bool).at[jnp.asarray(chosen)].set(keep)
    shape = [1] * rank
    shape[axis] = size
    return full.reshape(shape)


#: Shorthand for :meth:`MultiLayerProblem.from_linen` (the same function, the same signature).
multi_layer_problem = MultiLayerProblem.from_linen
