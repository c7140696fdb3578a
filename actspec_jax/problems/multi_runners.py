"""One forward pass with several layers rewritten, for every model family (private).

:func:`layer_runner` returns a :class:`LayerRunner` for a model and a list of layer names: its
``capture(params, inputs)`` gives each layer's clean output (``[m, ...]``, the batch first, as a
cut's ``features`` does) and the module computing it; its ``run(params, inputs, gates)`` runs the
model once with layer ``l``'s output replaced by ``where(keep_l, output, fill_l)`` — so a later
layer is recomputed from the residual stream the earlier gates changed. ``keep_l`` is a boolean
array broadcastable to ``[m, ...]`` (``1`` on the batch axis), ``fill_l`` the layer's shape.

Families: Flax linen (method interception), Flax nnx (sub-modules swapped in a merged copy),
dm-haiku (``hk.intercept_methods``), Equinox (sub-layers swapped in a shallow copy; one example
per call, ``vmap``-ped over the inputs unless ``batched=True``), penzai (sub-layers swapped; named
axes converted to ``[batch, *rest]`` at each gate and back).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.problems.cut import (
    _linen_layers,
    _linen_variables,
    _nnx_paths,
    _nnx_swap,
    _NnxPatch,
    _refuse_nnx_training,
    _training_mode_explained,
)
from actspec_jax.problems.cut_base import _check_array_output

__all__ = ["LayerRunner", "layer_runner"]

#: ``apply(params, inputs, on_output)``: the model's forward pass, ``on_output(i, out, module)``
#: called with layer ``i``'s output and returning what the model continues with.
Apply = Callable[[Any, Any, Callable[[int, Any, Any], Any]], Any]


@dataclasses.dataclass(frozen=True)
class LayerRunner:
    """Several layers of one model, captured or gated in one pass (see the module docstring)."""

    params: Any
    capture: Callable[[Any, Any], tuple[list[jax.Array], list[Any]]]
    run: Callable[[Any, Any, tuple], jax.Array]
    feature_axis: int | None
    strict: bool
    family: str
    #: each layer's axis names after ``capture`` (penzai), so a site may give ``axis='heads'``
    axis_names: list[tuple[str, ...] | None] = dataclasses.field(default_factory=list)


def _gate(out: jax.Array, gate: tuple[jax.Array, jax.Array]) -> jax.Array:
    keep, fill = gate
    return jnp.where(keep, out, fill)


def _collect(apply: Apply, layers: Sequence[str], listing: Callable[[], list[str]], model: str) -> Callable:
    """``capture`` for a batched ``apply``: every layer's output (each must run exactly once)."""

    def capture(params: Any, inputs: Any) -> tuple[list[jax.Array], list[Any]]:
        seen: list[list[Any]] = [[] for _ in layers]
        modules: list[Any] = [None] * len(layers)

        def record(i: int, out: Any, module: Any) -> Any:
            seen[i].append(out)
            modules[i] = module
            return out

        apply(params, inputs, record)
        for name, outs in zip(layers, seen):
            if not outs:
                raise UnknownLayerError(name, listing(), model=model)
            if len(outs) > 1:
                raise ActSpecError(
                    f"layer {name!r} is called {len(outs)} times in one forward pass (a shared module); "
                    "mask a module that runs once."
                )
        return [_check_array_output(outs[0], name) for name, outs in zip(layers, seen)], modules

    return capture


def _batched(apply: Apply, layers: Sequence[str], listing: Callable, model: str, **kw: Any) -> LayerRunner:
    def run(params: Any, inputs: Any, gates: tuple) -> jax.Array:
        return apply(params, inputs, lambda i, out, module: _gate(out, gates[i]))

    return LayerRunner(capture=_collect(apply, layers, listing, model), run=run, **kw)


