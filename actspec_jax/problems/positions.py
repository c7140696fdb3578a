"""The rest of a model restricted to one position, when it is position-wise (private).

An output like ``'log_prob:42@last'`` reads one position of sequence outputs ``[m, T, V]``. The
head (the model after the cut) normally runs on all ``T`` positions for every mask, though when
everything after the cut treats positions independently (an MLP cut in the last block: the MLP's
second layer, the residual add, the final norm and the unembedding) only the selected one
matters. :func:`restrict_to_position` finds that out from the head's jaxpr and, if so, returns the
head on activations ``[m, 1, …]`` of that position alone (``T`` times less work a mask).

**How.** The head is traced once with the activations as its only mask-dependent input, position
axis 1. Its equations are replayed: those that do not depend on the activations run as they are
(under ``vmap`` over masks JAX computes them once); for those that do, a rule per primitive
follows the position axis (and the index of the selected position along it) through the
equation and slices the mask-independent operands it meets to that position — elementwise ops,
``broadcast_in_dim``, ``reshape`` (the axis kept whole), ``transpose``, ``squeeze``, reductions
and ``dot_general`` over other axes, ``concatenate`` / ``pad`` along other axes, ``slice`` keeping
the position, and nested ``jit`` / custom-derivative calls. Anything that mixes positions
(attention over ``T``, a reduction or contraction over the axis, a gather, a scan) makes the
restriction fail, and the head is used whole. The caller also checks the restricted head
against the whole one numerically before using it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np

__all__ = ["position_index", "restrict_problem", "restrict_to_position"]

#: Primitives that act value by value (operands of one shape, or scalars).
ELEMENTWISE = frozenset(
    (
        *("add", "sub", "mul", "div", "rem", "pow", "max", "min", "neg", "sign", "floor", "ceil"),
        *("round", "is_finite", "exp", "exp2", "log", "log1p", "expm1", "tanh", "logistic", "sin"),
        *("cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh"),
        *("sqrt", "rsqrt", "cbrt", "abs", "integer_pow", "erf", "erfc", "erf_inv", "lgamma", "digamma"),
        *("select_n", "and", "or", "not", "xor", "eq", "ne", "lt", "le", "gt", "ge", "square"),
        *("convert_element_type", "reduce_precision", "copy", "copy_p", "clamp", "nextafter"),
        *("real", "imag", "conj", "complex", "population_count", "shift_left", "add_any"),
        *("shift_right_logical", "shift_right_arithmetic"),
    )
)
#: Reductions over listed axes, and calls whose inner jaxpr is replayed.
REDUCTIONS = frozenset(
    ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or", "argmax", "argmin")
)
CALLS = frozenset(
    (
        *("pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "remat"),
        *("checkpoint", "custom_vjp_call_jaxpr"),
    )
)


class _Mixes(Exception):
    """The head mixes positions (or uses an equation the rules do not follow)."""


Where = tuple[int, int] | None  # (axis, index of the selected position along it) or independent


def _take(value: Any, axis: int, index: int) -> Any:
    return jax.lax.slice_in_dim(value, index, index + 1, axis=axis)


def _shape(var: Any) -> tuple[int, ...]:
    return tuple(var.aval.shape)


def _bind(eqn: Any, values: Sequence[Any], params: dict[str, Any]) -> list[Any]:
    out = eqn.primitive.bind(*values, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _call_jaxpr(params: dict[str, Any]) -> tuple[Any, Sequence[Any]]:
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        inner = params.get(name)
        if isinstance(inner, jex.ClosedJaxpr):
            return inner.jaxpr, inner.consts
        if isinstance(inner, jex.Jaxpr):
            return inner, ()
    raise _Mixes("a call without a jaxpr")


def _dependent(eqn: Any, values: list[Any], where: list[Where]) -> tuple[list[Any], list[Where]]:
    """Outputs and their positions of one equation with at least one dependent operand."""
    name = eqn.primitive.name
    params = dict(eqn.params)
    shapes = [_shape(v) for v in eqn.invars]
    found = {w for w in where if w is not None}
    if name in CALLS:
        jaxpr, consts = _call_jaxpr(params)
        return _replay(jaxpr, consts, values, where)
    if name in ELEMENTWISE:
        if len(found) != 1:
            raise _Mixes(name)
        (axis, index) = next(iter(found))
        out = _shape(eqn.outvars[0])
        operands = []
        for value, at, shape in zip(values, where, shapes):
            if at is None and len(shape) == len(out) and shape[axis] > 1:
                value = _take(value, axis, index)
            elif at is None and shape and len(shape) == len(out):
                pass  # size 1 along the axis: broadcasts
            elif at is None and shape:
                raise _Mixes(name)
            operands.append(value)
        return _bind(eqn, operands, params), [(axis, index)] * len(eqn.outvars)
    (axis, index) = next(w for w in where if w is not None)
    if name == "broadcast_in_dim":
        target = params["broadcast_dimensions"][axis]
        shape = list(params["shape"])
        shape[target] = 1
        params["shape"] = tuple(shape)
        return _bind(eqn, values, params), [(target, index)]
    if name == "reshape":
        if params.get("dimensions") is not None:
            raise _Mixes("reshape with dimensions")
        sizes = list(params["new_sizes"])
        before = math.prod(shapes[0][:axis])
        target = next(
            (b for b in range(len(sizes)) if math.prod(sizes[:b]) == before and sizes[b] == shapes[0][axis]),
            None,
        )
        if target is None:
            raise _Mixes("reshape across the position axis")
        sizes[target] = 1
        params["new_sizes"] = tuple(sizes)
        return _bind(eqn, values, params), [(target, index)]
    if name == "transpose":
        return _bind(eqn, values, params), [(list(params["permutation"]).index(axis), index)]
    if name == "squeeze":
        dims = [d % len(shapes[0]) for d in params["dimensions"]]
        if axis in dims:
            raise _Mixes("squeeze of the position axis")
        return _bind(eqn, values, params), [(axis - sum(d < axis for d in dims), index)]
    if name in REDUCTIONS:
        axes = list(params["axes"])
        if axis in axes:
            raise _Mixes(f"{name} over the position axis")
        return _bind(eqn, values, params), [(axis - sum(a < axis for a in axes), index)]
    if name == "dot_general":
        return _dot(eqn, values, where, shapes, params)
    if name == "concatenate":
        if params["dimension"] == axis or len(found) != 1:
            raise _Mixes("concatenate along the position axis")
        operands = [_take(v, axis, index) if at is None else v for v, at in zip(values, where)]
        return _bind(eqn, operands, params), [(axis, index)]
    if name == "pad":
        if tuple(params["padding_config"][axis]) != (0, 0, 0) or where[1] is not None:
            raise _Mixes("pad along the position axis")
        return _bind(eqn, values, params), [(axis, index)]
    if name == "slice":
        start, limit = list(params["start_indices"]), list(params["limit_indices"])
        strides = list(params["strides"] or [1] * len(start))
        s, step = start[axis], strides[axis]
        if not (s <= index < limit[axis] and (index - s) % step == 0):
            raise _Mixes("a slice that drops the selected position")
        start[axis], limit[axis], strides[axis] = 0, 1, 1
        params.update(start_indices=tuple(start), limit_indices=tuple(limit), strides=tuple(strides))
        return _bind(eqn, values, params), [(axis, (index - s) // step)]
    raise _Mixes(name)


def _dot(eqn: Any, values: list[Any], where: list[Where], shapes: list, params: dict) -> tuple[list, list]:
    (lc, rc), (lb, rb) = params["dimension_numbers"]
    lhs, rhs = values
    free_l = [d for d in range(len(shapes[0])) if d not in lc and d not in lb]
    free_r = [d for d in range(len(shapes[1])) if d not in rc and d not in rb]
    (la, lw), (ra, rw) = (where[0] or (None, None)), (where[1] or (None, None))
    if la is not None and ra is not None:
        if la in lb and ra in rb and lb.index(la) == rb.index(ra) and lw == rw:
            return _bind(eqn, values, params), [(lb.index(la), lw)]
        raise _Mixes("dot_general of two position-dependent operands")
    if la is not None:
        if la in lc:
            raise _Mixes("dot_general contracting the position axis")
        if la in lb:
            k = lb.index(la)
            rhs = _take(rhs, rb[k], lw) if shapes[1][rb[k]] > 1 else rhs
            return _bind(eqn, [lhs, rhs], params), [(k, lw)]
        return _bind(eqn, values, params), [(len(lb) + free_l.index(la), lw)]
    if ra in rc:
        raise _Mixes("dot_general contracting the position axis")
    if ra in rb:
        k = rb.index(ra)
        lhs = _take(lhs, lb[k], rw) if shapes[0][lb[k]] > 1 else lhs
        return _bind(eqn, [lhs, rhs], params), [(k, rw)]
    return _bind(eqn, values, params), [(len(lb) + len(free_l) + free_r.index(ra), rw)]


def _bind_params(eqn: Any) -> tuple[Sequence[Any], dict[str, Any]]:
    """``(subfuns, params)`` to bind ``eqn`` as ``jax.core.eval_jaxpr`` does (JAX releases return
    either the params alone or the pair)."""
    got = eqn.primitive.get_bind_params(eqn.params)
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], dict):
        return got
    return (), got


def _replay(
    jaxpr: Any, consts: Sequence[Any], args: Sequence[Any], where: Sequence[Where]
) -> tuple[list, list]:
    env: dict[Any, tuple[Any, Where]] = {}

    def read(var: Any) -> tuple[Any, Where]:
        return (var.val, None) if isinstance(var, jex.Literal) else env[var]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = (value, None)
    for var, value, at in zip(jaxpr.invars, args, where):
        env[var] = (value, at)
    for eqn in jaxpr.eqns:
        values, places = zip(*(read(v) for v in eqn.invars)) if eqn.invars else ((), ())
        if all(p is None for p in places):
            subfuns, params = _bind_params(eqn)
            outs = eqn.primitive.bind(*subfuns, *values, **params)
            outs = list(outs) if eqn.primitive.multiple_results else [outs]
            outs_where: list[Where] = [None] * len(outs)
        else:
            outs, outs_where = _dependent(eqn, list(values), list(places))
        for var, value, at in zip(eqn.outvars, outs, outs_where):
            env[var] = (value, at)
    results = [read(v) for v in jaxpr.outvars]
    return [r[0] for r in results], [r[1] for r in results]


def restrict_to_position(
    head: Callable[..., Any], params: Any, activations: jax.Array, inputs: Any, position: int
) -> Callable[[Any, jax.Array, Any], jax.Array] | None:
    """``head(params, acts[:, position : position + 1], inputs) → outputs [m, 1, …]`` equal to
    ``head(params, acts, inputs)[:, position : position + 1]`` when the head is position-wise for
    that position (module docstring), else ``None``. ``activations: [m, T, …]`` (position axis 1),
    outputs ``[m, T, …]``; ``position`` in ``0 … T − 1``."""
    leaves, tree = jax.tree_util.tree_flatten((params, activations, inputs))
    slot = len(jax.tree_util.tree_leaves(params))

    def flat(*args: Any) -> Any:
        return head(*jax.tree_util.tree_unflatten(tree, list(args)))

    try:
        closed = jax.make_jaxpr(flat)(*leaves)
    except Exception:  # a head that cannot be traced abstractly: keep it whole
        return None
    if len(closed.jaxpr.outvars) != 1 or len(_shape(closed.jaxpr.outvars[0])) < 2:
        return None
    where: list[Where] = [None] * len(leaves)
    where[slot] = (1, position)
    size = activations.shape[1]

    def restricted(params: Any, sliced: jax.Array, inputs: Any) -> jax.Array:
        args = jax.tree_util.tree_leaves((params, sliced, inputs))
        outs, places = _replay(closed.jaxpr, closed.consts, args, where)
        if places[0] != (1, position):
            raise _Mixes("the selected position is not the outputs' own")
        return outs[0]

    probe = (
        params,
        jax.ShapeDtypeStruct((activations.shape[0], 1, *activations.shape[2:]), activations.dtype),
    )
    try:
        out = jax.eval_shape(restricted, *probe, inputs)
    except _Mixes:
        return None
    full = _shape(closed.jaxpr.outvars[0])
    if size < 2 or tuple(out.shape) != (full[0], 1, *full[2:]):
        return None
    return restricted


def position_index(position: int | str, size: int) -> int | None:
    """The index along ``size`` positions named by an ``At`` selector's ``position`` (``None``: mean)."""
    if position == "mean":
        return None
    index = size - 1 if position == "last" else int(position)
    return index % size if -size <= index < size else None


