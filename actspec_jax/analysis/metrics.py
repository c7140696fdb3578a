"""Faithfulness of a sparse spectrum to the function it approximates.

:func:`uniform_masks`, :func:`r2_score` and :func:`faithfulness_r2` live in the core
(:mod:`actspec_jax.solvers.common.heldout`, which :meth:`~actspec_jax.Spectrum.r2` uses) and are
re-exported here; the protocols, the size-stratified masks and the prefix curves are built on them.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.solvers.common.heldout import faithfulness_r2, r2_score, uniform_masks
from actspec_jax.transforms.indexing import characters, membership_from_packed
from actspec_jax.transforms.mobius import check_terms

__all__ = [
    "faithfulness",
    "faithfulness_curve",
    "faithfulness_r2",
    "faithfulness_r2_by_size",
    "r2_score",
    "size_stratified_masks",
    "uniform_masks",
]


# --------------------------------------------------------------------------- faithfulness protocols

Protocol = Literal["uniform", "size"]


@functools.partial(jax.jit, static_argnames=("num_masks", "n"))
def size_stratified_masks(key: jax.Array, num_masks: int, n: int) -> jax.Array:
    """``float32[num_masks, n]`` masks drawn uniformly *by coalition size* (shapiq's protocol).

    For each mask the number of kept neurons ``s`` is uniform on ``{0, …, n}``, then a uniform
    subset of ``s`` neurons is kept (+1) and the rest ablated (−1). Unlike i.i.d. uniform masks
    (which concentrate at ``n/2`` kept), this weighs nearly-empty and nearly-full coalitions
    — the ones Shapley-style indices care about — as much as balanced ones. Jittable.
    """
    k_size, k_perm = jax.random.split(key)
    sizes = jax.random.randint(k_size, (num_masks,), 0, n + 1)
    u = jax.random.uniform(k_perm, (num_masks, n))
    # keep the s smallest of n i.i.d. uniforms: a uniform subset of size s
    padded = jnp.concatenate([jnp.sort(u, axis=1), jnp.full((num_masks, 1), jnp.inf, u.dtype)], axis=1)
    threshold = jnp.take_along_axis(padded, sizes[:, None], axis=1)
    return jnp.where(u < threshold, 1.0, -1.0).astype(jnp.float32)


def _protocol_masks(key: jax.Array, num_masks: int, n: int, protocol: Protocol) -> jax.Array:
    if protocol == "uniform":
        return uniform_masks(key, num_masks, n)
    if protocol == "size":
        return size_stratified_masks(key, num_masks, n)
    raise ActSpecError(
        f"unknown protocol {protocol!r}: use 'uniform' (i.i.d. ±1 masks, SPEX's protocol) or 'size' "
        "(coalition size uniform, shapiq's protocol)."
    )


def _targets(spectrum: Any, problem: Any, masks: jax.Array) -> jax.Array:
    check_terms(spectrum)
    if spectrum.n != problem.n:
        raise ActSpecError(
            f"the spectrum has n={spectrum.n} neurons but the problem has n={problem.n}: it was "
            "computed for a different problem."
        )
    values = problem.evaluate_unchecked(masks).reshape(masks.shape[0], -1)
    column = spectrum.output_index or 0
    if column >= values.shape[1]:
        raise ActSpecError(f"the spectrum explains output {column} but the problem has {values.shape[1]}.")
    return values[:, column]


def faithfulness(
    spectrum: Any,
    problem: Any,
    *,
    key: jax.Array,
    num_masks: int = 2048,
    protocol: Protocol = "uniform",
) -> float:
    """R² of the spectrum's sparse approximation against ``problem`` on held-out masks.

    ``protocol="uniform"``: i.i.d. uniform ±1 masks (SPEX's protocol, Kang et al. 2025);
    ``protocol="size"``: :func:`size_stratified_masks` (shapiq's protocol). Same key → same masks.
    """
    masks = _protocol_masks(key, num_masks, problem.n, protocol)
    return r2_score(_targets(spectrum, problem, masks), spectrum.evaluate(masks))


def faithfulness_r2_by_size(spectrum: Any, problem: Any, *, key: jax.Array, num_masks: int = 2048) -> float:
    """:func:`faithfulness` with ``protocol="size"`` (coalition size uniform, then a uniform subset)."""
    return faithfulness(spectrum, problem, key=key, num_masks=num_masks, protocol="size")


@jax.jit
def _prefix_r2(chi: jax.Array, coefs: jax.Array, y: jax.Array, counts: jax.Array) -> jax.Array:
    partial = jnp.cumsum(chi * coefs[None, :], axis=1)  # [m, K]: prediction from the first j+1 terms
    preds = jnp.concatenate([jnp.zeros((chi.shape[0], 1), chi.dtype), partial], axis=1)[:, counts]
    sse = jnp.sum((y[:, None] - preds) ** 2, axis=0)
    sst = jnp.sum((y - jnp.mean(y)) ** 2)
    return 1.0 - sse / sst


def faithfulness_curve(
    spectrum: Any,
    problem: Any,
    *,
    key: jax.Array,
    num_masks: int = 2048,
    num_terms: Any = None,
    protocol: Protocol = "uniform",
) -> dict[str, np.ndarray]:
    """R² as a function of the number of coefficients kept (largest ``|f̂(S)|`` first).

    Args:
      num_terms: the counts ``k`` to evaluate (default ``0, 1, 2, 4, …`` up to all ``K`` terms).
      protocol: held-out masks, as in :func:`faithfulness`.

    Returns:
      ``{"num_terms": int[P], "r2": float64[P]}``; ``r2[j]`` is the R² of
      ``Σ_{top num_terms[j]} f̂(S) χ_S`` on the same ``num_masks`` held-out masks.
      Cost ``O(num_masks · K)``.
    """
    _, packed, coefs = check_terms(spectrum)
    total = coefs.shape[0]
    if num_terms is None:
        grid = {0, total} | {1 << j for j in range(max(total, 1).bit_length()) if 1 << j <= total}
        counts = np.asarray(sorted(grid), np.int64)
    else:
        counts = np.asarray(num_terms, np.int64).reshape(-1)
        if counts.size and (counts.min() < 0 or counts.max() > total):
            raise ActSpecError(f"num_terms must lie in 0..{total} (the spectrum's number of terms).")
    masks = _protocol_masks(key, num_masks, problem.n, protocol)
    y = _targets(spectrum, problem, masks).astype(jnp.float32)
    order = np.argsort(-np.abs(coefs), kind="stable")
    member = membership_from_packed(jnp.asarray(packed[order]), spectrum.n)
    chi = characters(masks, member)
    if float(jnp.var(y)) == 0.0:
        raise ActSpecError("the problem is constant on the held-out masks; R² is undefined.")
    r2 = _prefix_r2(chi, jnp.asarray(coefs[order], jnp.float32), y, jnp.asarray(counts))
    return {"num_terms": counts, "r2": np.asarray(r2, np.float64)}