def _linen(
    module: nn.Module, variables: Any, layers: Sequence[str], inputs: Any, method: Any, kwargs: Mapping
) -> LayerRunner:
    index = {name: i for i, name in enumerate(layers)}
    variables = _linen_variables(variables)

    def path(mdl: nn.Module) -> str:
        return "/".join(str(p) for p in mdl.path)

    def apply(params: Any, x: Any, on_output: Callable) -> Any:
        def interceptor(next_fun, args, kw, context):
            out = next_fun(*args, **kw)
            i = index.get(path(context.module)) if context.method_name == "__call__" else None
            return out if i is None else on_output(i, out, context.module)

        with nn.intercept_methods(interceptor), jax.disable_jit(), _training_mode_explained():  # see cut.py
            return module.apply(params, x, method=method, **kwargs)

    def capture(params: Any, x: Any) -> tuple[list[jax.Array], list[Any]]:
        # Flax's intermediates carry the values out of lifted transforms (nn.remat, nn.scan),
        # where a value kept by an interceptor would be a leaked tracer (as in cut_linen).
        def wanted(mdl: nn.Module, method_name: str) -> bool:
            return method_name == "__call__" and path(mdl) in index

        with jax.disable_jit(), _training_mode_explained():
            _, state = module.apply(
                params, x, method=method, capture_intermediates=wanted, mutable=["intermediates"], **kwargs
            )
        outs = []
        for name in layers:
            node: Any = state.get("intermediates", {})
            for key in name.split("/"):
                node = node.get(key, {}) if isinstance(node, Mapping) else {}
            found = node.get("__call__") if isinstance(node, Mapping) else None
            if not found:
                listing = _linen_layers(module, params, x, method, kwargs)
                raise UnknownLayerError(
                    name, [f"{k} {list(v)}" for k, v in listing.items()], model=type(module).__name__
                )
            if len(found) > 1:
                raise ActSpecError(
                    f"layer {name!r} is called {len(found)} times in one forward pass (a shared module); "
                    "mask a module that runs once."
                )
            outs.append(_check_array_output(found[0], name))
        modules: list[Any] = [None] * len(layers)

        def note(i: int, out: Any, mdl: Any) -> Any:
            modules[i] = mdl
            return out

        jax.eval_shape(lambda p: apply(p, x, note), params)
        return outs, modules

    def run(params: Any, x: Any, gates: tuple) -> jax.Array:
        return apply(params, x, lambda i, out, mdl: _gate(out, gates[i]))

    return LayerRunner(
        params=variables, capture=capture, run=run, feature_axis=-1, strict=False, family="linen"
    )


def _nnx(model: nnx.Module, layers: Sequence[str], call: Callable | None) -> LayerRunner:
    _refuse_nnx_training(model)
    paths = _nnx_paths(model)
    for name in layers:
        if name not in paths:
            raise UnknownLayerError(name, paths, model=type(model).__name__)
    graphdef, state = nnx.split(model)
    forward = call or (lambda m, x: m(x))

    def apply(params: Any, inputs: Any, on_output: Callable) -> Any:
        copy = nnx.merge(graphdef, params)
        for i, name in enumerate(layers):

            def make(orig: Any, i: int = i) -> _NnxPatch:
                return _NnxPatch(orig, lambda compute: on_output(i, compute(), orig))

            _nnx_swap(copy, paths[name], make)
        return forward(copy, inputs)

    return _batched(
        apply, layers, lambda: list(paths), type(model).__name__,
        params=state, feature_axis=-1, strict=False, family="nnx",
    )  # fmt: skip


def _haiku(
    model: Any, params: Any, layers: Sequence[str], inputs: Any, state: Any, kwargs: Mapping
) -> LayerRunner:
    import haiku as hk

    from actspec_jax.problems.cut_haiku import _caller, _layers

    index = {name: i for i, name in enumerate(layers)}
    call = _caller(model, state, dict(kwargs))
    bundle = {"params": params, "state": state}

    def apply(b: Any, inputs: Any, on_output: Callable) -> Any:
        def interceptor(next_fun, args, kw, context):
            out = next_fun(*args, **kw)
            i = index.get(context.module.module_name) if context.method_name == "__call__" else None
            return out if i is None else on_output(i, out, context.module)

        with hk.intercept_methods(interceptor):
            return call(b, inputs)

    def listing() -> list[str]:
        return [f"{k} {list(v)}" for k, v in _layers(call, bundle, inputs).items()]

    return _batched(
        apply, layers, listing, "haiku model",
        params=bundle, feature_axis=-1, strict=False, family="haiku",
    )  # fmt: skip


