"""Capture every layer's representation of one fixed input set.

A representation is ``float32[m, features]``: one row per input. Layers whose output has
extra axes (tokens ``[m, T, d]``, heads ``[m, T, H, d]``, …) are reduced by an explicit
``pooling``:

* ``'mean'``    — average over the token axis (axis 1), optionally weighted by a
  ``token_mask float[m, T]`` (1 = real token, 0 = padding), then flatten the rest;
* ``'cls'``     — the token at ``cls_index`` (default 0) of axis 1, then flatten;
* ``'last'``    — the last real token (the last 1 of ``token_mask``; the last position
  without a mask), then flatten;
* ``'flatten'`` — flatten everything after the input axis (``[m, T·d]``).

Linen modules are traced once with method interception (every requested sub-module's
output is recorded in a single forward pass); nnx modules and hand-made splits go
through :func:`actspec_jax.cut_model` per layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.problems.cut import _linen_layers, _linen_variables, cut_model

__all__ = ["POOLINGS", "capture_representations", "pool_tokens"]

#: How :func:`pool_tokens` turns per-token representations into one row per input.
POOLINGS = ("mean", "cls", "last", "flatten")
Pooling = Literal["mean", "cls", "last", "flatten"]


def pool_tokens(
    x: jax.Array, pooling: Pooling = "mean", *, token_mask: jax.Array | None = None, cls_index: int = 0
) -> jax.Array:
    """Reduce ``x float[m, ...]`` to ``float32[m, features]`` (see module docstring)."""
    if pooling not in POOLINGS:
        raise ActSpecError(f"unknown pooling {pooling!r}; use one of {POOLINGS}.")
    x = jnp.asarray(x, jnp.float32)
    if x.ndim < 2:
        raise ActSpecError(f"a layer output needs a feature axis, got shape {tuple(x.shape)}.")
    m = x.shape[0]
    if x.ndim == 2:
        return x
    if pooling == "flatten":
        return x.reshape(m, -1)
    T = x.shape[1]
    if token_mask is not None:
        token_mask = jnp.asarray(token_mask, jnp.float32)
        if token_mask.shape != (m, T):
            raise ActSpecError(
                f"token_mask must be [inputs, tokens] = [{m}, {T}] for this layer, got "
                f"{tuple(token_mask.shape)}."
            )
    if pooling == "cls":
        if not -T <= cls_index < T:
            raise ActSpecError(f"cls_index {cls_index} is outside the {T} token positions.")
        return x[:, cls_index].reshape(m, -1)
    if pooling == "last":
        if token_mask is None:
            return x[:, -1].reshape(m, -1)
        last = T - 1 - jnp.argmax(token_mask[:, ::-1] > 0, axis=1)
        return jnp.take_along_axis(x, last.reshape(m, 1, *([1] * (x.ndim - 2))), axis=1)[:, 0].reshape(m, -1)
    if token_mask is None:
        return x.mean(axis=1).reshape(m, -1)
    w = token_mask.reshape(m, T, *([1] * (x.ndim - 2)))
    return ((x * w).sum(axis=1) / jnp.maximum(w.sum(axis=1), 1.0)).reshape(m, -1)


def _capture_linen(
    module: nn.Module, variables: Any, inputs: Any, layers: Sequence[str], method: Any, kwargs: Mapping
) -> dict[str, jax.Array]:
    wanted = {tuple(name.split("/")): name for name in layers}
    seen: dict[str, Any] = {}

    def interceptor(next_fun, args, kw, context):
        out = next_fun(*args, **kw)
        if context.method_name == "__call__":
            name = wanted.get(tuple(str(p) for p in context.module.path))
            if name is not None:
                if name in seen:
                    raise ActSpecError(
                        f"layer {name!r} is called more than once per forward pass (a shared module); "
                        "capture a module that runs once."
                    )
                seen[name] = out
        return out

    with nn.intercept_methods(interceptor):
        module.apply(variables, inputs, method=method, **kwargs)
    missing = [name for name in layers if name not in seen]
    if missing:
        available = _linen_layers(module, variables, inputs, method, kwargs)
        raise UnknownLayerError(
            missing[0], [f"{k} {list(v)}" for k, v in available.items()], model=type(module).__name__
        )
    for name, value in seen.items():
        if not hasattr(value, "shape"):
            raise ActSpecError(
                f"layer {name!r} returns a {type(value).__name__}, not one array; capture a sub-module "
                "whose output is a single array."
            )
    return seen


def capture_representations(
    model: Any,
    variables: Any,
    inputs: Any,
    layers: Sequence[str],
    *,
    pooling: Pooling = "mean",
    token_mask: jax.Array | None = None,
    cls_index: int = 0,
    method: Any = None,
    apply_kwargs: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Representations ``{layer: float32[m, features]}`` of ``inputs`` at each named layer.

    Args:
      model: a Flax linen module (with ``variables``) or an nnx module (``variables=None``).
      inputs: the fixed input set (a pytree with a leading axis of ``m`` inputs).
      layers: sub-module paths in network order (at least 2 for a comparison).
      pooling: how to reduce token axes (module docstring); 2-D outputs are kept as they are.
      token_mask: optional ``float[m, T]`` 1 = real token, for ``'mean'``/``'last'``.
      method, apply_kwargs: passed to ``module.apply`` (linen).
      batch_size: run the inputs in chunks of this many (same result, bounded memory).
    """
    layers = [str(name) for name in layers]
    if not layers:
        raise ActSpecError("name at least one layer to capture.")
    if len(set(layers)) != len(layers):
        raise ActSpecError(f"layer names must be distinct, got {layers}.")
    if pooling not in POOLINGS:
        raise ActSpecError(f"unknown pooling {pooling!r}; use one of {POOLINGS}.")
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves:
        raise ActSpecError("the input set is empty.")
    m = int(np.shape(leaves[0])[0])
    kwargs = dict(apply_kwargs or {})
    step = m if batch_size is None else max(1, int(batch_size))
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for start in range(0, m, step):
        batch = jax.tree_util.tree_map(lambda a, s=start: a[s : s + step], inputs)
        mask = None if token_mask is None else jnp.asarray(token_mask)[start : start + step]
        if isinstance(model, nn.Module):
            raw = _capture_linen(model, _linen_variables(variables), batch, layers, method, kwargs)
        else:
            raw = {name: cut_model(model, variables, name).activations(batch) for name in layers}
        for name in layers:
            pooled = pool_tokens(raw[name], pooling, token_mask=mask, cls_index=cls_index)
            chunks[name].append(np.asarray(pooled))
    return {name: np.concatenate(parts, axis=0) for name, parts in chunks.items()}
