"""Incremental mask evaluation: an affine head prefix turns 2^n forward passes into a subset-sum table.

Most heads start with a projection: a dense layer, the Q/K/V projections of attention, a
convolution. Everything computed from the masked activations ``Ã(x)`` up to the first
non-linear operation is an *affine* function ``L`` of them, and ``Ã(x)`` is itself affine in
the mask: with ``b_i(x) = (1 − x_i)/2`` (1 ⇔ neuron ``i`` ablated),

    Ã(x) = A + Σ_i b_i(x) · Δ_i,     Δ_i = (F − A) ⊙ e_{unit i}     (all inputs at once)
    L(Ã(x)) = L(A) + Σ_{i ablated} δ_i,     δ_i = L'(Δ_i)              (L' = linear part)

So the pre-activations of every mask are a subset sum over the ``n`` vectors ``δ_i`` (the
"frontier" values, e.g. ``float[m, 10]`` logits per mask instead of ``float[m, 256]``
activations times a ``256 × 10`` matrix). For a block of ``2^b`` consecutive mask indices the
low ``b`` bits vary, so the block's frontier values are one fixed table
``T[r] = L(A) + Σ_{i<b, bit i of r} δ_i`` (built by doubling: one vector add per mask) plus
the block's offset ``Σ_{i≥b, bit i of start} δ_i``; only the rest of the head (from the
first non-linearity on) runs per mask. Work that does not depend on the mask (the head's
other inputs, constants) is computed once per chunk.

Detection is automatic: the head is traced to a jaxpr (with ``jax.disable_jit`` so nested
jits are inlined), every value is classified as constant (independent of ``Ã``), affine in
``Ã``, or non-linear, and the frontier is the set of affine values read by non-linear
operations or returned. The incremental path is used when every frontier value went
through a projection (``dot_general`` / convolution) — otherwise nothing is saved and the
solver falls back to direct evaluation. Results equal direct evaluation up to float32
rounding of the sums (a different summation order), not bitwise.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

__all__ = [
    "HeadSplit",
    "block_values",
    "evaluate_incremental",
    "prepare",
    "split_head",
    "supports_incremental",
]


class _Kind(enum.Enum):
    CONST = 0
    AFFINE = 1
    NONLINEAR = 2


# Primitives linear in their (single) array operand; other operands must be mask-independent.
_LINEAR_FIRST_OPERAND = {
    "neg",
    "reshape",
    "transpose",
    "broadcast_in_dim",
    "squeeze",
    "expand_dims",
    "convert_element_type",
    "copy",
    "copy_p",
    "reduce_sum",
    "rev",
    "slice",
    "dynamic_slice",
    "gather",
    "pad",
    "cumsum",
    "real",
}
# Primitives linear in all of their operands jointly (sums, stacking).
_LINEAR_ALL = {"add", "sub", "add_any", "concatenate"}
# Bilinear: affine if exactly one operand depends on the mask.
_BILINEAR = {"mul", "dot_general", "conv_general_dilated"}
_PROJECTIONS = {"dot_general", "conv_general_dilated"}


def _affine_rule(name: str, kinds: Sequence[_Kind]) -> bool:
    """Is an equation with these operand kinds (no NONLINEAR among them) affine in ``Ã``?"""
    affine = [k is _Kind.AFFINE for k in kinds]
    if name in _LINEAR_ALL:
        return True
    if name in _LINEAR_FIRST_OPERAND:
        return affine[0] and not any(affine[1:])
    if name in _BILINEAR:
        return sum(affine[:2]) == 1 and not any(affine[2:])
    if name == "div":
        return affine[0] and not affine[1]
    if name == "select_n":  # predicate must be mask-independent; cases mix freely
        return not affine[0]
    if name == "dynamic_update_slice":
        return not any(affine[2:])
    return False


@dataclasses.dataclass(frozen=True, eq=False)
class HeadSplit:
    """The head's jaxpr cut at its affine frontier (structure only; no array values).

    ``frontier`` are the jaxpr variables the per-mask part reads from the affine part;
    ``const_eqns``/``affine_eqns``/``rest_eqns`` are the needed equations of each kind in
    program order; ``source`` is the activation input; ``outvars`` the head's outputs.
    """

    jaxpr: Any
    consts: tuple[Any, ...]
    source: Any
    frontier: tuple[Any, ...]
    const_eqns: tuple[Any, ...]
    affine_eqns: tuple[Any, ...]
    rest_eqns: tuple[Any, ...]
    out_tree: Any

    @property
    def frontier_size(self) -> int:
        """Frontier floats per mask (all inputs)."""
        total = 0
        for var in self.frontier:
            size = 1
            for dim in var.aval.shape:
                size *= dim
            total += size
        return total


def _read(env: dict, var: Any) -> Any:
    return var.val if isinstance(var, jcore.Literal) else env[var]


def _run(eqns: Sequence[Any], env: dict) -> dict:
    """Evaluate equations in order, reading and writing ``env`` (a small jaxpr interpreter)."""
    for eqn in eqns:
        invals = [_read(env, v) for v in eqn.invars]
        params = eqn.primitive.get_bind_params(eqn.params)
        with eqn.ctx.manager:
            outs = eqn.primitive.bind(*invals, **params)
        if not eqn.primitive.multiple_results:
            outs = [outs]
        for var, val in zip(eqn.outvars, outs):
            env[var] = val
    return env


def _needed(eqns: Sequence[Any], roots: Sequence[Any]) -> set[int]:
    """Indices of the equations the ``roots`` variables depend on (dead-code elimination)."""
    live = {v for v in roots if not isinstance(v, jcore.Literal)}
    keep: set[int] = set()
    for idx in range(len(eqns) - 1, -1, -1):
        eqn = eqns[idx]
        if any(v in live for v in eqn.outvars):
            keep.add(idx)
            live.update(v for v in eqn.invars if not isinstance(v, jcore.Literal))
    return keep


def structure_key(tree: Any) -> Any:
    """Hashable key of a pytree's structure and leaf shapes/dtypes (values ignored), or
    ``None`` when its static parts are unhashable. Works on concrete and traced leaves."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    key = (treedef, tuple((tuple(jnp.shape(a)), str(jnp.result_type(a))) for a in leaves))
    try:
        hash(key)
    except TypeError:
        return None
    return key