def _equinox(model: Any, layers: Sequence[str], call: Callable | None, batched: bool) -> LayerRunner:
    from actspec_jax.problems.cut_pytree import _Patch, _replace, _resolve_path, _split

    paths = [_resolve_path(model, name, "Equinox") for name in layers]
    params, rebuild = _split(model)
    forward = call or (lambda m, x: m(x))

    def apply(p: Any, x: Any, on_output: Callable) -> Any:
        m = rebuild(p)
        for i, path in enumerate(paths):

            def make(old: Any, i: int = i) -> _Patch:
                return _Patch(old, lambda compute: on_output(i, compute(), old))

            m = _replace(m, path, make)
        return forward(m, x)

    kw = dict(params=params, feature_axis=None, strict=True, family="equinox")
    if batched:
        return _batched(apply, layers, lambda: [], "Equinox model", **kw)

    def capture(p: Any, inputs: Any) -> tuple[list[jax.Array], list[Any]]:
        modules: list[Any] = [None] * len(layers)

        def one(x: Any) -> tuple:
            seen: list[Any] = [None] * len(layers)

            def record(i: int, out: Any, module: Any) -> Any:
                seen[i], modules[i] = out, module
                return out

            apply(p, x, record)
            missing = [name for name, out in zip(layers, seen) if out is None]
            if missing:
                raise ActSpecError(
                    f"Equinox layer {missing[0]!r} exists but is never called in the forward pass."
                )
            return tuple(seen)

        outs = jax.vmap(one)(inputs)
        return [_check_array_output(out, name) for name, out in zip(layers, outs)], modules

    def run(p: Any, inputs: Any, gates: tuple) -> jax.Array:
        keeps = tuple(keep[0] for keep, _ in gates)  # per example: the batch axis dropped

        def one(x: Any, fills: tuple) -> Any:
            return apply(p, x, lambda i, out, module: jnp.where(keeps[i], out, fills[i]))

        return jax.vmap(one)(inputs, tuple(fill for _, fill in gates))

    return LayerRunner(capture=capture, run=run, **kw)


def _penzai(
    model: Any, layers: Sequence[str], input_axes: Sequence[str], batch_axis: str | None, side: Mapping
) -> LayerRunner:
    from penzai import pz

    from actspec_jax.problems.cut_pytree import (
        _Patch,
        _replace,
        _resolve_path,
        _split,
        penzai_named_inputs,
        penzai_positional,
    )

    frozen = pz.freeze_params(model)
    paths = [_resolve_path(frozen, name, "penzai") for name in layers]
    params, rebuild = _split(frozen)
    names = tuple(input_axes)
    batch = batch_axis or names[0]
    axis_names: list[tuple[str, ...] | None] = [None] * len(layers)

    def apply(p: Any, x: Any, on_output: Callable) -> Any:
        m = rebuild(p)
        for i, path in enumerate(paths):

            def make(old: Any, i: int = i) -> _Patch:
                def on(compute: Callable[[], Any]) -> Any:
                    array, rest = penzai_positional(compute(), batch, f"layer {layers[i]!r}")
                    axis_names[i] = (batch, *rest)
                    return pz.nx.wrap(on_output(i, array, old)).tag(batch, *rest)

                return _Patch(old, on)

            m = _replace(m, path, make)
        return penzai_positional(m(penzai_named_inputs(x, names), **side), batch, "output")[0]

    runner = _batched(
        apply, layers, lambda: [], "penzai model",
        params=params, feature_axis=None, strict=True, family="penzai",
    )  # fmt: skip
    return dataclasses.replace(runner, axis_names=axis_names)


def layer_runner(
    model: Any,
    params: Any,
    layers: Sequence[str],
    inputs: Any,
    *,
    method: Any = None,
    apply_kwargs: Mapping[str, Any] | None = None,
    call: Callable | None = None,
    batched: bool | None = None,
    state: Any = None,
    input_axes: Sequence[str] | None = None,
    batch_axis: str | None = None,
    side_inputs: Mapping[str, Any] | None = None,
) -> LayerRunner:
    """The :class:`LayerRunner` of ``model``'s family (options as for :func:`~actspec_jax.cut_model`)."""
    from actspec_jax.problems.cut import _options
    from actspec_jax.problems.cut_haiku import is_haiku
    from actspec_jax.problems.cut_pytree import is_equinox, is_penzai

    given = {
        k: v
        for k, v in dict(
            method=method,
            apply_kwargs=apply_kwargs,
            call=call,
            batched=batched,
            state=state,
            input_axes=input_axes,
            batch_axis=batch_axis,
            side_inputs=side_inputs,
        ).items()
        if v is not None
    }
    if isinstance(model, nn.Module):
        _options("Flax linen", given, "method", "apply_kwargs")
        return _linen(model, params, layers, inputs, method, dict(apply_kwargs or {}))
    if isinstance(model, nnx.Module):
        _options("Flax nnx", given, "call")
        return _nnx(model, layers, call)
    if is_haiku(model):
        _options("dm-haiku", given, "state", "apply_kwargs")
        return _haiku(model, params, layers, inputs, state, apply_kwargs or {})
    if is_equinox(model):
        _options("Equinox", given, "call", "batched")
        return _equinox(model, layers, call, bool(batched))
    if is_penzai(model):
        _options("penzai", given, "input_axes", "batch_axis", "side_inputs")
        return _penzai(model, layers, input_axes or ("batch", "seq"), batch_axis, side_inputs or {})
    raise TypeError(
        f"a multi-layer problem recognises Flax linen, Flax nnx, dm-haiku, Equinox and penzai models; got a "
        f"{type(model).__module__}.{type(model).__name__}."
    )
