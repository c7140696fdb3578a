"""Cutting a model at a named layer into ``features`` and ``head``.

A :class:`CutModel` holds two pure functions of the model's parameters:

* ``features(params, inputs) -> activations`` — the layer's output ``float[..., n]``; the
  neuron axis is the last axis, leading axes are inputs (and tokens / spatial positions);
* ``head(params, activations, inputs) -> outputs`` — the rest of the network with the
  layer's output *replaced* by ``activations``. ``inputs`` are passed because residual
  architectures read earlier values too; whatever the head does not need is removed by
  XLA's dead-code elimination under ``jit``, and under ``vmap`` over masks everything
  that does not depend on the mask is computed once, not per mask.

Supported models: Flax linen modules (method interception), Flax nnx modules (the
sub-module at the path is swapped for a patching wrapper inside a pure function), and
plain functions the user splits by hand (:func:`cut_functions`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
from flax import nnx

from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.problems.cut_base import CutModel, _check_array_output, split_static_leaves
from actspec_jax.problems.sites import Site, as_site

__all__ = ["CutModel", "cut_functions", "cut_linen", "cut_model", "cut_nnx", "list_layers"]

Params = Any
Inputs = Any


class _StopForward(Exception):
    """Raised inside a forward pass once the cut layer's output is captured."""

    def __init__(self, value: Any) -> None:
        super().__init__("stop")
        self.value = value


# --------------------------------------------------------------------------- linen


def _linen_variables(variables: Any) -> Any:
    if isinstance(variables, Mapping) and "params" in variables:
        return variables
    return {"params": variables}


# Interception and ``nn.jit``: a linen method wrapped in ``nn.jit`` is compiled once per
# module hash and input shapes, and a cached trace never calls the interceptors again (an
# ``nn.jit``-wrapped ``__call__`` would list no layers and could not be patched). Every
# intercepted pass therefore runs under ``jax.disable_jit()``: the wrapped methods are traced
# inline into the caller's (our solvers') own ``jit``, with identical numerics. ``nn.remat``
# and ``nn.scan`` keep working (their bodies are traced with the interceptors active).


def _linen_layers(
    module: nn.Module, variables: Any, inputs: Inputs, method: Any, apply_kwargs: Mapping
) -> dict[str, tuple[int, ...]]:
    """Every sub-module ``__call__`` in a forward pass: ``{'a/b': output shape}``."""
    seen: dict[str, tuple[int, ...]] = {}

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        path = context.module.path
        if context.method_name == "__call__" and path:
            shape = tuple(out.shape) if hasattr(out, "shape") else ()
            seen.setdefault("/".join(str(p) for p in path), shape)
        return out

    def run(v, x):
        with nn.intercept_methods(interceptor), jax.disable_jit():
            return module.apply(v, x, method=method, **apply_kwargs)

    jax.eval_shape(run, variables, inputs)
    return seen


@contextlib.contextmanager
def _training_mode_explained() -> Iterator[None]:
    """A linen model that updates a variable collection (BatchNorm's ``batch_stats`` with
    ``train=True``) is in training mode: say so and how to leave it, not flax's raw error."""
    try:
        yield
    except flax.errors.ModifyScopeVariableError as err:
        raise ActSpecError(
            "the model updates its variables while it runs (e.g. BatchNorm's batch_stats): it is in "
            "training mode, where each mask would change the statistics. Run it in evaluation mode: "
            "apply_kwargs={'train': False} (or use_running_average=True / deterministic=True). "
            f"Flax said: {str(err).splitlines()[0]}"
        ) from err


