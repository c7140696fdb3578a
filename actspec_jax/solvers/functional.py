"""The functional core: pure, jittable spectra and Goldreich–Levin levels (optax's shape).

Everything here is a pure function of arrays and an ``evaluate`` callable, so it composes
with the caller's ``jax.jit``, ``jax.vmap`` (over inputs, parameters or outputs) and
``jax.grad`` (coefficients are differentiable in whatever ``evaluate`` closes over). No
host-side checks run on traced values; shapes and sizes are checked at trace time. The
configured solvers (:class:`~actspec_jax.ExactSolver`, :class:`~actspec_jax.GoldreichLevin`)
are the convenient drivers on top, with checkpoints, progress, memory planning and
NaN checks.

``evaluate``: ``float32[k, n]`` of ±1 (+1 = kept, −1 = ablated) → ``float[k]`` or
``float[k, *out]``; rows must be independent (the masks arrive in chunks).

Example (gradient of a coefficient with respect to model parameters)::

    def coefficient(params):
        dense = asj.exact_spectrum(lambda m: f(params, m), n)   # float[2^n]
        return dense[0b101]                                       # f̂({0, 2})
    jax.grad(coefficient)(params)

One GL level is an ``init`` / ``update`` pair on an explicit :class:`GLState`::

    state = asj.gl_init(n, key=key, threshold=tau**2 / 2)
    state = asj.gl_update(state, evaluate)            # one level (jittable)
    state = asj.gl_search(evaluate, state)            # all levels, a lax.fori_loop of gl_update
    # live buckets: state.members[state.valid] (padded with n)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from actspec_jax.errors import ActSpecError
from actspec_jax.solvers.gl import kernels as K
from actspec_jax.solvers.gl.estimators import UniformMasks
from actspec_jax.transforms.indexing import enumerate_masks
from actspec_jax.transforms.wht import fwht

__all__ = [
    "GLState",
    "estimate_moments",
    "exact_spectrum",
    "gl_init",
    "gl_num_levels",
    "gl_search",
    "gl_update",
    "top_terms",
]

Evaluate = Callable[[jax.Array], jax.Array]
TAG_LEVELS = 0  # the driver's level-key tag: level l draws from fold_in(fold_in(key, 0), l)


def _static_n(n: Any, limit: int) -> int:
    if isinstance(n, jax.core.Tracer):
        raise ActSpecError("n must be a Python int (it sets array shapes), not a traced value.")
    n = int(n)
    if not 1 <= n <= limit:
        raise ActSpecError(f"n must be in 1..{limit}, got {n}.")
    return n


# --------------------------------------------------------------------------- exact spectra


def exact_spectrum(
    evaluate: Evaluate,
    n: int,
    *,
    chunk_size: int = 4096,
    block_bits: int | None = None,
    precision: str | None = None,
) -> jax.Array:
    """Every Fourier coefficient of ``evaluate``: ``float[*out, 2^n]`` (index ``S`` = bitmask).

    ``f̂(S) = 2^{-n} Σ_k f(x_k) χ_S(x_k)``: all ``2^n`` masks are enumerated
    (:func:`~actspec_jax.transforms.enumerate_masks` order, bit ``i`` set ⇔ neuron ``i``
    ablated) in chunks of ``chunk_size`` (static; rounded down to a power of two) inside one
    ``lax.map``, then one Walsh–Hadamard transform. Memory: the value table ``float[*out, 2^n]``,
    its transform, and one chunk's intermediates. Pure and jittable; differentiable in
    everything ``evaluate`` closes over. No NaN check (use :class:`~actspec_jax.ExactSolver`
    on the host for one, or ``jnp.isfinite`` on the result).
    """
    n = _static_n(n, 31)
    total = 1 << n
    if int(chunk_size) < 1:
        raise ActSpecError(f"chunk_size must be >= 1, got {chunk_size}.")
    chunk = 1 << min(n, int(math.log2(int(chunk_size))))

    def one(start: jax.Array) -> jax.Array:
        values = jnp.asarray(evaluate(enumerate_masks(start, chunk, n)))
        if values.ndim < 1 or values.shape[0] != chunk:
            raise ActSpecError(
                f"evaluate must map masks [k, n] to values [k, ...]; for k={chunk} it returned shape "
                f"{values.shape}."
            )
        if not jnp.issubdtype(values.dtype, jnp.floating):
            values = values.astype(jnp.float32)
        return values

    starts = jnp.arange(total // chunk, dtype=jnp.int32) * chunk
    values = jax.lax.map(one, starts)  # [chunks, chunk, *out]
    table = jnp.moveaxis(values.reshape(total, *values.shape[2:]), 0, -1)  # [*out, 2^n]
    return fwht(table, block_bits=block_bits, precision=precision) / total


def top_terms(dense: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` largest-``|f̂(S)|`` coefficients of a dense spectrum ``float[..., 2^n]``.

    Returns ``(indices int32[..., k], values float[..., k])`` sorted by decreasing ``|value|``;
    index = subset bitmask (``actspec_jax.transforms.index_to_subset`` turns it into
    neurons). Jittable (``k`` static).
    """
    k = int(k)
    length = dense.shape[-1]
    if not 1 <= k <= length:
        raise ActSpecError(f"k must be in 1..{length} (the spectrum's length), got {k}.")
    _, idx = jax.lax.top_k(jnp.abs(dense), k)
    return idx.astype(jnp.int32), jnp.take_along_axis(dense, idx, axis=-1)


