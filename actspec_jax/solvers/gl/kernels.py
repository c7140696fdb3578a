"""Jitted kernels of the Goldreich–Levin search (private).

Every kernel has fixed shapes for a given problem and configuration (the live set is
padded to the beam, the search order to a whole number of blocks, sample sets to whole
chunks with a validity weight), so each compiles once and every level reuses it.

Only the ``evaluate_*`` kernels and :func:`influence` trace the problem; the heavier
statistics kernels see only arrays, so they compile once per configuration and are shared
by every problem of the same size (e.g. every class of one layer). Randomness is drawn
up front per round (``uint32`` words of 32 signs, or data-row numbers), so it does not
depend on how the work is chunked.

What is drawn, how draws become ``±1`` patterns and how hybrids are evaluated is the
``estimator``'s (:mod:`actspec_jax.solvers.gl.estimators`), a static argument of every kernel
that needs it; ``patterns`` is the estimator's per-problem data (``None`` for uniform masks).
The former spelling ``mode="mask" | "paper"`` (with ``rows=`` for the paper's draws) is still
accepted and converted to the estimator object on entry (:func:`_estimator_kw`).

Symbols: ``n`` neurons; ``B`` beam slots; ``D`` maximum ``|S|``; ``b`` coordinates split per
level, ``T = 2^b`` children per bucket; ``m`` base draws ``z`` per round, ``r`` prefix draws
``y`` per base draw; ``W = ⌈n/32⌉``. Padding neuron index: ``n`` (its pattern column is the
constant +1, so it never changes a character).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from actspec_jax.solvers.common.sharding import sharded_map
from actspec_jax.solvers.gl.estimators import (
    Estimator,
    as_estimator,
    random_signs,
    random_words,
    signs_from_words,
)
from actspec_jax.solvers.gl.redundancy import predictability

__all__ = [
    "block_characters",
    "child_stats",
    "draw",
    "evaluate_design",
    "evaluate_round",
    "influence",
    "leaf_meat",
    "leaf_moments",
    "postcheck_trim",
    "random_signs",
    "random_words",
    "select_children",
    "signs_from_words",
    "subset_characters",
]


# --------------------------------------------------------------------------- helpers


def _estimator_kw(kernel: Callable) -> Callable:
    """Accept ``mode="mask" | "paper"`` (and ``rows=``), the kernels' former spelling, for
    ``estimator=``: converted once, here, by :func:`~actspec_jax.solvers.gl.estimators.as_estimator`."""

    @functools.wraps(kernel)
    def call(*args: Any, mode: str | None = None, rows: int | None = None, **kwargs: Any) -> Any:
        if mode is not None:
            kwargs["estimator"] = as_estimator(mode, rows=rows)
        return kernel(*args, **kwargs)

    return call


def extend(patterns: jax.Array) -> jax.Array:
    """Append the padding column (constant +1): ``[..., n]`` → ``[..., n + 1]``."""
    return jnp.concatenate([patterns, jnp.ones((*patterns.shape[:-1], 1), patterns.dtype)], axis=-1)


def subset_characters(patterns_ext: jax.Array, members: jax.Array) -> jax.Array:
    """``χ_S`` for every bucket: ``[..., n + 1]`` × ``int32[B, D]`` → ``[..., B]``."""
    return jnp.prod(jnp.take(patterns_ext, members, axis=-1), axis=-1)


def block_characters(patterns_ext: jax.Array, block: jax.Array) -> jax.Array:
    """``χ_T`` for every ``T ⊆ block``: ``[..., n + 1]`` × ``int32[b]`` → ``[..., 2^b]``.

    Index ``t`` has bit ``j`` set ⇔ ``block[j] ∈ T``.
    """
    picked = jnp.take(patterns_ext, block, axis=-1)
    chi = jnp.ones((*picked.shape[:-1], 1), picked.dtype)
    for j in range(block.shape[0]):
        chi = jnp.concatenate([chi, chi * picked[..., j : j + 1]], axis=-1)
    return chi


def _chunked(x: jax.Array, c: int) -> jax.Array:
    """Pad the leading axis to a multiple of ``c`` (zeros) and split it: ``[k, ...]`` → ``[k/c, c, ...]``."""
    chunks = -(-x.shape[0] // c)
    x = jnp.pad(x, [(0, chunks * c - x.shape[0])] + [(0, 0)] * (x.ndim - 1))
    return x.reshape(chunks, c, *x.shape[1:])


# --------------------------------------------------------------------------- draws


@_estimator_kw
@functools.partial(jax.jit, static_argnames=("estimator", "shape", "n"))
def draw(key: jax.Array, *, estimator: Estimator, shape: tuple[int, ...], n: int) -> jax.Array:
    """All random draws of one round (:meth:`Estimator.draw`): uniform masks ``uint32[*shape, W]``
    words, paper hybrids ``int32[*shape]`` data-row numbers."""
    return estimator.draw(key, shape, n)


# --------------------------------------------------------------------------- levels


@_estimator_kw
@functools.partial(jax.jit, static_argnames=("estimator", "c", "b", "mesh"))
def evaluate_round(
    problem: Any,
    draws: jax.Array,
    level: jax.Array,
    rank: jax.Array,
    *,
    estimator: Estimator,
    c: int,
    b: int,
    mesh: Any = None,
) -> jax.Array:
    """``f`` on the hybrids of one round: ``float32[m, r]`` for draws ``[m, r + 1, ...]``.

    Hybrid ``(j, a)`` takes the neurons in the prefix (search rank ``< (level + 1)·b``) from
    prefix draw ``a`` and all others from base draw ``j`` (column 0), as
    :meth:`Estimator.hybrid_values` builds them. Evaluated in chunks of ``c`` base draws
    (``c·r`` masks or hybrid rows per call of the problem); with a ``mesh`` the chunks are split
    over its devices (:func:`actspec_jax.solvers.common.sharding.sharded_map`), giving the same values.
    """
    m, r = draws.shape[0], draws.shape[1] - 1
    prefix = rank < (level + 1) * b

    def one(shared: tuple, chunk: jax.Array) -> jax.Array:
        problem, prefix = shared
        return estimator.hybrid_values(problem, chunk, prefix)

    values = sharded_map(one, (problem, prefix), _chunked(draws, c), mesh)
    return values.reshape(-1, r)[:m]


@_estimator_kw
@functools.partial(jax.jit, static_argnames=("estimator", "c", "b", "n"))
def child_stats(
    values: jax.Array,
    draws: jax.Array,
    patterns: Any,
    members: jax.Array,
    level: jax.Array,
    order: jax.Array,
    center: jax.Array,
    *,
    estimator: Estimator,
    c: int,
    b: int,
    n: int,
) -> dict[str, jax.Array]:
    """Sufficient statistics of every child's weight estimate at one level.

    The children of bucket ``(k, S)`` are ``(k + b, S ∪ T)``, ``T ⊆`` block of the next ``b``
    searched neurons. For base draw ``j`` with prefix draws ``a = 1…r`` and centred values
    ``F_ja = f(y_ja, z_j) − center``:

        G_j(S, T) = Σ_a F_ja χ_S(y_ja) χ_T(y_ja),   Q_j = Σ_a F_ja²,
        u_j(S, T) = (G_j² − Q_j) / (r (r − 1)),

    the U-statistic over ordered pairs ``a ≠ b`` of ``F_ja χ(y_ja) F_jb χ(y_jb)``, whose mean is
    ``E_z[(E_y f χ_{S∪T})²] = Σ_U f̂(S ∪ T ∪ U)²`` over ``U`` in the suffix. One evaluation batch
    serves all ``B · 2^b`` children; their estimates are one batched matrix product
    ``[B, r] @ [r, 2^b]`` per base draw.

    Returns sums over the ``m`` base draws: ``su``, ``su2`` (``float32[B, 2^b]``), ``sf``, ``sf2``,
    ``fmax`` (of ``|F|``) and ``bad`` (number of non-finite values).
    """
    m, r = values.shape
    block = jax.lax.dynamic_slice(order, (level * b,), (b,))
    weight = _chunked(jnp.ones((m,), jnp.float32), c)
    finite = jnp.isfinite(values)
    centred = jnp.where(finite, values - center, 0.0)

    def body(carry: tuple, chunk: tuple) -> tuple[tuple, None]:
        su, su2, sf, sf2, fmax = carry
        vals, chunk_draws, w = chunk
        vals = vals * w[:, None]
        ext = extend(estimator.patterns(chunk_draws[:, 1:], patterns, n))
        left = vals[:, :, None] * subset_characters(ext, members)  # [c, r, B]
        g = jnp.einsum("caB,caT->cBT", left, block_characters(ext, block))
        q = jnp.sum(vals * vals, axis=1)
        u = (g * g - q[:, None, None]) / (r * (r - 1))
        carry = (
            su + jnp.sum(u, axis=0),
            su2 + jnp.sum(u * u, axis=0),
            sf + jnp.sum(vals),
            sf2 + jnp.sum(vals * vals),
            jnp.maximum(fmax, jnp.max(jnp.abs(vals))),
        )
        return carry, None

    zeros = jnp.zeros((members.shape[0], 1 << b), jnp.float32)
    init = (zeros, zeros, jnp.float32(0), jnp.float32(0), jnp.float32(0))
    xs = (_chunked(centred, c), _chunked(draws, c), weight)
    (su, su2, sf, sf2, fmax), _ = jax.lax.scan(body, init, xs)
    bad = jnp.sum(~finite).astype(jnp.float32)
    return {"su": su, "su2": su2, "sf": sf, "sf2": sf2, "fmax": fmax, "bad": bad}


@functools.partial(jax.jit, static_argnames=("pool", "b", "r", "n"))
def select_children(
    stats: dict[str, jax.Array],
    m: jax.Array,
    members: jax.Array,
    degree: jax.Array,
    valid: jax.Array,
    level: jax.Array,
    order: jax.Array,
    threshold: jax.Array,
    failure: jax.Array,
    *,
    pool: int,
    b: int,
    r: int,
    n: int,
) -> dict[str, jax.Array]:
    """Keep the ``pool`` heaviest valid children with estimated weight ≥ ``threshold``.

    A child is valid if its parent is live, every neuron of ``T`` is a real neuron (not
    padding of the last block) and ``|S ∪ T| ≤ D``. Also returns, for the adaptive rule,
    the number of valid children whose empirical-Bernstein interval (Audibert, Munos &
    Szepesvári 2009; union bound over the level's valid children with total failure
    probability ``failure``) still contains the threshold:

        |Ŵ − W| ≤ sqrt(2 V̂ ln(3/δ) / m) + 3 R ln(3/δ) / m,   R = (r + 1) F_max² / (r − 1),

    with ``V̂`` the empirical variance of ``u_j`` and ``R`` the range of ``u_j`` when
    ``|F| ≤ F_max`` (the observed maximum, so the bound is exact only if ``f`` never exceeds it).
    """
    depth = members.shape[1]
    children = 1 << b
    m = jnp.asarray(m, jnp.float32)
    mean = stats["su"] / m
    var = jnp.maximum(stats["su2"] / m - mean * mean, 0.0) * m / jnp.maximum(m - 1.0, 1.0)
    block = jax.lax.dynamic_slice(order, (level * b,), (b,))
    t_bits = (jnp.arange(children)[:, None] >> jnp.arange(b)[None, :]) & 1  # [T, b]
    t_size = jnp.sum(t_bits, axis=1)
    block_ok = jnp.all((t_bits == 0) | (block[None, :] != n), axis=1)
    child_valid = valid[:, None] & block_ok[None, :]
    degree_ok = degree[:, None] + t_size[None, :] <= depth
    ok = child_valid & degree_ok
    above = ok & (mean >= threshold)
    top, idx = jax.lax.top_k(jnp.where(above, mean, -jnp.inf).ravel(), pool)
    parent, t = idx // children, idx % children
    new_valid = jnp.isfinite(top)
    new_members = members[parent]
    new_degree = degree[parent]
    slots = jnp.arange(depth)[None, :]
    for j in range(b):
        bit = (((t >> j) & 1) == 1) & new_valid
        new_members = jnp.where((slots == new_degree[:, None]) & bit[:, None], block[j], new_members)
        new_degree = new_degree + bit.astype(new_degree.dtype)
    new_members = jnp.where(new_valid[:, None], new_members, n)
    new_degree = jnp.where(new_valid, new_degree, 0)
    added = jnp.where((t_bits[t] == 1) & new_valid[:, None], block[None, :], n)

    count = jnp.maximum(jnp.sum(ok), 1).astype(jnp.float32)
    log_term = jnp.log(3.0 * count / failure)
    value_range = (r + 1.0) * stats["fmax"] ** 2 / (r - 1.0)
    half = jnp.sqrt(2.0 * var * log_term / m) + 3.0 * value_range * log_term / m
    undecided = ok & (mean - half < threshold) & (mean + half >= threshold)
    return {
        "members": new_members,
        "degree": new_degree,
        "valid": new_valid,
        "weights": jnp.where(new_valid, top, 0.0),
        "stderr": jnp.where(new_valid, jnp.sqrt(var / m).ravel()[idx], 0.0),
        "added": added,
        "children": jnp.sum(ok),
        "above": jnp.sum(above),
        "degree_dropped": jnp.sum(child_valid & ~degree_ok & (mean >= threshold)),
        "undecided": jnp.sum(undecided),
        "max_weight": jnp.max(jnp.where(ok, mean, -jnp.inf)),
    }


@functools.partial(jax.jit, static_argnames=("beam", "checked", "n"))
def postcheck_trim(
    bits: jax.Array, selected: dict[str, jax.Array], delta: jax.Array, *, beam: int, checked: int, n: int
) -> dict[str, jax.Array]:
    """Apply the post-check to the candidate pool, then keep the ``beam`` heaviest accepted.

    Only candidates that add a neuron (``T ≠ ∅``; the others equal their already checked
    parent) are tested, the ``checked`` heaviest of them; further new candidates are dropped
    (counted in ``unchecked``). With ``b = 1`` at most ``beam`` candidates are new, so
    ``checked = beam`` tests them all.
    """
    is_new = selected["valid"] & jnp.any(selected["added"] != n, axis=1)
    _, pick = jax.lax.top_k(is_new.astype(jnp.float32), checked)  # ties: lower index (heavier) first
    stat_picked = predictability(bits, selected["members"][pick], selected["added"][pick])
    stat_picked = jnp.where(is_new[pick][:, None], stat_picked, 0.0)
    stat = jnp.zeros(selected["added"].shape, jnp.float32).at[pick].set(stat_picked)
    was_checked = jnp.zeros(is_new.shape, bool).at[pick].set(is_new[pick])
    rejected = is_new & was_checked & jnp.any(stat > delta, axis=1)
    unchecked = is_new & ~was_checked
    keep = selected["valid"] & ~rejected & ~unchecked
    top, idx = jax.lax.top_k(jnp.where(keep, selected["weights"], -jnp.inf), beam)
    out = {k: selected[k][idx] for k in ("members", "degree", "weights", "stderr")}
    out["valid"] = jnp.isfinite(top)
    out["rejected"] = rejected
    out["unchecked"] = jnp.sum(unchecked)
    out["statistic"] = jnp.max(stat, axis=1)
    return out


# --------------------------------------------------------------------------- norm pass and leaves


@_estimator_kw
@functools.partial(jax.jit, static_argnames=("estimator", "c", "mesh"))
def evaluate_design(
    problem: Any, draws: jax.Array, *, estimator: Estimator, c: int, mesh: Any = None
) -> jax.Array:
    """``f`` on a design (:meth:`Estimator.design_values`): fresh uniform masks (draws
    ``uint32[M, W]``) or the unpatched data rows (paper, draws ``int32[M]`` row numbers):
    ``float32[M]``. Chunks of ``c`` draws, split over the devices of ``mesh`` when given."""
    total = draws.shape[0]

    def one(problem: Any, chunk: jax.Array) -> jax.Array:
        return estimator.design_values(problem, chunk)

    return sharded_map(one, problem, _chunked(draws, c), mesh).reshape(-1)[:total]


def _design_xs(values: jax.Array, draws: jax.Array, c: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Chunked (values, draws, real-row indicator); padded rows get indicator 0."""
    return _chunked(values, c), _chunked(draws, c), _chunked(jnp.ones_like(values), c)


