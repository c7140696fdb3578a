"""Centered kernel alignment (CKA), linear and RBF, biased and debiased.

For representations ``x float[m, p]`` and ``y float[m, q]`` of the same ``m`` inputs with
Gram matrices ``K`` and ``L`` (Kornblith et al. 2019, "Similarity of Neural Network
Representations Revisited"):

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L)),

* biased: ``HSIC(K, L) = tr(K H L H)`` with ``H = I − 11ᵀ/m`` (the ``1/(m−1)²`` factor
  cancels in the ratio);
* debiased: the unbiased estimator of Song et al. 2012 on ``K̃, L̃`` (diagonals set to 0),
  ``HSIC₁(K, L) = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1 / ((m−1)(m−2)) − 2·1ᵀK̃L̃1 / (m−2)] / (m(m−3))``;
  needs ``m ≥ 4``.

Kernels: linear ``K = x xᵀ``; RBF ``K_ij = exp(−‖x_i − x_j‖² / (2σ²))`` with
``σ² = threshold² · median_{i,j} ‖x_i − x_j‖²`` (median over all ``m²`` ordered pairs,
diagonal included — Kornblith et al.'s choice; i.e. ``σ = threshold ×`` the median
distance). CKA is invariant to orthogonal transforms and isotropic scaling of ``x``
(linear), and ``1`` for identical representations.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from actspec_jax.errors import ActSpecError

__all__ = ["cka", "gram_linear", "gram_rbf", "hsic", "linear_cka", "rbf_cka"]


def _check_pair(x: jax.Array, y: jax.Array, debiased: bool) -> tuple[jax.Array, jax.Array]:
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ActSpecError(
            f"CKA takes representations [inputs, features]; got shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}. Pool or flatten token axes first."
        )
    if x.shape[0] != y.shape[0]:
        raise ActSpecError(
            f"x and y must describe the same inputs (same first axis), got {x.shape[0]} and {y.shape[0]}."
        )
    if x.shape[0] < (4 if debiased else 2):
        raise ActSpecError(f"CKA needs at least {4 if debiased else 2} inputs, got {x.shape[0]}.")
    dtype = jnp.result_type(x.dtype, y.dtype, jnp.float32)
    return x.astype(dtype), y.astype(dtype)


def gram_linear(x: jax.Array) -> jax.Array:
    """Linear kernel ``x xᵀ``, ``float[m, m]``."""
    return x @ x.T


def _sq_distances(x: jax.Array) -> jax.Array:
    sq = jnp.sum(x * x, axis=1)
    return jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)


def gram_rbf(x: jax.Array, threshold: float = 1.0) -> jax.Array:
    """RBF kernel with bandwidth ``σ² = threshold² · median ‖x_i − x_j‖²``, ``float[m, m]``."""
    d2 = _sq_distances(x)
    sigma_sq = threshold**2 * jnp.median(d2)
    return jnp.exp(-d2 / (2.0 * sigma_sq))


def _center(K: jax.Array) -> jax.Array:
    return K - K.mean(axis=0, keepdims=True) - K.mean(axis=1, keepdims=True) + K.mean()


def hsic(K: jax.Array, L: jax.Array, *, debiased: bool = False) -> jax.Array:
    """HSIC of two Gram matrices (biased ``tr(KHLH)``, or Song et al.'s unbiased estimator)."""
    K, L = jnp.asarray(K), jnp.asarray(L)
    if not debiased:
        return jnp.sum(_center(K) * _center(L))
    m = K.shape[0]
    Kt = K * (1.0 - jnp.eye(m, dtype=K.dtype))
    Lt = L * (1.0 - jnp.eye(m, dtype=L.dtype))
    ksum, lsum = Kt.sum(axis=0), Lt.sum(axis=0)
    trace = jnp.sum(Kt * Lt)
    return (trace + ksum.sum() * lsum.sum() / ((m - 1) * (m - 2)) - 2.0 * (ksum @ lsum) / (m - 2)) / (
        m * (m - 3)
    )


@functools.partial(jax.jit, static_argnames=("debiased",))
def cka(K: jax.Array, L: jax.Array, *, debiased: bool = False) -> jax.Array:
    """CKA of two Gram matrices ``float[m, m]`` (scalar)."""
    num = hsic(K, L, debiased=debiased)
    den = jnp.sqrt(hsic(K, K, debiased=debiased) * hsic(L, L, debiased=debiased))
    return num / den


def linear_cka(x: jax.Array, y: jax.Array, debiased: bool = False) -> jax.Array:
    """Linear CKA of ``x float[m, p]`` and ``y float[m, q]`` (scalar in ``[0, 1]`` when biased)."""
    x, y = _check_pair(x, y, debiased)
    return cka(gram_linear(x), gram_linear(y), debiased=debiased)


def rbf_cka(x: jax.Array, y: jax.Array, threshold: float = 1.0, debiased: bool = False) -> jax.Array:
    """RBF CKA; the bandwidth is ``threshold ×`` the median pairwise distance of each input."""
    x, y = _check_pair(x, y, debiased)
    if not float(threshold) > 0:
        raise ActSpecError(f"threshold must be positive, got {threshold}.")
    return cka(gram_rbf(x, threshold), gram_rbf(y, threshold), debiased=debiased)
