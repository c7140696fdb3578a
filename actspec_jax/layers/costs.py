"""Pairwise cost matrices of one layer's representation of a fixed input set.

For a representation ``x float[m, d]`` (row ``i`` = input ``i``), the cost matrix
``C float[m, m]`` is symmetric with zero diagonal:

* ``'euclidean'``:   ``C_ij = ‖x_i − x_j‖₂``
* ``'sqeuclidean'``: ``C_ij = ‖x_i − x_j‖₂²``
* ``'cosine'``:      ``C_ij = 1 − ⟨x_i, x_j⟩ / (‖x_i‖‖x_j‖)`` (an all-zero row counts as
  orthogonal to everything, cost 1)

then divided by a scale so layers of different widths and magnitudes are comparable:
``'max'`` (largest entry → 1), ``'mean'`` or ``'median'`` of the off-diagonal entries
(→ 1), or ``'none'``. Under ``'max'``/``'mean'``/``'median'`` a representation and any
rescaled copy of it (``c·x``, ``c > 0``) have the same cost matrix; every metric is also
invariant to permuting the features (neurons), so neither changes the GW distance.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp

from actspec_jax.errors import ActSpecError

__all__ = ["METRICS", "NORMALIZATIONS", "cost_matrices", "cost_matrix"]

#: The distances :func:`cost_matrix` accepts between the rows of a representation.
METRICS = ("euclidean", "sqeuclidean", "cosine")
#: How :func:`cost_matrix` scales a cost matrix (by its max, mean, median, or not at all).
NORMALIZATIONS = ("max", "mean", "median", "none")
Metric = Literal["euclidean", "sqeuclidean", "cosine"]
Normalization = Literal["max", "mean", "median", "none"]


def _check(metric: str, normalize: str) -> None:
    if metric not in METRICS:
        raise ActSpecError(f"unknown metric {metric!r}; use one of {METRICS}.")
    if normalize not in NORMALIZATIONS:
        raise ActSpecError(f"unknown normalisation {normalize!r}; use one of {NORMALIZATIONS}.")


@functools.partial(jax.jit, static_argnames=("metric", "normalize"))
def _cost(x: jax.Array, metric: str, normalize: str) -> jax.Array:
    m = x.shape[0]
    off = ~jnp.eye(m, dtype=bool)
    if metric == "cosine":
        norms = jnp.linalg.norm(x, axis=1)
        unit = x / jnp.where(norms > 0, norms, 1.0)[:, None]
        C = 1.0 - unit @ unit.T
    else:
        sq = jnp.sum(x * x, axis=1)
        C = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
        if metric == "euclidean":
            C = jnp.sqrt(C)
    C = jnp.where(off, jnp.maximum(0.5 * (C + C.T), 0.0), 0.0)
    if normalize == "none":
        return C
    if normalize == "max":
        scale = jnp.max(C)
    elif normalize == "mean":
        scale = jnp.sum(C) / (m * (m - 1))
    else:
        scale = jnp.nanmedian(jnp.where(off, C, jnp.nan))
    return C / jnp.where(scale > 0, scale, 1.0)


def cost_matrix(x: jax.Array, *, metric: Metric = "euclidean", normalize: Normalization = "max") -> jax.Array:
    """Cost matrix ``float[m, m]`` of a representation ``x float[m, d]`` (see module docstring)."""
    _check(metric, normalize)
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ActSpecError(
            f"a representation must be [inputs, features], got shape {tuple(x.shape)}; pool or "
            "flatten token axes first (capture_representations(..., pooling='mean'))."
        )
    if x.shape[0] < 2:
        raise ActSpecError(f"a cost matrix needs at least 2 inputs, got {x.shape[0]}.")
    x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    return _cost(x, metric, normalize)


def cost_matrices(
    representations: list[jax.Array], *, metric: Metric = "euclidean", normalize: Normalization = "max"
) -> jax.Array:
    """Stack the cost matrices of several layers: ``float[L, m, m]`` (same ``m`` for all)."""
    sizes = {int(jnp.shape(x)[0]) for x in representations}
    if len(sizes) > 1:
        raise ActSpecError(
            f"all layers must describe the same inputs; got representations with {sorted(sizes)} rows."
        )
    return jnp.stack([cost_matrix(x, metric=metric, normalize=normalize) for x in representations])
