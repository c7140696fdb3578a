"""Jitted kernels of the Goldreich–Levin search (private).

Every kernel has fixed shapes for a given problem and configuration (the live set is
padded to the beam, the search order to a whole number of blocks, sample sets to whole
chunks with a validity weight), so each compiles once and every level reuses it.

Symbols: ``n`` neurons; ``B`` beam slots; ``D`` maximum ``|S|``; ``b`` coordinates split per
level, ``T = 2^b`` children per bucket; ``m`` base draws ``z`` per level, ``r`` prefix draws
``y`` per base draw; ``c`` base draws per chunk. Padding neuron index: ``n`` (its pattern
column is the constant +1, so it never changes a character).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from actspec_jax.solvers.paper import paper_rows, paper_sample
from actspec_jax.solvers.redundancy import predictability

__all__ = [
    "block_characters",
    "design",
    "estimate_children",
    "influence",
    "postcheck_trim",
    "random_signs",
    "select_children",
    "subset_characters",
]

MASK = "mask"
PAPER = "paper"


def random_words(key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
    """``uint32[*shape, ⌈n/32⌉]`` random words: 32 uniform signs each (see :func:`signs_from_words`)."""
    return jax.random.bits(key, (*shape, -(-n // 32)), jnp.uint32)


def signs_from_words(words: jax.Array, n: int) -> jax.Array:
    """Unpack ``uint32[..., W]`` into ``±1`` ``float32[..., n]`` (bit set → −1)."""
    unpacked = (words[..., None] >> jnp.arange(32, dtype=jnp.uint32)) & jnp.uint32(1)
    flat = unpacked.reshape(*words.shape[:-1], words.shape[-1] * 32)[..., :n]
    return 1.0 - 2.0 * flat.astype(jnp.float32)


def random_signs(key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
    """Uniform ``±1`` ``float32[*shape, n]`` from 32 random bits per word (cheap on CPU)."""
    return signs_from_words(random_words(key, shape, n), n)


def _pad_rows(x: jax.Array, rows: int) -> jax.Array:
    return jnp.pad(x, [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


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


def _sample(
    problem: Any, patterns: Any, draws: jax.Array, prefix: jax.Array, *, mode: str, r: int
) -> tuple[jax.Array, jax.Array]:
    """``values float32[c, r]`` and the ``±1`` patterns ``float32[c, r, n]`` χ is read from,
    for one chunk of pre-drawn randomness (``draws[c, r + 1, ...]``)."""
    if mode == PAPER:
        return paper_sample(problem, patterns, draws[:, 0], draws[:, 1:], prefix)
    n = prefix.shape[0]
    c = draws.shape[0]
    signs = signs_from_words(draws, n)  # [c, r + 1, n]
    y = signs[:, 1:]
    masks = jnp.where(prefix, y, signs[:, :1])
    values = problem.evaluate_unchecked(masks.reshape(c * r, n)).reshape(c, r)
    return values.astype(jnp.float32), y


@functools.partial(jax.jit, static_argnames=("mode", "m", "c", "r", "b"))
def estimate_children(
    problem: Any,
    patterns: Any,
    members: jax.Array,
    key: jax.Array,
    level: jax.Array,
    rank: jax.Array,
    order: jax.Array,
    center: jax.Array,
    *,
    mode: str,
    m: int,
    c: int,
    r: int,
    b: int,
) -> dict[str, jax.Array]:
    """Sufficient statistics of every child's weight estimate at one level.

    The children of bucket ``(k, S)`` are ``(k + b, S ∪ T)``, ``T ⊆`` block of the next ``b``
    searched neurons. For base draw ``j`` with prefix draws ``a = 1…r`` and centred values
    ``F_ja = f(y_ja, z_j) − center``:

        G_j(S, T) = Σ_a F_ja χ_S(y_ja) χ_T(y_ja),   Q_j = Σ_a F_ja²,
        u_j(S, T) = (G_j² − Q_j) / (r (r − 1)),

    the U-statistic over ordered pairs ``a ≠ b`` of ``F_ja χ(y_ja) F_jb χ(y_jb)``, whose mean is
    ``E_z[(E_y f χ_{S∪T})²] = Σ_U f̂(S ∪ T ∪ U)²`` over ``U`` in the suffix. One evaluation batch
    of ``c·r`` masks serves all ``B · 2^b`` children; the children's estimates are one batched
    matrix product ``[B, r] @ [r, 2^b]`` per base draw.

    Returns sums over the ``m`` base draws: ``su``, ``su2`` (``float32[B, 2^b]``), ``sf``, ``sf2``,
    ``fmax`` (of ``|F|``) and ``bad`` (number of non-finite values).
    """
    prefix = rank < (level + 1) * b
    block = jax.lax.dynamic_slice(order, (level * b,), (b,))
    chunks = -(-m // c)
    beam = members.shape[0]
    if mode == PAPER:
        draws = jax.random.randint(key, (m, r + 1), 0, problem.activations.shape[0])
    else:
        draws = random_words(key, (m, r + 1), rank.shape[0])
    draws = _pad_rows(draws, chunks * c).reshape(chunks, c, *draws.shape[1:])

    def body(carry: tuple, j: jax.Array) -> tuple[tuple, None]:
        su, su2, sf, sf2, fmax, bad = carry
        index = j * c + jnp.arange(c)
        values, pats = _sample(problem, patterns, draws[j], prefix, mode=mode, r=r)
        weight = (index < m).astype(jnp.float32)
        finite = jnp.isfinite(values)
        bad = bad + jnp.sum(jnp.where(finite, 0.0, weight[:, None]))
        values = jnp.where(finite, values - center, 0.0) * weight[:, None]
        ext = extend(pats)
        left = values[:, :, None] * subset_characters(ext, members)  # [c, r, B]
        g = jnp.einsum("caB,caT->cBT", left, block_characters(ext, block))
        q = jnp.sum(values * values, axis=1)
        u = (g * g - q[:, None, None]) / (r * (r - 1))
        carry = (
            su + jnp.sum(u, axis=0),
            su2 + jnp.sum(u * u, axis=0),
            sf + jnp.sum(values),
            sf2 + jnp.sum(values * values),
            jnp.maximum(fmax, jnp.max(jnp.abs(values))),
            bad,
        )
        return carry, None

    zeros = jnp.zeros((beam, 1 << b), jnp.float32)
    init = (zeros, zeros, jnp.float32(0), jnp.float32(0), jnp.float32(0), jnp.float32(0))
    (su, su2, sf, sf2, fmax, bad), _ = jax.lax.scan(body, init, jnp.arange(chunks))
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
    ``|F| ≤ F_max`` (the observed maximum).
    """
    depth = members.shape[1]
    sentinel = n  # padding neuron index
    children = 1 << b
    m = jnp.asarray(m, jnp.float32)
    mean = stats["su"] / m
    var = jnp.maximum(stats["su2"] / m - mean * mean, 0.0) * m / jnp.maximum(m - 1.0, 1.0)
    block = jax.lax.dynamic_slice(order, (level * b,), (b,))
    t_bits = (jnp.arange(children)[:, None] >> jnp.arange(b)[None, :]) & 1  # [T, b]
    t_size = jnp.sum(t_bits, axis=1)
    block_ok = jnp.all((t_bits == 0) | (block[None, :] != sentinel), axis=1)
    child_valid = valid[:, None] & block_ok[None, :]
    degree_ok = degree[:, None] + t_size[None, :] <= depth
    ok = child_valid & degree_ok
    above = ok & (mean >= threshold)
    score = jnp.where(above, mean, -jnp.inf)
    top, idx = jax.lax.top_k(score.ravel(), pool)
    parent, t = idx // children, idx % children
    new_valid = jnp.isfinite(top)
    new_members = members[parent]
    new_degree = degree[parent]
    slots = jnp.arange(depth)[None, :]
    for j in range(b):
        bit = (((t >> j) & 1) == 1) & new_valid
        new_members = jnp.where((slots == new_degree[:, None]) & bit[:, None], block[j], new_members)
        new_degree = new_degree + bit.astype(new_degree.dtype)
    new_members = jnp.where(new_valid[:, None], new_members, sentinel)
    new_degree = jnp.where(new_valid, new_degree, 0)
    added = jnp.where((t_bits[t] == 1) & new_valid[:, None], block[None, :], sentinel)
    se = jnp.sqrt(var / m).ravel()[idx]

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
        "stderr": jnp.where(new_valid, se, 0.0),
        "added": added,
        "children": jnp.sum(ok),
        "above": jnp.sum(above),
        "degree_dropped": jnp.sum(child_valid & ~degree_ok & (mean >= threshold)),
        "undecided": jnp.sum(undecided),
        "max_weight": jnp.max(jnp.where(ok, mean, -jnp.inf)),
    }