def _design_chars(
    chunk_draws: jax.Array,
    real: jax.Array,
    patterns: Any,
    members: jax.Array,
    n: int,
    estimator: Estimator,
) -> jax.Array:
    return subset_characters(extend(estimator.patterns(chunk_draws, patterns, n)), members) * real[:, None]


@_estimator_kw
@functools.partial(jax.jit, static_argnames=("estimator", "c", "n"))
def leaf_moments(
    values: jax.Array,
    draws: jax.Array,
    patterns: Any,
    members: jax.Array,
    *,
    estimator: Estimator,
    c: int,
    n: int,
) -> tuple[jax.Array, jax.Array]:
    """Normal equations of ``values ≈ Φ coef`` with ``Φ[i, k] = χ_{S_k}(draw i)`` over the design:
    ``ΦᵀΦ float32[K, K]`` (exact: integer sums of ±1) and ``Φᵀv float32[K]``."""

    def step(carry: tuple, chunk: tuple) -> tuple[tuple, None]:
        gram, xty = carry
        vals, chunk_draws, real = chunk
        chars = _design_chars(chunk_draws, real, patterns, members, n, estimator)
        return (gram + chars.T @ chars, xty + chars.T @ vals), None

    k = members.shape[0]
    init = (jnp.zeros((k, k), jnp.float32), jnp.zeros((k,), jnp.float32))
    (gram, xty), _ = jax.lax.scan(step, init, _design_xs(values, draws, c))
    return gram, xty


