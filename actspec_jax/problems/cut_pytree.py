"""Cutting pytree models — Equinox modules and penzai layers — at a named sub-layer.

Both families are immutable pytrees that mix arrays with static parts (functions such as
``jax.nn.gelu``, shapes, axis names). The cut splits the model into its array leaves
(``params``, what a caller may differentiate or shard) and everything else, kept in the
closure — the array/static split the user would otherwise write with ``eqx.partition`` —
so nothing static ever reaches ``jax.jit``.

The sub-layer at ``layer`` (a ``'/'``-joined path of attribute names and list indices,
e.g. ``'blocks/0/attn/heads'``; :func:`list_pytree_layers` lists them) is swapped, in a
shallow copy of the model, for a wrapper that calls it and captures (``features``) or
replaces (``head``) its output.

* **Equinox** models run on ONE example by convention (``model(x)``; users ``jax.vmap``).
  With ``batched=False`` (default) both functions ``vmap`` the per-example call over the
  inputs' leading axis, so activations are ``[m, *per_example]``. Equinox has no layout
  convention (``Conv2d`` is channels-first, ``Linear`` is features-last), so the cut is
  *strict*: a layer of rank ≥ 3 needs ``site(..., axis=…)``.
* **penzai** layers take and return named arrays. Inputs stay positional arrays
  ``[m, ...]`` (so every solver can index input rows) and are named with ``input_axes``
  (default ``('batch', 'seq')``) before the model runs; the layer's output is converted to a
  positional array with the batch axis first and the other axes in the array's own order,
  and sites may name axes (``site('…', axis='heads')``). Parameters are frozen
  (``pz.freeze_params``), so the model is a pure pytree.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax

from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.problems.cut_base import CutModel, _check_array_output
from actspec_jax.problems.sites import Site, as_site

__all__ = [
    "cut_equinox",
    "cut_penzai",
    "is_equinox",
    "is_penzai",
    "list_pytree_layers",
    "penzai_named_inputs",
    "penzai_positional",
]


def is_equinox(model: Any) -> bool:
    try:
        import equinox as eqx
    except ImportError:  # pragma: no cover - optional dependency
        return False
    return isinstance(model, eqx.Module)


def is_penzai(model: Any) -> bool:
    try:
        from penzai import pz
    except ImportError:  # pragma: no cover - optional dependency
        return False
    return isinstance(model, pz.nn.Layer)


# --------------------------------------------------------------------------- tree walking


def _children(node: Any) -> list[tuple[str, Any]]:
    if isinstance(node, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return [(str(k), v) for k, v in node.items()]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node) if hasattr(node, f.name)]
    return []


def _is_layer(node: Any) -> bool:
    return callable(node) and dataclasses.is_dataclass(node) and not isinstance(node, type)


def list_pytree_layers(model: Any) -> dict[str, str]:
    """``{path: type name}`` of every callable sub-module of an Equinox / penzai model."""
    found: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        for name, child in _children(node):
            path = f"{prefix}/{name}" if prefix else name
            if _is_layer(child):
                found[path] = type(child).__name__
            if isinstance(child, (list, tuple, dict)) or dataclasses.is_dataclass(child):
                walk(child, path)

    walk(model, "")
    return found


def _get(node: Any, key: str) -> Any:
    if isinstance(node, (list, tuple)):
        return node[int(key)]
    if isinstance(node, dict):
        return node[key]
    return getattr(node, key)


def _replace(node: Any, path: Sequence[str], make: Callable[[Any], Any]) -> Any:
    """A copy of ``node`` with the sub-layer at ``path`` replaced by ``make(old)``."""
    if not path:
        return make(node)
    key, rest = path[0], path[1:]
    new_child = _replace(_get(node, key), rest, make)
    if isinstance(node, list):
        out = list(node)
        out[int(key)] = new_child
        return out
    if isinstance(node, tuple):
        out = list(node)
        out[int(key)] = new_child
        return type(node)(out) if not hasattr(node, "_fields") else type(node)(*out)
    if isinstance(node, dict):
        return {**node, key: new_child}
    clone = copy.copy(node)
    object.__setattr__(clone, key, new_child)
    return clone


class _StopForward(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__("stop")
        self.value = value


class _Patch:
    """Stands in for a sub-layer: computes it, then captures or replaces its output."""

    def __init__(self, original: Any, on_output: Callable[[Callable[[], Any]], Any]) -> None:
        self.original = original
        self.on_output = on_output

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.on_output(lambda: self.original(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:  # a parent may read attributes of the layer
        return getattr(self.original, name)


def _split(model: Any) -> tuple[list, Callable[[list], Any]]:
    """``(params, rebuild)``: the array leaves (``None`` elsewhere) and the inverse."""
    leaves, treedef = jax.tree_util.tree_flatten(model)
    is_arr = [isinstance(a, jax.Array) or hasattr(a, "__jax_array__") for a in leaves]
    params = [a if ok else None for a, ok in zip(leaves, is_arr)]
    static = [None if ok else a for a, ok in zip(leaves, is_arr)]

    def rebuild(p: list) -> Any:
        return jax.tree_util.tree_unflatten(treedef, [a if ok else s for a, s, ok in zip(p, static, is_arr)])

    return params, rebuild


def _resolve_path(model: Any, layer: str, family: str) -> list[str]:
    layers = list_pytree_layers(model)
    if layer not in layers:
        listing = [f"{k} ({v})" for k, v in layers.items()]
        raise UnknownLayerError(layer, listing, model=f"{family} model {type(model).__name__}")
    return layer.split("/")


# --------------------------------------------------------------------------- equinox


def cut_equinox(
    model: Any,
    layer: str | Site,
    *,
    call: Callable[[Any, Any], Any] | None = None,
    batched: bool = False,
) -> Any:
    """Cut an Equinox module at the sub-module ``layer`` (see the module docstring).

    Args:
      model: an ``eqx.Module``.
      layer: ``'/'``-joined path (e.g. ``'blocks/0/mlp/act'``) or a :class:`Site`.
      call: ``call(model, x)`` runs the model on one example (default ``model(x)``), e.g.
        ``lambda m, x: m(x, key=None)``; with ``batched=True`` on the whole batch.
      batched: the model (``call``) takes the whole batch itself; no ``vmap`` is added.
    """
    the_site = as_site(layer)
    name = str(the_site.layer)
    path = _resolve_path(model, name, "Equinox")
    params, rebuild = _split(model)
    run = call or (lambda m, x: m(x))

    def capture_one(p: list, x: Any) -> jax.Array:
        def capture(compute):
            raise _StopForward(compute())

        try:
            run(_replace(rebuild(p), path, lambda old: _Patch(old, capture)), x)
        except _StopForward as stop:
            return _check_array_output(stop.value, name) if batched else stop.value
        raise ActSpecError(f"Equinox layer {name!r} exists but is never called in the forward pass.")

    def head_one(p: list, a: jax.Array, x: Any) -> jax.Array:
        return run(_replace(rebuild(p), path, lambda old: _Patch(old, lambda compute: a)), x)

    if batched:
        features, head = capture_one, head_one
    else:

        def features(p: list, x: Any) -> jax.Array:
            return jax.vmap(capture_one, in_axes=(None, 0))(p, x)

        def head(p: list, a: jax.Array, x: Any) -> jax.Array:
            return jax.vmap(head_one, in_axes=(None, 0, 0))(p, a, x)

    return CutModel(
        features=features,
        head=head,
        params=params,
        layer=name,
        feature_axis=None,
        strict_axes=True,
        site=the_site,
        family="equinox",
    )


# --------------------------------------------------------------------------- penzai


def cut_penzai(
    model: Any,
    layer: str | Site,
    *,
    input_axes: Sequence[str] = ("batch", "seq"),
    batch_axis: str | None = None,
    side_inputs: dict[str, Any] | None = None,
) -> Any:
    """Cut a penzai layer (``pz.nn.Layer``) at the sub-layer ``layer`` (module docstring).

    Args:
      model: the penzai model (its parameters are frozen into the pytree).
      layer: ``'/'``-joined path (e.g. ``'sublayers/2/heads'``) or a :class:`Site`.
      input_axes: names of the positional input axes; the first is the batch axis.
      batch_axis: the batch axis name in the model's outputs (default ``input_axes[0]``).
      side_inputs: keyword side inputs passed to every call.
    """
    from penzai import pz

    the_site = as_site(layer)
    name = str(the_site.layer)
    frozen = pz.freeze_params(model)
    path = _resolve_path(frozen, name, "penzai")
    params, rebuild = _split(frozen)
    names = tuple(input_axes)
    batch = batch_axis or names[0]
    kwargs = dict(side_inputs or {})
    layout: dict[str, tuple[str, ...]] = {}

    def named_inputs(x: Any) -> Any:
        return penzai_named_inputs(x, names)

    def positional(value: Any, what: str) -> jax.Array:
        array, layout[what] = penzai_positional(value, batch, what)
        return array

    def features(p: list, x: Any) -> jax.Array:
        def capture(compute):
            raise _StopForward(compute())

        try:
            rebuilt = _replace(rebuild(p), path, lambda old: _Patch(old, capture))
            rebuilt(named_inputs(x), **kwargs)
        except _StopForward as stop:
            return positional(stop.value, f"layer {name!r}")
        raise ActSpecError(f"penzai layer {name!r} exists but is never called in the forward pass.")

    def head(p: list, a: jax.Array, x: Any) -> jax.Array:
        if f"layer {name!r}" not in layout:
            jax.eval_shape(features, p, x)
        rest = layout[f"layer {name!r}"]
        replacement = pz.nx.wrap(a).tag(batch, *rest)
        rebuilt = _replace(rebuild(p), path, lambda old: _Patch(old, lambda compute: replacement))
        return positional(rebuilt(named_inputs(x), **kwargs), "output")

    def axis_names(x: Any) -> tuple[str, ...]:
        jax.eval_shape(features, params, x)
        return (batch, *layout[f"layer {name!r}"])

    return CutModel(
        features=features,
        head=head,
        params=params,
        layer=name,
        feature_axis=None,
        strict_axes=True,
        site=the_site,
        family="penzai",
        axis_names=axis_names,
    )


def penzai_named_inputs(x: Any, names: tuple[str, ...]) -> Any:
    """Positional inputs ``[m, ...]`` as a penzai named array with axes ``names``."""
    from penzai import pz

    if isinstance(x, pz.nx.NamedArray) or not hasattr(x, "ndim"):
        raise ActSpecError(
            "cut_penzai takes positional input arrays [m, ...] named by input_axes="
            f"{names}; pass x.unwrap(*input_axes) instead of a NamedArray."
        )
    if x.ndim != len(names):
        raise ActSpecError(f"inputs of shape {list(x.shape)} do not match input_axes={names}.")
    return pz.nx.wrap(x).tag(*names)


def penzai_positional(value: Any, batch: str, what: str) -> tuple[jax.Array, tuple[str, ...]]:
    """A named array as ``[batch, *rest]`` positional, with ``rest`` (its other axes in order)."""
    from penzai import pz

    if not isinstance(value, pz.nx.NamedArray):
        raise ActSpecError(f"penzai {what} is a {type(value).__name__}, not a named array.")
    order = tuple(value.named_shape)
    if batch not in order or value.positional_shape:
        raise ActSpecError(
            f"penzai {what} has axes {dict(value.named_shape)} (positional {value.positional_shape}); "
            f"it needs the batch axis {batch!r} and only named axes."
        )
    rest = tuple(a for a in order if a != batch)
    return value.unwrap(batch, *rest), rest