@functools.partial(jax.jit, static_argnames=("beam",))
def postcheck_trim(
    bits: jax.Array, selected: dict[str, jax.Array], delta: jax.Array, *, beam: int
) -> dict[str, jax.Array]:
    """Apply the post-check to the candidate pool, then keep the ``beam`` heaviest accepted."""
    stat = predictability(bits, selected["members"], selected["added"])
    rejected = selected["valid"] & jnp.any(stat > delta, axis=1)
    keep = selected["valid"] & ~rejected
    top, idx = jax.lax.top_k(jnp.where(keep, selected["weights"], -jnp.inf), beam)
    out = {k: selected[k][idx] for k in ("members", "degree", "weights", "stderr")}
    out["valid"] = jnp.isfinite(top)
    out["rejected"] = rejected
    out["statistic"] = jnp.max(stat, axis=1)
    return out


@functools.partial(jax.jit, static_argnames=("mode", "total", "c"))
def design(
    problem: Any, patterns: Any, key: jax.Array, members: jax.Array, *, mode: str, total: int, c: int
) -> tuple[jax.Array, jax.Array]:
    """Values ``float32[total]`` and characters ``float32[total, B]`` of the buckets' ``S``.

    Mask mode: on ``total`` fresh uniform masks. Paper mode: on the data rows ``0 … total−1``
    (unpatched). Used for the norm pre-pass (all-padding members) and for the leaves.
    """
    chunks = -(-total // c)
    if mode != PAPER:
        words = random_words(key, (total,), problem.n)
        words = _pad_rows(words, chunks * c).reshape(chunks, c, -1)

    def body(_: None, j: jax.Array) -> tuple[None, tuple[jax.Array, jax.Array]]:
        index = j * c + jnp.arange(c)
        if mode == PAPER:
            values, pats = paper_rows(problem, patterns, jnp.minimum(index, total - 1))
        else:
            pats = signs_from_words(words[j], problem.n)
            values = problem.evaluate_unchecked(pats).astype(jnp.float32)
        return None, (values, subset_characters(extend(pats), members))

    _, (values, chars) = jax.lax.scan(body, None, jnp.arange(chunks))
    return values.reshape(-1)[:total], chars.reshape(chunks * c, -1)[:total]


@functools.partial(jax.jit, static_argnames=("samples", "c"))
def influence(problem: Any, key: jax.Array, *, samples: int, c: int) -> dict[str, jax.Array]:
    """Influences ``Inf_i = Σ_{S∋i} f̂(S)² = E_x[((f(x) − f(x^{⊕i})) / 2)²]`` for every neuron.

    ``samples`` uniform points ``x``, each with all ``n`` single-neuron flips, evaluated in
    chunks of ``c`` masks: ``samples · (n + 1)`` evaluations. Returns the means of ``D²`` and
    ``D⁴`` (for a standard error) and the number of non-finite values.
    """
    n = problem.n
    x = random_signs(key, (samples,), n)
    f0 = problem.evaluate_unchecked(x).astype(jnp.float32)
    per = -(-n // c)
    cols = jnp.arange(n)

    def body(carry: tuple, idx: jax.Array) -> tuple[tuple, None]:
        inf, inf2, bad = carry
        s, chunk = idx // per, idx % per
        coords = chunk * c + jnp.arange(c)
        flip = cols[None, :] == coords[:, None]
        masks = jnp.where(flip, -x[s][None, :], x[s][None, :])
        values = problem.evaluate_unchecked(masks).astype(jnp.float32)
        inside = coords < n
        d2 = jnp.where(inside, ((f0[s] - values) / 2.0) ** 2, 0.0)
        bad = bad + jnp.sum(inside & ~jnp.isfinite(values))
        inf = inf.at[coords].add(d2, mode="drop")
        inf2 = inf2.at[coords].add(d2 * d2, mode="drop")
        return (inf, inf2, bad), None

    zeros = jnp.zeros((n,), jnp.float32)
    init = (zeros, zeros, jnp.sum(~jnp.isfinite(f0)))
    (inf, inf2, bad), _ = jax.lax.scan(body, init, jnp.arange(samples * per))
    return {"mean": inf / samples, "mean_sq": inf2 / samples, "bad": bad}