# --------------------------------------------------------------------------- GL levels


class GLState(NamedTuple):
    """State of a functional Goldreich–Levin search (a pytree of arrays).

    Attributes:
      level: ``int32[]`` levels done.
      members: ``int32[beam, D]`` neurons of each live bucket's ``S`` (padding ``n``).
      degree: ``int32[beam]`` ``|S|``.
      valid: ``bool[beam]`` live slots (slot 0 holds the root ``∅`` at level 0).
      weights: ``float32[beam]`` estimated bucket weights ``Σ_U f̂(S ∪ U)²``.
      stderr: ``float32[beam]`` their standard errors.
      order: ``int32[L]`` neurons in search order, padded with ``n`` to whole blocks.
      rank: ``int32[n]`` position of each neuron in ``order`` (``L`` = never searched).
      key: the base PRNG key (level ``l`` draws from ``fold_in(fold_in(key, 0), l)``).
      threshold: ``float32[]`` weight a bucket needs to stay live (``τ²/2`` for ``|f̂| ≥ τ``).
      center: ``float32[]`` constant subtracted from ``f`` before the estimates (e.g. ``E f``).
    """

    level: jax.Array
    members: jax.Array
    degree: jax.Array
    valid: jax.Array
    weights: jax.Array
    stderr: jax.Array
    order: jax.Array
    rank: jax.Array
    key: jax.Array
    threshold: jax.Array
    center: jax.Array


def _typed_key(key: jax.Array) -> jax.Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    return key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)


