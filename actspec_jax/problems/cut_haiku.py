"""Cutting a dm-haiku model (``hk.transform`` / ``hk.transform_with_state``) at a named module.

A haiku model is a pair of pure functions ``init``/``apply`` over a mapping of parameters (and,
with ``transform_with_state``, a mapping of state such as BatchNorm's running averages). Its
layers are the modules' full names as haiku writes them (``'mlp/~/linear_0'``);
:func:`haiku_layers` lists them with their output shapes. The cut intercepts the module's
``__call__`` (``hk.intercept_methods``) inside ``apply``: ``features`` records its output,
``head`` returns the given activations in its place, so the rest of the model — residual
reads of the inputs included — runs unchanged.

* The state is kept: both functions call ``apply(params, state, …)`` with the state given at
  the cut (its updated copy is dropped — an analysis must not change the model). Pass the
  model's evaluation switch, e.g. ``apply_kwargs={'is_training': False}``: BatchNorm in
  training mode would normalise each masked batch by its own statistics.
* ``apply`` gets ``rng=None`` (evaluation is deterministic); a model that draws random
  numbers there is refused with that fix. ``hk.without_apply_rng`` models are recognised.
* Haiku layers are features-last (``hk.Linear``, ``hk.Conv2D``'s default ``NHWC``), as Flax's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax

from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.problems.cut_base import CutModel, _check_array_output
from actspec_jax.problems.sites import Site, as_site

__all__ = ["cut_haiku", "haiku_layers", "is_haiku"]

#: What the listing and the errors say about naming a haiku layer.
HAIKU_HINT = (
    "Haiku layers are modules' full names as list_layers shows them ('mlp/~/linear_0' for a "
    "sub-module made in __init__, 'block/attn' for one made in __call__); an activation applied "
    "inline (jax.nn.relu(x)) is not one: wrap it in a module or cut at the module that feeds it."
)


def is_haiku(model: Any) -> bool:
    """``True`` for ``hk.Transformed`` / ``hk.TransformedWithState`` (checked without importing
    haiku when the model is something else)."""
    kind = type(model)
    return kind.__module__.startswith("haiku") and kind.__name__ in ("Transformed", "TransformedWithState")


def _caller(model: Any, state: Mapping | None, apply_kwargs: Mapping[str, Any]) -> Callable:
    """``call(bundle, inputs) -> outputs``: ``apply`` with the state and ``rng=None`` filled in."""
    with_state = type(model).__name__ == "TransformedWithState"
    if with_state and state is None:
        raise ActSpecError(
            "this haiku model keeps state (hk.transform_with_state): pass it, "
            "cut_model(model, params, layer, state=state), with the state returned by init."
        )
    if not with_state and state is not None:
        raise ActSpecError(
            "state= is for hk.transform_with_state models; this one (hk.transform) keeps no state."
        )
    takes_rng = "rng" in inspect.signature(model.apply).parameters
    lead = (None,) if takes_rng else ()

    def call(bundle: dict[str, Any], inputs: Any) -> Any:
        try:
            if with_state:
                out, _ = model.apply(bundle["params"], bundle["state"], *lead, inputs, **apply_kwargs)
                return out
            return model.apply(bundle["params"], *lead, inputs, **apply_kwargs)
        except TypeError as err:
            if "required" not in str(err) or "argument" not in str(err):
                raise
            raise ActSpecError(
                "the haiku model's function needs an argument that was not given "
                f"({str(err).splitlines()[0]}): pass it through apply_kwargs, "
                "e.g. apply_kwargs={'is_training': False}."
            ) from err
        except ValueError as err:
            if "PRNGKey" not in str(err):
                raise
            raise ActSpecError(
                "the haiku model draws random numbers in apply (hk.next_rng_key, e.g. dropout): run it "
                "in evaluation mode, e.g. apply_kwargs={'is_training': False}, so each mask gives one value. "
                f"Haiku said: {str(err).splitlines()[0]}"
            ) from err

    return call


def _layers(call: Callable, bundle: dict[str, Any], inputs: Any) -> dict[str, tuple[int, ...]]:
    import haiku as hk

    seen: dict[str, tuple[int, ...]] = {}

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            seen.setdefault(context.module.module_name, tuple(out.shape) if hasattr(out, "shape") else ())
        return out

    def run(b: dict[str, Any], x: Any) -> Any:
        with hk.intercept_methods(interceptor):
            return call(b, x)

    jax.eval_shape(run, bundle, inputs)
    return seen


def haiku_layers(
    model: Any, params: Mapping, inputs: Any, *, state: Mapping | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, tuple[int, ...]]:  # fmt: skip
    """Every module ``__call__`` in one forward pass of a haiku model: ``{name: output shape}``."""
    call = _caller(model, state, dict(apply_kwargs or {}))
    return _layers(call, {"params": params, "state": state}, inputs)


def cut_haiku(
    model: Any,
    params: Mapping,
    layer: str | Site,
    *,
    state: Mapping | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> CutModel:
    """Cut a dm-haiku model at the module named ``layer`` (see the module docstring).

    Args:
      model: ``hk.transform(f)`` or ``hk.transform_with_state(f)`` (with or without
        ``hk.without_apply_rng``); ``f`` takes the inputs as its one positional argument.
      params: the parameters ``init`` returned.
      layer: the module's full name (``'encoder/~/linear_1'``) or a :class:`~actspec_jax.Site`.
      state: the state ``init`` returned (``transform_with_state`` only); kept, never updated.
      apply_kwargs: keyword arguments of ``f`` (e.g. ``{'is_training': False}``).

    Returns:
      A :class:`~actspec_jax.CutModel` whose ``params`` are ``{'params': …, 'state': …}``.
    """
    import haiku as hk

    the_site = as_site(layer)
    name = str(the_site.layer)
    call = _caller(model, state, dict(apply_kwargs or {}))

    def at_layer(bundle: dict[str, Any], inputs: Any, on_layer: Callable) -> tuple[Any, list[Any]]:
        """Run the model with ``on_layer(compute, module)`` in place of the layer's ``__call__``;
        returns the outputs and what ``on_layer`` returned at each call."""
        seen: list[Any] = []

        def interceptor(next_fun, args, kwargs, context):
            if context.method_name != "__call__" or context.module.module_name != name:
                return next_fun(*args, **kwargs)
            seen.append(on_layer(lambda: next_fun(*args, **kwargs), context.module))
            return seen[-1][0]

        with hk.intercept_methods(interceptor):
            return call(bundle, inputs), seen

    def features(bundle: dict[str, Any], inputs: Any) -> jax.Array:
        _, seen = at_layer(bundle, inputs, lambda compute, module: (compute(),))
        if not seen:
            listing = [f"{n} {list(s)}" for n, s in _layers(call, bundle, inputs).items()]
            raise UnknownLayerError(name, listing, model="haiku model", hint=HAIKU_HINT)
        _once(name, len(seen))
        return _check_array_output(seen[0][0], name)

    def head(bundle: dict[str, Any], activations: jax.Array, inputs: Any) -> jax.Array:
        out, seen = at_layer(bundle, inputs, lambda compute, module: (activations,))
        if not seen:
            raise UnknownLayerError(name, (), model="haiku model", hint=HAIKU_HINT)
        _once(name, len(seen))
        return out

    def layer_type(inputs: Any) -> Any:
        modules: list[Any] = []

        def note(compute: Callable[[], Any], module: Any) -> tuple[Any]:
            modules.append(module)
            return (compute(),)

        jax.eval_shape(lambda b, x: at_layer(b, x, note)[0], bundle, inputs)
        return modules[0] if modules else None

    bundle = {"params": params, "state": state}
    return CutModel(
        features=features,
        head=head,
        params=bundle,
        layer=name,
        feature_axis=-1,
        site=the_site,
        family="haiku",
        layer_type=layer_type,
    )


def _once(name: str, calls: int) -> None:
    if calls > 1:
        raise ActSpecError(
            f"layer {name!r} is called {calls} times in one forward pass (a shared module); cut at a "
            "module that runs once."
        )