@_estimator_kw
@functools.partial(jax.jit, static_argnames=("estimator", "c", "n"))
def leaf_meat(
    values: jax.Array,
    draws: jax.Array,
    patterns: Any,
    members: jax.Array,
    coef: jax.Array,
    *,
    estimator: Estimator,
    c: int,
    n: int,
) -> jax.Array:
    """``Φᵀ diag(e²) Φ`` with residuals ``e = values − Φ coef`` (the sandwich's meat): ``float32[K, K]``."""

    def step(meat: jax.Array, chunk: tuple) -> tuple[jax.Array, None]:
        vals, chunk_draws, real = chunk
        chars = _design_chars(chunk_draws, real, patterns, members, n, estimator)
        scaled = chars * (vals - chars @ coef)[:, None]
        return meat + scaled.T @ scaled, None

    k = members.shape[0]
    meat, _ = jax.lax.scan(step, jnp.zeros((k, k), jnp.float32), _design_xs(values, draws, c))
    return meat


# --------------------------------------------------------------------------- influence


@functools.partial(jax.jit, static_argnames=("samples", "c", "mesh"))
def influence(
    problem: Any, key: jax.Array, *, samples: int, c: int, mesh: Any = None
) -> dict[str, jax.Array]:
    """Influences ``Inf_i = Σ_{S∋i} f̂(S)² = E_x[((f(x) − f(x^{⊕i})) / 2)²]`` for every neuron.

    ``samples`` uniform points ``x``, each with all ``n`` single-neuron flips, evaluated in
    chunks of ``c`` masks (split over the devices of ``mesh`` when given): ``samples · (n + 1)``
    evaluations. Returns the means of ``D²`` and ``D⁴`` (for a standard error) and the number
    of non-finite values.
    """
    n = problem.n
    x = random_signs(key, (samples,), n)
    f0 = problem.evaluate_unchecked(x).astype(jnp.float32)
    per = -(-n // c)
    steps = jnp.arange(samples * per)

    def flipped_values(shared: tuple, idx: jax.Array) -> jax.Array:
        problem, x = shared
        s, chunk = idx // per, idx % per
        coords = chunk * c + jnp.arange(c)
        flip = jnp.arange(n)[None, :] == coords[:, None]
        masks = jnp.where(flip, -x[s][None, :], x[s][None, :])
        return problem.evaluate_unchecked(masks).astype(jnp.float32)

    all_values = sharded_map(flipped_values, (problem, x), steps, mesh)  # [samples·per, c]

    def body(carry: tuple, step: tuple) -> tuple[tuple, None]:
        inf, inf2, bad = carry
        idx, values = step
        s, chunk = idx // per, idx % per
        coords = chunk * c + jnp.arange(c)
        inside = coords < n
        d2 = jnp.where(inside, ((f0[s] - values) / 2.0) ** 2, 0.0)
        bad = bad + jnp.sum(inside & ~jnp.isfinite(values))
        inf = inf.at[coords].add(d2, mode="drop")
        inf2 = inf2.at[coords].add(d2 * d2, mode="drop")
        return (inf, inf2, bad), None

    zeros = jnp.zeros((n,), jnp.float32)
    init = (zeros, zeros, jnp.sum(~jnp.isfinite(f0)))
    (inf, inf2, bad), _ = jax.lax.scan(body, init, (steps, all_values))
    return {"mean": inf / samples, "mean_sq": inf2 / samples, "bad": bad}