def cut_linen(
    module: nn.Module,
    variables: Any,
    layer: str | Site,
    *,
    method: str | Callable | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> CutModel:
    """Cut a Flax linen module at the sub-module ``layer`` (path like ``'block_0/mlp/fc1'``,
    or a :class:`~actspec_jax.Site` naming it).

    The cut point is the output of that sub-module's ``__call__``. Layers are discovered on
    the first call of ``features``; an unknown name raises :class:`UnknownLayerError`
    listing every sub-module path with its output shape.

    Args:
      module: the linen module.
      variables: its variables (``{'params': …, …}`` as returned by ``init``; a bare params
        tree is wrapped).
      layer: ``'/'``-joined sub-module path.
      method: optional method to apply instead of ``__call__``.
      apply_kwargs: extra keyword arguments for ``apply`` (e.g. ``{'train': False}``).
    """
    the_site = as_site(layer)
    layer = str(the_site.layer)
    variables = _linen_variables(variables)
    target = tuple(layer.split("/"))
    kwargs = dict(apply_kwargs or {})

    def matches(context) -> bool:
        return context.method_name == "__call__" and tuple(str(p) for p in context.module.path) == target

    def features(params: Params, inputs: Inputs) -> jax.Array:
        # Flax's own intermediates collection carries the value out through lifted
        # transforms (nn.remat, nn.scan), where an exception or a side channel would leak.
        def wanted(mdl: nn.Module, method_name: str) -> bool:
            return method_name == "__call__" and tuple(str(p) for p in mdl.path) == target

        with jax.disable_jit(), _training_mode_explained():
            _, state = module.apply(
                _linen_variables(params),
                inputs,
                method=method,
                capture_intermediates=wanted,
                mutable=["intermediates"],
                **kwargs,
            )
        node: Any = state.get("intermediates", {})
        for key in target:
            node = node.get(key, {}) if isinstance(node, Mapping) else {}
        found = node.get("__call__") if isinstance(node, Mapping) else None
        if found:
            if len(found) > 1:
                raise ActSpecError(
                    f"layer {layer!r} is called {len(found)} times in one forward pass (a shared "
                    "module); cut at a module that runs once."
                )
            return _check_array_output(found[0], layer)
        layers = _linen_layers(module, _linen_variables(params), inputs, method, kwargs)
        listing = [f"{name} {list(shape)}" for name, shape in layers.items()]
        raise UnknownLayerError(layer, listing, model=type(module).__name__, hint=INLINE_HINT)

    def head(params: Params, activations: jax.Array, inputs: Inputs) -> jax.Array:
        calls = []

        def interceptor(next_fun, args, kw, context):
            if matches(context):
                calls.append(1)
                return activations
            return next_fun(*args, **kw)

        with nn.intercept_methods(interceptor), jax.disable_jit():
            out = module.apply(_linen_variables(params), inputs, method=method, **kwargs)
        if not calls:
            raise UnknownLayerError(layer, (), model=type(module).__name__)
        if len(calls) > 1:
            raise ActSpecError(
                f"layer {layer!r} is called {len(calls)} times in one forward pass (a shared "
                "module); cut at a module that runs once."
            )
        return out

    def layer_type(inputs: Inputs) -> nn.Module | None:
        found: list[nn.Module] = []

        def interceptor(next_fun, args, kw, context):
            if matches(context) and not found:
                found.append(context.module)
            return next_fun(*args, **kw)

        def run(v: Any, x: Inputs) -> Any:
            with nn.intercept_methods(interceptor), jax.disable_jit(), _training_mode_explained():
                return module.apply(v, x, method=method, **kwargs)

        jax.eval_shape(run, variables, inputs)
        return found[0] if found else None

    return CutModel(
        features=features,
        head=head,
        params=variables,
        layer=layer,
        feature_axis=-1,
        site=the_site,
        family="linen",
        layer_type=layer_type,
    )


# --------------------------------------------------------------------------- nnx


def _nnx_paths(model: nnx.Module) -> dict[str, tuple]:
    return {"/".join(str(p) for p in path): tuple(path) for path, _ in nnx.iter_modules(model) if path}


class _NnxPatch:
    """Stands in for an nnx sub-module: calls it, then captures or replaces its output."""

    def __init__(self, original: Callable, on_output: Callable[[Any], Any]) -> None:
        self.original = original
        self.on_output = on_output

    def __call__(self, *args, **kwargs):
        return self.on_output(lambda: self.original(*args, **kwargs))


def _nnx_swap(root: Any, path: tuple, make_patch: Callable[[Any], Any]) -> None:
    parent = root
    for key in path[:-1]:
        parent = parent[key] if isinstance(key, int) else getattr(parent, key)
    last = path[-1]
    if isinstance(last, int):
        original = parent[last]
        list.__setitem__(parent, last, make_patch(original)) if isinstance(
            parent, list
        ) else parent.__setitem__(last, make_patch(original))
    else:
        object.__setattr__(parent, last, make_patch(getattr(parent, last)))


def _refuse_nnx_training(model: nnx.Module) -> None:
    """A model in training mode would draw dropout masks and update batch statistics inside
    the analysis (a pure function of a copy): refuse it with the fix."""
    training = []
    for path, sub in nnx.iter_modules(model):
        name = "/".join(str(p) for p in path) or "(root)"
        if isinstance(sub, nnx.Dropout) and not sub.deterministic and sub.rate > 0:
            training.append(f"Dropout at {name!r} (deterministic=False)")
        if isinstance(sub, nnx.BatchNorm) and not sub.use_running_average:
            training.append(f"BatchNorm at {name!r} (use_running_average=False)")
    if training:
        raise ActSpecError(
            f"the nnx model {type(model).__name__} is in training mode: {'; '.join(training)}. Call "
            "model.eval() first (or build it with deterministic=True / use_running_average=True), so "
            "that masks are analysed on the inference-time network."
        )


def cut_nnx(
    model: nnx.Module,
    layer: str | Site,
    *,
    call: Callable[[nnx.Module, Inputs], Any] | None = None,
) -> CutModel:
    """Cut a Flax nnx module at the sub-module ``layer`` (path like ``'blocks/0/mlp'``).

    The model is split into a static graph and a state pytree (``nnx.split``); both
    returned functions merge a fresh copy, swap the sub-module for a patching wrapper and
    run ``call(model, inputs)`` (default ``model(inputs)``). ``params`` is the state.
    """
    the_site = as_site(layer)
    layer = str(the_site.layer)
    _refuse_nnx_training(model)
    paths = _nnx_paths(model)
    if layer not in paths:
        hint = INLINE_HINT.replace("class ReLU(nn.Module)", "nnx.Module").replace(
            "ReLU(name='relu_0')(x)", "an attribute"
        )
        raise UnknownLayerError(layer, paths, model=type(model).__name__, hint=hint)
    path = paths[layer]
    graphdef, state = nnx.split(model)
    run = call or (lambda m, x: m(x))

    def features(params: Params, inputs: Inputs) -> jax.Array:
        copy = nnx.merge(graphdef, params)

        def capture(compute):
            raise _StopForward(compute())

        _nnx_swap(copy, path, lambda orig: _NnxPatch(orig, capture))
        try:
            run(copy, inputs)
        except _StopForward as stop:
            return _check_array_output(stop.value, layer)
        raise ActSpecError(f"layer {layer!r} exists but is never called in the forward pass.")

    def head(params: Params, activations: jax.Array, inputs: Inputs) -> jax.Array:
        copy = nnx.merge(graphdef, params)
        _nnx_swap(copy, path, lambda orig: _NnxPatch(orig, lambda compute: activations))
        return run(copy, inputs)

    module = next(m for p, m in nnx.iter_modules(model) if p == path)
    return CutModel(
        features=features,
        head=head,
        params=state,
        layer=layer,
        feature_axis=-1,
        site=the_site,
        family="nnx",
        layer_type=lambda inputs: module,
    )


# --------------------------------------------------------------------------- plain functions


def cut_functions(
    features: Callable[[Params, Inputs], jax.Array],
    head: Callable[..., jax.Array],
    params: Params = None,
    *,
    layer: str | Site = "custom",
    feature_axis: int | None = None,
) -> CutModel:
    """Wrap a hand-made split. ``head`` may take ``(params, activations)`` or
    ``(params, activations, inputs)``; the two-argument form is adapted.

    ``layer`` names the cut (or is a :class:`~actspec_jax.Site` with the axis); plain
    functions carry no layout convention, so a layer of rank ≥ 4 needs ``axis=`` in the
    site (or ``feature_axis=`` here) — see :mod:`actspec_jax.problems.sites`.
    """
    the_site = as_site(layer)
    try:
        positional = [
            p
            for p in inspect.signature(head).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        takes_inputs = len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in positional)
    except (TypeError, ValueError):
        takes_inputs = False
    head3 = head if takes_inputs else (lambda p, a, x: head(p, a))
    params, features, head3 = split_static_leaves(params, features, head3)
    return CutModel(
        features=features,
        head=head3,
        params=params,
        layer=str(the_site.layer if the_site.layer is not None else "custom"),
        feature_axis=feature_axis,
        site=the_site,
        family="functions",
    )


# --------------------------------------------------------------------------- dispatch


#: Layers are named sub-modules; what users most often try to cut at is not one.
INLINE_HINT = (
    "Layers are named sub-modules: an activation applied inline in __call__ (nn.relu(x)) is not one. "
    "Give it a module with a name (e.g. a one-line `class ReLU(nn.Module)` called as "
    "ReLU(name='relu_0')(x)), or cut at the named layer that feeds it."
)

_FALLBACK = (
    "for any other model split it by hand: cut_functions(features, head, params) with "
    "features(params, inputs) -> the layer's output and head(params, activations, inputs) -> outputs"
)


def _options(family: str, given: dict[str, Any], *allowed: str) -> dict[str, Any]:
    """``given`` if every option in it belongs to ``family``'s cutter, else a ``TypeError`` naming it."""
    stray = sorted(set(given) - set(allowed))
    if stray:
        raise TypeError(
            f"cut_model: {', '.join(stray)} is not an option of a {family} cut "
            f"(it takes {', '.join(allowed)})."
        )
    return given


def cut_model(
    model: Any,
    params: Params,
    layer: str | Site,
    *,
    method: str | Callable | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
    call: Callable[..., Any] | None = None,
    batched: bool | None = None,
    input_axes: Sequence[str] | None = None,
    batch_axis: str | None = None,
    side_inputs: dict[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
) -> CutModel:
    """Cut a model at ``layer`` (a name or a :class:`~actspec_jax.Site`), recognising its family.

    * Flax linen module + its variables → :func:`cut_linen` (``method``, ``apply_kwargs``);
    * Flax nnx module (``params=None``) → :func:`cut_nnx` (``call``);
    * Equinox module (``params=None``) → :func:`~actspec_jax.cut_equinox` (``call``, ``batched``);
    * penzai layer (``params=None``) → :func:`~actspec_jax.cut_penzai` (``input_axes``,
      ``batch_axis``, ``side_inputs``);
    * dm-haiku ``hk.transform`` / ``hk.transform_with_state`` + its params →
      :func:`~actspec_jax.cut_haiku` (``state``, ``apply_kwargs``);
    * anything else: a :class:`TypeError` naming the two-function fallback :func:`cut_functions`.

    An option left at ``None`` takes that cutter's default; an option of another family
    (``call=`` for a linen module, …) is refused by name.
    """
    from actspec_jax.problems.cut_haiku import cut_haiku, is_haiku
    from actspec_jax.problems.cut_pytree import cut_equinox, cut_penzai, is_equinox, is_penzai

    given = {
        name: value
        for name, value in dict(
            method=method, apply_kwargs=apply_kwargs, call=call, batched=batched,
            input_axes=input_axes, batch_axis=batch_axis, side_inputs=side_inputs, state=state,
        ).items()
        if value is not None
    }  # fmt: skip
    if isinstance(model, nn.Module):
        return cut_linen(model, params, layer, **_options("Flax linen", given, "method", "apply_kwargs"))
    if isinstance(model, nnx.Module):
        return cut_nnx(model, layer, **_options("Flax nnx", given, "call"))
    if is_penzai(model):
        return cut_penzai(
            model, layer, **_options("penzai", given, "input_axes", "batch_axis", "side_inputs")
        )
    if is_equinox(model):
        return cut_equinox(model, layer, **_options("Equinox", given, "call", "batched"))
    if is_haiku(model):
        return cut_haiku(model, params, layer, **_options("dm-haiku", given, "state", "apply_kwargs"))
    raise TypeError(
        f"cut_model recognises Flax linen, Flax nnx, Equinox, penzai and dm-haiku models; got a "
        f"{type(model).__module__}.{type(model).__name__}. {_FALLBACK[0].upper()}{_FALLBACK[1:]}."
    )


def list_layers(
    model: Any,
    params: Params = None,
    inputs: Inputs = None,
    *,
    method: str | Callable | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Layers a model can be cut at. linen and dm-haiku: ``{path: output shape}`` (needs example
    ``inputs``; ``method``/``apply_kwargs`` as for :func:`cut_linen`, ``state``/``apply_kwargs``
    as for :func:`~actspec_jax.cut_haiku`); nnx, Equinox, penzai: ``{path: module type}``."""
    if isinstance(model, nn.Module):
        if inputs is None:
            raise ValueError("listing linen layers needs example inputs to trace the model.")
        return _linen_layers(model, _linen_variables(params), inputs, method, apply_kwargs or {})
    if isinstance(model, nnx.Module):
        return {
            "/".join(str(p) for p in path): type(m).__name__ for path, m in nnx.iter_modules(model) if path
        }
    from actspec_jax.problems.cut_haiku import haiku_layers, is_haiku
    from actspec_jax.problems.cut_pytree import is_equinox, is_penzai, list_pytree_layers

    if is_equinox(model) or is_penzai(model):
        return list_pytree_layers(model)
    if is_haiku(model):
        if inputs is None:
            raise ValueError("listing haiku layers needs example inputs to trace the model.")
        return haiku_layers(model, params, inputs, state=state, apply_kwargs=apply_kwargs)
    raise TypeError(
        f"list_layers recognises Flax linen, Flax nnx, Equinox, penzai and dm-haiku models, got "
        f"{type(model).__name__}; {_FALLBACK}."
    )
