"""Jitted kernels of the batched (many-output) Goldreich–Levin search (private).

The problem is evaluated once per hybrid mask for all ``K`` outputs (``float32[rows, K]``);
the statistics are the single-output kernels of :mod:`actspec_jax.solvers.gl.kernels`
mapped over the output axis with :func:`jax.vmap`. The draws (and so the unpacked ``±1``
patterns and the block characters) are not batched, so ``vmap`` leaves them shared: only the
per-output parts (each output's live buckets ``χ_S``, its centring constant, its threshold)
gain the ``K`` axis. Output ``k`` of every kernel is the single-output kernel applied to
column ``k`` of the values (same draws, same arithmetic), up to float rounding of the
batched products.

Symbols as in :mod:`~actspec_jax.solvers.gl.kernels`, plus ``K`` flattened outputs.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from actspec_jax.solvers.common.sharding import sharded_map
from actspec_jax.solvers.gl import kernels as K

__all__ = [
    "child_stats_multi",
    "evaluate_design_multi",
    "evaluate_round_multi",
    "influence_multi",
    "select_children_multi",
]


@functools.partial(jax.jit, static_argnames=("c", "b", "outputs", "mesh"))
def evaluate_round_multi(
    problem: Any,
    draws: jax.Array,
    level: jax.Array,
    rank: jax.Array,
    *,
    c: int,
    b: int,
    outputs: int,
    mesh: Any = None,
) -> jax.Array:
    """Every output on the hybrids of one round: ``float32[m, r, K]`` for draws ``uint32[m, r + 1, W]``.

    The hybrids are those of :func:`~actspec_jax.solvers.gl.kernels.evaluate_round` (prefix
    neurons from prefix draw ``a``, the rest from base draw ``j``); each is evaluated once and
    its ``K`` outputs kept. Chunks of ``c`` base draws (``c·r`` masks per call).
    """
    m, r = draws.shape[0], draws.shape[1] - 1
    n = rank.shape[0]
    prefix = rank < (level + 1) * b

    def one(shared: tuple, chunk: jax.Array) -> jax.Array:
        problem, prefix = shared
        signs = K.signs_from_words(chunk, n)
        masks = jnp.where(prefix, signs[:, 1:], signs[:, :1])
        out = problem.evaluate_unchecked(masks.reshape(c * r, n))
        return out.reshape(c, r, outputs).astype(jnp.float32)

    values = sharded_map(one, (problem, prefix), K._chunked(draws, c), mesh)
    return values.reshape(-1, r, outputs)[:m]


@functools.partial(jax.jit, static_argnames=("c", "outputs", "mesh"))
def evaluate_design_multi(
    problem: Any, draws: jax.Array, *, c: int, outputs: int, mesh: Any = None
) -> jax.Array:
    """Every output on fresh uniform masks (draws ``uint32[M, W]``): ``float32[M, K]``."""
    total = draws.shape[0]

    def one(problem: Any, chunk: jax.Array) -> jax.Array:
        out = problem.evaluate_unchecked(K.signs_from_words(chunk, problem.n))
        return out.reshape(chunk.shape[0], outputs).astype(jnp.float32)

    return sharded_map(one, problem, K._chunked(draws, c), mesh).reshape(-1, outputs)[:total]


def membership(members: jax.Array, n: int) -> jax.Array:
    """0/1 memberships ``float32[..., n]`` of buckets ``int32[..., D]`` (padding ``n`` dropped)."""
    return jnp.sum(jax.nn.one_hot(members, n + 1, dtype=jnp.float32), axis=-2)[..., :n]


@functools.partial(jax.jit, static_argnames=("c", "b", "n"))
def child_stats_multi(
    values: jax.Array,
    draws: jax.Array,
    members: jax.Array,
    level: jax.Array,
    order: jax.Array,
    center: jax.Array,
    *,
    c: int,
    b: int,
    n: int,
) -> dict[str, jax.Array]:
    """:func:`~actspec_jax.solvers.gl.kernels.child_stats` (mask mode) for every output.

    ``values float32[m, r, K]``, ``members int32[K, B, D]`` (each output's live buckets),
    ``center float32[K]``; the draws and the level's block are shared. The same statistic
    per output, ``u_j(S, T) = (G_j² − Q_j) / (r (r − 1))`` with
    ``G_j = Σ_a F_ja χ_S(y_ja) χ_T(y_ja)``; here every output's ``χ_S`` comes from ONE matrix
    product of the draws' ablation bits with all ``K·B`` buckets' memberships (the parity
    ``(−1)^{#ablated ∩ S}``, exact in float32), instead of a ``D``-wide gather per output.
    Returns the same sums with a leading ``K`` axis (``su``, ``su2``: ``float32[K, B, 2^b]``;
    ``sf``, ``sf2``, ``fmax``, ``bad``: ``float32[K]``).
    """
    m, r, outputs = values.shape
    beam = members.shape[1]
    block = jax.lax.dynamic_slice(order, (level * b,), (b,))
    member01 = membership(members, n).reshape(outputs * beam, n)
    weight = K._chunked(jnp.ones((m,), jnp.float32), c)
    finite = jnp.isfinite(values)
    centred = jnp.where(finite, values - center, 0.0)

    def body(carry: tuple, chunk: tuple) -> tuple[tuple, None]:
        su, su2, sf, sf2, fmax = carry
        vals, chunk_draws, w = chunk  # [c, r, K], [c, r + 1, W], [c]
        vals = vals * w[:, None, None]
        signs = K.signs_from_words(chunk_draws[:, 1:], n)  # [c, r, n]
        ablated = (signs < 0).astype(jnp.float32).reshape(c * r, n)
        counts = jnp.matmul(ablated, member01.T, preferred_element_type=jnp.float32)
        chi = (1.0 - 2.0 * jnp.mod(jnp.round(counts), 2.0)).reshape(c, r, outputs, beam)
        left = (vals[..., None] * chi).reshape(c, r, outputs * beam)
        # Base draws last, so the sums over them run along contiguous memory.
        g = jnp.einsum("caX,caT->XTc", left, K.block_characters(K.extend(signs), block))
        g = g.reshape(outputs, beam, 1 << b, c)
        q = jnp.sum(vals * vals, axis=1).T  # [K, c]
        u = (g * g - q[:, None, None, :]) / (r * (r - 1))
        carry = (
            su + jnp.sum(u, axis=-1),
            su2 + jnp.sum(u * u, axis=-1),
            sf + jnp.sum(vals, axis=(0, 1)),
            sf2 + jnp.sum(vals * vals, axis=(0, 1)),
            jnp.maximum(fmax, jnp.max(jnp.abs(vals), axis=(0, 1))),
        )
        return carry, None

    zeros = jnp.zeros((outputs, beam, 1 << b), jnp.float32)
    per_output = jnp.zeros((outputs,), jnp.float32)
    init = (zeros, zeros, per_output, per_output, per_output)
    xs = (K._chunked(centred, c), K._chunked(draws, c), weight)
    (su, su2, sf, sf2, fmax), _ = jax.lax.scan(body, init, xs)
    bad = jnp.sum(~finite, axis=(0, 1)).astype(jnp.float32)
    return {"su": su, "su2": su2, "sf": sf, "sf2": sf2, "fmax": fmax, "bad": bad}


@functools.partial(jax.jit, static_argnames=("pool", "b", "r", "n"))
def select_children_multi(
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
    """:func:`~actspec_jax.solvers.gl.kernels.select_children` for every output: each keeps
    its own ``pool`` heaviest children above its own ``threshold float32[K]``, splitting on its
    own ``order int32[K, L]`` (the shared order with the neurons it does not need replaced by
    padding ``n``: children adding them are invalid); every result gains a leading ``K`` axis."""

    def one(s: dict, mem: jax.Array, deg: jax.Array, val: jax.Array, own: jax.Array, thr: jax.Array):
        return K.select_children(s, m, mem, deg, val, level, own, thr, failure, pool=pool, b=b, r=r, n=n)

    picked = {k: stats[k] for k in ("su", "su2", "fmax")}
    return jax.vmap(one)(picked, members, degree, valid, order, threshold)


@functools.partial(jax.jit, static_argnames=("samples", "c", "outputs", "mesh"))
def influence_multi(
    problem: Any, key: jax.Array, *, samples: int, c: int, outputs: int, mesh: Any = None
) -> dict[str, jax.Array]:
    """Influences of every neuron on every output, from one set of flips.

    The points and flips of :func:`~actspec_jax.solvers.gl.kernels.influence` (same key, same
    draws), each evaluated once for all outputs: ``samples · (n + 1)`` evaluations. Returns
    ``mean``/``mean_sq`` of ``D² = ((f(x) − f(x^{⊕i})) / 2)²`` as ``float32[K, n]`` and the
    number of non-finite values.
    """
    n = problem.n
    x = K.random_signs(key, (samples,), n)
    f0 = problem.evaluate_unchecked(x).reshape(samples, outputs).astype(jnp.float32)
    per = -(-n // c)
    steps = jnp.arange(samples * per)

    def flipped_values(shared: tuple, idx: jax.Array) -> jax.Array:
        problem, x = shared
        s, chunk = idx // per, idx % per
        coords = chunk * c + jnp.arange(c)
        flip = jnp.arange(n)[None, :] == coords[:, None]
        masks = jnp.where(flip, -x[s][None, :], x[s][None, :])
        return problem.evaluate_unchecked(masks).reshape(c, outputs).astype(jnp.float32)

    all_values = sharded_map(flipped_values, (problem, x), steps, mesh)  # [samples·per, c, K]

    def body(carry: tuple, step: tuple) -> tuple[tuple, None]:
        inf, inf2, bad = carry
        idx, values = step
        s, chunk = idx // per, idx % per
        coords = chunk * c + jnp.arange(c)
        inside = (coords < n)[:, None]
        d2 = jnp.where(inside, ((f0[s][None, :] - values) / 2.0) ** 2, 0.0)
        bad = bad + jnp.sum(inside & ~jnp.isfinite(values))
        inf = inf.at[coords].add(d2, mode="drop")
        inf2 = inf2.at[coords].add(d2 * d2, mode="drop")
        return (inf, inf2, bad), None

    zeros = jnp.zeros((n, outputs), jnp.float32)
    init = (zeros, zeros, jnp.sum(~jnp.isfinite(f0)))
    (inf, inf2, bad), _ = jax.lax.scan(body, init, (steps, all_values))
    return {"mean": (inf / samples).T, "mean_sq": (inf2 / samples).T, "bad": bad}