def gl_init(
    n: int,
    *,
    key: jax.Array,
    threshold: jax.Array | float,
    center: jax.Array | float = 0.0,
    beam: int = 128,
    max_degree: int = 16,
    block_size: int = 4,
    order: jax.Array | None = None,
) -> GLState:
    """The state before level 0: one live bucket, ``∅`` over no prefix.

    Args:
      n: number of variables (static).
      key: PRNG key of the search (every level's draws derive from it).
      threshold: absolute weight threshold (may be traced); ``τ_abs²/2`` finds ``|f̂(S)| ≥ τ_abs``.
      center: subtracted from every value (may be traced; the mean of ``f`` lowers the variance).
      beam, max_degree, block_size: live buckets kept, largest ``|S|``, neurons split per level
        (static; ``block_size`` must match :func:`gl_update`'s).
      order: ``int[L]`` neurons to search, in order (may be traced; ``L ≤ n`` static); default
        ``0 … n − 1``. Neurons left out stay uniformly random in every mask.
    """
    n = _static_n(n, 1 << 30)
    b, beam, depth = int(block_size), int(beam), min(int(max_degree), n)
    if not 1 <= b <= 8 or beam < 1 or not 1 <= depth <= 32:
        raise ActSpecError(
            f"need block_size in 1..8, beam >= 1 and max_degree in 1..32; got {b}, {beam}, {max_degree}."
        )
    order = jnp.arange(n, dtype=jnp.int32) if order is None else jnp.asarray(order, jnp.int32)
    if order.ndim != 1 or not 1 <= order.shape[0] <= n:
        raise ActSpecError(f"order must be a 1-D array of at most n={n} neuron indices, got {order.shape}.")
    length = -(-order.shape[0] // b) * b
    order = jnp.pad(order, (0, length - order.shape[0]), constant_values=n)
    positions = jnp.arange(length, dtype=jnp.int32)
    return GLState(
        level=jnp.int32(0),
        members=jnp.full((beam, depth), n, jnp.int32),
        degree=jnp.zeros((beam,), jnp.int32),
        valid=jnp.zeros((beam,), bool).at[0].set(True),
        weights=jnp.zeros((beam,), jnp.float32),
        stderr=jnp.zeros((beam,), jnp.float32),
        order=order,
        rank=jnp.full((n,), length, jnp.int32).at[order].set(positions, mode="drop"),
        key=_typed_key(key),
        threshold=jnp.asarray(threshold, jnp.float32),
        center=jnp.asarray(center, jnp.float32),
    )


def gl_num_levels(state: GLState, block_size: int = 4) -> int:
    """Levels of a full search (static): ``len(order) / block_size``."""
    return int(state.order.shape[0]) // int(block_size)


def _hybrid_values(evaluate: Evaluate, draws: jax.Array, prefix: jax.Array, n: int, chunk: int) -> jax.Array:
    """``f`` on the hybrids of one round, ``float32[m, r]``: hybrid ``(j, a)`` takes the prefix
    neurons from prefix draw ``a`` and the rest from base draw ``j`` (draws ``uint32[m, r+1, W]``)."""
    m, r = draws.shape[0], draws.shape[1] - 1

    def one(block: jax.Array) -> jax.Array:
        signs = K.signs_from_words(block, n)
        masks = jnp.where(prefix, signs[:, 1:], signs[:, :1]).reshape(chunk * r, n)
        values = jnp.asarray(evaluate(masks))
        if values.shape != (chunk * r,):
            raise ActSpecError(
                f"gl_update explains one function: evaluate must map masks [k, n] to values [k]; got "
                f"shape {values.shape} for k={chunk * r}."
            )
        return values.reshape(chunk, r).astype(jnp.float32)

    return jax.lax.map(one, K._chunked(draws, chunk)).reshape(-1, r)[:m]


def gl_update(
    state: GLState,
    evaluate: Evaluate,
    *,
    block_size: int = 4,
    num_samples: int = 256,
    draws_per_z: int = 16,
    chunk_size: int = 64,
) -> GLState:
    """One GL level: split every live bucket on the next ``block_size`` neurons and keep the
    ``beam`` heaviest children with estimated weight ``≥ state.threshold``.

    Draws ``num_samples`` base masks ``z`` and ``draws_per_z`` prefix draws ``y`` per ``z``
    (``num_samples · draws_per_z`` evaluations, in chunks of ``chunk_size`` base draws) from
    ``fold_in(fold_in(state.key, 0), level)`` — the same draws as one round of
    :class:`~actspec_jax.GoldreichLevin` — and estimates every child's weight by the
    U-statistic of :func:`actspec_jax.solvers.gl.kernels.child_stats`. Pure and jittable;
    runs under ``lax.fori_loop`` / ``while_loop``. A level past the end of ``order`` keeps
    the live buckets (re-estimated). Non-finite values are zeroed by the statistics (check
    ``evaluate`` on the host if that matters).
    """
    b, m, r = int(block_size), int(num_samples), int(draws_per_z)
    if m < 2 or r < 2:
        raise ActSpecError(f"num_samples and draws_per_z must be >= 2, got {m} and {r}.")
    if state.order.shape[0] % b:
        raise ActSpecError(
            f"the state's order has length {state.order.shape[0]}, not a multiple of block_size={b}: "
            "pass the same block_size to gl_init and gl_update."
        )
    beam = state.members.shape[0]
    n_pad = state.order.shape[0]
    n = int(state.rank.shape[0])
    level = jnp.asarray(state.level, jnp.int32)
    level_key = jax.random.fold_in(jax.random.fold_in(state.key, TAG_LEVELS), level)
    draws = K.random_words(jax.random.fold_in(level_key, 0), (m, r + 1), n)
    prefix = state.rank < (level + 1) * b
    chunk = max(1, min(m, int(chunk_size)))
    values = _hybrid_values(evaluate, draws, prefix, n, chunk)
    # Past the end of the order the block is padding: clamp the slice start (children = parents).
    safe_level = jnp.minimum(level, n_pad // b - 1)
    stats = K.child_stats(
        values,
        draws,
        None,
        state.members,
        safe_level,
        state.order,
        state.center,
        estimator=UniformMasks(),
        c=chunk,
        b=b,
        n=n,
    )
    sel = K.select_children(
        stats,
        jnp.float32(m),
        state.members,
        state.degree,
        state.valid,
        safe_level,
        state.order,
        state.threshold,
        jnp.float32(0.05),
        pool=beam,
        b=b,
        r=r,
        n=n,
    )
    return state._replace(
        level=level + 1,
        members=sel["members"],
        degree=sel["degree"],
        valid=sel["valid"],
        weights=sel["weights"],
        stderr=sel["stderr"],
    )


def gl_search(
    evaluate: Evaluate,
    state: GLState,
    *,
    block_size: int = 4,
    num_samples: int = 256,
    draws_per_z: int = 16,
    chunk_size: int = 64,
) -> GLState:
    """Every level of ``state``'s order (``lax.fori_loop`` of :func:`gl_update`; jittable).

    The settings are :func:`gl_update`'s (``block_size`` must match :func:`gl_init`'s). The
    survivors are ``state.members[state.valid]``.
    """
    levels = gl_num_levels(state, block_size)

    def body(_: jax.Array, s: GLState) -> GLState:
        return gl_update(
            s, evaluate, block_size=block_size, num_samples=num_samples, draws_per_z=draws_per_z,
            chunk_size=chunk_size,
        )  # fmt: skip

    return jax.lax.fori_loop(0, levels, body, state)


def estimate_moments(
    evaluate: Evaluate, n: int, *, key: jax.Array, num_samples: int = 8192, chunk_size: int = 1024
) -> tuple[jax.Array, jax.Array]:
    """``(E f, E f²)`` over ``num_samples`` uniform masks (jittable): the centre and the
    squared norm ``‖f‖₂²`` a relative threshold is measured against (``τ_abs = τ‖f‖₂``)."""
    n = _static_n(n, 1 << 30)
    m = int(num_samples)
    chunk = max(1, min(m, int(chunk_size)))
    words = K.random_words(_typed_key(key), (m,), n)

    def one(block: jax.Array) -> jax.Array:
        return jnp.asarray(evaluate(K.signs_from_words(block, n))).astype(jnp.float32)

    values = jax.lax.map(one, K._chunked(words, chunk)).reshape(-1)[:m]
    return jnp.mean(values), jnp.mean(values * values)