def restrict_problem(
    head: Callable[..., Any],
    params: Any,
    activations: jax.Array,
    fill_values: jax.Array,
    inputs: Any,
    selector: Any,
    keep: Callable[[jax.Array], jax.Array],
    n: int,
) -> tuple[Callable[..., Any], jax.Array, jax.Array, Any, int] | None:
    """For a one-position selector (``'…@last'``, ``'…@7'``) on sequence outputs: the restricted
    head, the activations and fill at that position, the selector reading the single position
    left, and the position — or ``None`` (another selector, or a head that mixes positions).

    The restricted head is checked against the whole one on the unmasked activations and two
    random masks (``keep(mask)`` → the layer's keep vector, ``n`` masked units) before it is used."""
    from actspec_jax.problems.outputs import At

    if not isinstance(selector, At) or activations.ndim < 3 or activations.shape[1] < 2:
        return None
    index = position_index(selector.position, activations.shape[1])
    if index is None:
        return None
    outputs = jax.eval_shape(head, params, activations, inputs)
    if outputs.ndim < 3 or outputs.shape[1] != activations.shape[1]:
        return None
    restricted = restrict_to_position(head, params, activations, inputs, index)
    if restricted is None:
        return None
    fill = fill_values
    axis = 1 - (activations.ndim - fill.ndim)
    if axis >= 0 and fill.shape[axis] == activations.shape[1]:
        fill = jax.lax.slice_in_dim(fill, index, index + 1, axis=axis)
    sliced = jax.lax.slice_in_dim(activations, index, index + 1, axis=1)
    one = type(selector)(selector.inner, -1)

    def both(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        full = selector(head(params, jnp.where(keep(mask), activations, fill_values), inputs))
        part = one(restricted(params, jnp.where(keep(mask), sliced, fill), inputs))
        return full, part

    masks = [
        jnp.ones((n,)),
        *(jnp.where(jax.random.bernoulli(jax.random.key(i), 0.5, (n,)), 1.0, -1.0) for i in (0, 1)),
    ]
    for mask in masks:
        full, part = (np.asarray(x, np.float64) for x in jax.jit(both)(mask))
        if full.shape != part.shape or not np.allclose(
            part, full, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(full).max())
        ):
            return None
    return restricted, sliced, fill, one, index