class StructureCache:
    """A small bounded cache keyed by :func:`structure_key` (shape-only analyses)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.entries: dict[Any, Any] = {}

    def get(self, tree: Any, compute: Any, *extra: Any) -> Any:
        key = structure_key(tree)
        if key is None:
            return compute()
        key = (key, *extra)
        if key not in self.entries:
            if len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries)))
            self.entries[key] = compute()
        return self.entries[key]


_SPLITS = StructureCache()


def split_head(problem: Any) -> tuple[HeadSplit | None, str]:
    """Trace ``problem.head`` and cut it at its affine frontier.

    Returns ``(split, reason)``: ``split`` is ``None`` when the incremental path would not
    help or is not applicable, and ``reason`` says why (or what was found). The analysis
    depends only on the problem's structure and shapes, so it is cached on them.
    """
    return _SPLITS.get(problem, lambda: _split_head(problem))


def _split_head(problem: Any) -> tuple[HeadSplit | None, str]:
    needed_attrs = ("head", "params", "activations", "fill_values", "inputs", "selector", "aggregate")
    if not all(hasattr(problem, a) for a in needed_attrs):
        return None, f"{type(problem).__name__} is not a model cut at a layer (no head to split)"
    flat_params, params_tree = jax.tree_util.tree_flatten(problem.params)
    flat_inputs, inputs_tree = jax.tree_util.tree_flatten(problem.inputs)
    num_params = len(flat_params)

    def flat_head(*args: Any) -> Any:
        params = jax.tree_util.tree_unflatten(params_tree, args[:num_params])
        acts = args[num_params]
        inputs = jax.tree_util.tree_unflatten(inputs_tree, args[num_params + 1 :])
        return problem.head(params, acts, inputs)

    shapes = [jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in flat_params]
    shapes.append(jax.ShapeDtypeStruct(problem.activations.shape, problem.activations.dtype))
    shapes += [jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in flat_inputs]
    try:
        with jax.disable_jit():
            closed, out_shape = jax.make_jaxpr(flat_head, return_shape=True)(*shapes)
    except Exception as err:  # a head that cannot be traced abstractly
        return None, f"the head could not be traced ({type(err).__name__})"
    jaxpr = closed.jaxpr
    if jaxpr.effects:
        return None, "the head has side effects"
    source = jaxpr.invars[num_params]
    kinds: dict[Any, _Kind] = {v: _Kind.CONST for v in jaxpr.invars}
    kinds.update({v: _Kind.CONST for v in jaxpr.constvars})
    kinds[source] = _Kind.AFFINE
    projected: dict[Any, bool] = {source: False}
    frontier: list[Any] = []

    def kind_of(v: Any) -> _Kind:
        return _Kind.CONST if isinstance(v, jcore.Literal) else kinds[v]

    def mark_frontier(v: Any) -> None:
        if not isinstance(v, jcore.Literal) and kinds[v] is _Kind.AFFINE and v not in frontier:
            frontier.append(v)

    eqns = jaxpr.eqns
    live = _needed(eqns, jaxpr.outvars)
    eqn_kind: dict[int, _Kind] = {}
    for idx, eqn in enumerate(eqns):
        if idx not in live:
            continue
        in_kinds = [kind_of(v) for v in eqn.invars]
        floating = all(jnp.issubdtype(v.aval.dtype, jnp.floating) for v in eqn.outvars)
        if all(k is _Kind.CONST for k in in_kinds):
            kind = _Kind.CONST
        elif (
            _Kind.NONLINEAR not in in_kinds
            and floating
            and not eqn.effects
            and _affine_rule(eqn.primitive.name, in_kinds)
        ):
            kind = _Kind.AFFINE
            proj = eqn.primitive.name in _PROJECTIONS or any(
                projected.get(v, False) for v in eqn.invars if not isinstance(v, jcore.Literal)
            )
            for v in eqn.outvars:
                projected[v] = proj
        else:
            kind = _Kind.NONLINEAR
            for v in eqn.invars:
                mark_frontier(v)
        eqn_kind[idx] = kind
        for v in eqn.outvars:
            kinds[v] = kind
    for v in jaxpr.outvars:
        mark_frontier(v)
    if not frontier:
        return None, "the head's output does not depend on the masked activations"
    if not all(projected.get(v, False) for v in frontier):
        return None, (
            "no projection (dense / attention / convolution) between the activations and the "
            "head's first non-linear operation, so a subset-sum table saves nothing"
        )

    # Live affine equations all lead to the frontier; live non-linear ones are the per-mask rest.
    def select(kind: _Kind) -> tuple[Any, ...]:
        return tuple(eqns[i] for i in sorted(eqn_kind) if eqn_kind[i] is kind)

    const_eqns, affine_eqns, rest_eqns = select(_Kind.CONST), select(_Kind.AFFINE), select(_Kind.NONLINEAR)
    split = HeadSplit(
        jaxpr=jaxpr,
        consts=tuple(closed.consts),
        source=source,
        frontier=tuple(frontier),
        const_eqns=const_eqns,
        affine_eqns=affine_eqns,
        rest_eqns=rest_eqns,
        out_tree=jax.tree_util.tree_structure(out_shape),
    )
    return (
        split,
        f"affine prefix with {len(affine_eqns)} operations; frontier {split.frontier_size} floats/mask",
    )


def supports_incremental(problem: Any) -> tuple[bool, str]:
    """Whether the exact solver can use the subset-sum table for ``problem``, and why (not)."""
    split, reason = split_head(problem)
    return split is not None, reason


def _const_env(split: HeadSplit, problem: Any) -> dict:
    args = [
        *jax.tree_util.tree_leaves(problem.params),
        None,
        *jax.tree_util.tree_leaves(problem.inputs),
    ]
    env = {v: a for v, a in zip(split.jaxpr.invars, args) if a is not None}
    env.update(zip(split.jaxpr.constvars, split.consts))
    return _run(split.const_eqns, env)


def _affine(split: HeadSplit, env: dict, acts: jax.Array) -> tuple[jax.Array, ...]:
    local = dict(env)
    local[split.source] = acts
    _run(split.affine_eqns, local)
    return tuple(local[v] for v in split.frontier)


def _rest(split: HeadSplit, env: dict, frontier: Sequence[jax.Array]) -> Any:
    local = dict(env)
    local.update(zip(split.frontier, frontier))
    _run(split.rest_eqns, local)
    outs = [_read(local, v) for v in split.jaxpr.outvars]
    return jax.tree_util.tree_unflatten(split.out_tree, outs)


def _finish(problem: Any, outputs: Any) -> jax.Array:
    """Selector and aggregate of :class:`~actspec_jax.MaskedProblem` for one mask."""
    selected = problem.selector(outputs)
    if problem.aggregate == "mean":
        return jnp.mean(selected, axis=0)
    return selected


@dataclasses.dataclass
class Plan:
    """Per-problem arrays of the incremental path: frontier at the all-kept mask ``base``
    (tuple of ``float[...]``) and the per-neuron increments ``deltas`` (``float[n, ...]``)."""

    base: tuple[jax.Array, ...]
    deltas: tuple[jax.Array, ...]
    env: dict


def prepare(problem: Any, split: HeadSplit) -> Plan:
    """Mask-independent work: constants of the head, ``L(A)`` and ``δ_i = L'(Δ_i)``.

    Cost: one forward pass of the affine prefix plus ``n`` linearised passes (vmapped).
    """
    env = _const_env(split, problem)
    acts = problem.activations
    fill = jnp.broadcast_to(problem.fill_values, acts.shape).astype(acts.dtype)
    diff = fill - acts
    num = acts.shape[-1]
    units = jnp.arange(num) if problem.units is None else problem.units
    onehot = jax.nn.one_hot(units, num, dtype=acts.dtype)  # [n, N]
    tangents = diff[None] * onehot.reshape((onehot.shape[0],) + (1,) * (acts.ndim - 1) + (num,))
    base, linear = jax.linearize(lambda a: _affine(split, env, a), acts)
    deltas = jax.vmap(linear)(tangents)
    return Plan(base=tuple(base), deltas=tuple(deltas), env=env)


def _ablated_bits(masks: jax.Array) -> jax.Array:
    return (masks < 0).astype(jnp.float32)


def evaluate_incremental(problem: Any, masks: jax.Array, split: HeadSplit | None = None) -> jax.Array:
    """``problem.evaluate_unchecked(masks)`` through the affine prefix: frontier values
    ``L(A) + b(x) @ δ`` (one ``[k, n] × [n, frontier]`` product) then the rest of the head."""
    if split is None:
        split, reason = split_head(problem)
        if split is None:
            raise ValueError(f"no incremental evaluation for this problem: {reason}.")
    plan = prepare(problem, split)
    bits = _ablated_bits(masks)
    frontier = [
        base[None] + jnp.tensordot(bits.astype(d.dtype), d, axes=1, precision=jax.lax.Precision.HIGHEST)
        for base, d in zip(plan.base, plan.deltas)
    ]
    return jax.vmap(lambda *f: _finish(problem, _rest(split, plan.env, f)))(*frontier)


def low_table(plan: Plan, bits: int) -> tuple[jax.Array, ...]:
    """``T[r] = L(A) + Σ_{i<bits, bit i of r} δ_i`` for ``r < 2^bits`` (built by doubling)."""
    tables = []
    for base, d in zip(plan.base, plan.deltas):
        t = base[None]
        for i in range(bits):
            t = jnp.concatenate([t, t + d[i][None]], axis=0)
        tables.append(t)
    return tuple(tables)


def block_values(
    problem: Any,
    split: HeadSplit,
    plan: Plan,
    table: tuple[jax.Array, ...],
    start: jax.Array,
    bits: int,
) -> jax.Array:
    """Values of the ``2^bits`` masks ``start … start + 2^bits − 1`` (``start`` a multiple of
    ``2^bits``): frontier ``table + offset(start)``, then the rest of the head per mask."""
    n = problem.n
    idx = jnp.asarray(start, jnp.int32)
    high = ((idx >> jnp.arange(bits, n, dtype=jnp.int32)) & 1).astype(jnp.float32)
    frontier = []
    for t, d in zip(table, plan.deltas):
        if bits < n:
            offset = jnp.tensordot(
                high.astype(d.dtype), d[bits:], axes=1, precision=jax.lax.Precision.HIGHEST
            )
            frontier.append(t + offset[None])
        else:
            frontier.append(t)
    return jax.vmap(lambda *f: _finish(problem, _rest(split, plan.env, f)))(*frontier)
