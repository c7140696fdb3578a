"""Least-squares refit of a found support on evaluated masks, with sandwich errors (private).

``Φ[i, s] = χ_{S_s}(x_i)``; the coefficients solve ``min ‖v − Φc‖²`` and their
heteroskedasticity-robust (HC1) covariance is ``(ΦᵀΦ)⁻¹ Φᵀdiag(e²)Φ (ΦᵀΦ)⁻¹ · N/(N−K)``, as
GL's leaf refit. On uniform masks the characters are orthonormal, so the population solution
is exactly ``f̂(S)`` and the residual is only the unfound energy. Moments are accumulated on
device in fixed-size chunks; the support is padded with inactive (zero) columns to a power of
two (a multiple of 256 above 512) so that a second call with another support size rarely
compiles again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from actspec_jax.solvers.compressive.design import structured_characters, subset_rows
from actspec_jax.transforms.indexing import characters

__all__ = ["CountedFit", "fit_characters", "least_squares", "peeled_characters", "predict"]

CHUNK = 1024


@functools.partial(jax.jit, static_argnames=("meat",))
def _moments(masks, values, weights, member, active, coef, *, meat: bool):
    def step(carry, chunk):
        x, v, w = chunk
        phi = characters(x, member) * active[None, :] * w[:, None]
        if meat:
            e = (v - phi @ coef) * w
            return carry + (phi * (e * e)[:, None]).T @ phi, None
        gram, xty = carry
        return (gram + phi.T @ phi, xty + phi.T @ (v * w)), None

    k = member.shape[0]
    chunks = (masks.reshape(-1, CHUNK, masks.shape[1]), values.reshape(-1, CHUNK), weights.reshape(-1, CHUNK))
    if meat:
        init = jnp.zeros((k, k), jnp.float32)
    else:
        init = (jnp.zeros((k, k), jnp.float32), jnp.zeros((k,), jnp.float32))
    out, _ = jax.lax.scan(step, init, chunks)
    return out


@jax.jit
def _predict(masks: jax.Array, member: jax.Array, coef: jax.Array) -> jax.Array:
    return characters(masks, member) @ coef


def predict(masks: Any, subsets: list, coef: Any, n: int) -> np.ndarray:
    """``Σ_s c_s χ_{S_s}(x)`` at ``masks: float[N, n]`` (±1) → ``float64[N]``.

    The terms are padded with zero coefficients to :func:`_padded_width`, so fits with another
    number of terms (a second call with another key) reuse the compiled evaluation.
    """
    width = _padded_width(len(subsets))
    member = np.zeros((width, n), np.float32)
    for row, subset in enumerate(subsets):
        member[row, list(subset)] = 1.0
    padded = np.zeros(width, np.float32)
    padded[: len(subsets)] = np.asarray(coef, np.float64)
    out = _predict(jnp.asarray(masks, jnp.float32), jnp.asarray(member), jnp.asarray(padded))
    return np.asarray(out, np.float64)


def _padded_width(k: int) -> int:
    """Columns compiled for ``k``: a power of two up to 512, then a multiple of 256 (a power of
    two at 1250 columns would be 2048, 2.7× the Gram work, for fewer compilations)."""
    if k <= 512:
        return 1 << max(4, int(np.ceil(np.log2(max(k, 1)))))
    return -(-k // 256) * 256


def _solve(gram: np.ndarray, xty: np.ndarray, inverse: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(coef, (ΦᵀΦ)⁻¹ or None)``: Cholesky when the Gram is well conditioned (``K³/3``; an
    ``eigh`` took 38 s at ``K = 5000``), else the eigenvalue pseudo-inverse (aliased columns)."""
    scale = max(float(np.max(np.diag(gram), initial=0.0)), 1.0)
    try:
        factor = scipy.linalg.cho_factor(gram, lower=True, check_finite=False)
        if float(np.min(np.abs(np.diag(factor[0])))) ** 2 > 1e-9 * scale:
            coef = scipy.linalg.cho_solve(factor, xty, check_finite=False)
            eye = np.eye(gram.shape[0])
            bread = scipy.linalg.cho_solve(factor, eye, check_finite=False) if inverse else None
            return coef, bread
    except np.linalg.LinAlgError:
        pass
    vals, vecs = np.linalg.eigh(gram)
    inv = np.where(vals > 1e-9 * max(vals.max(), 1.0), 1.0 / np.maximum(vals, 1e-300), 0.0)
    bread = (vecs * inv) @ vecs.T
    return bread @ xty, bread


def least_squares(
    masks: Any, values: np.ndarray, support: np.ndarray, *, stderr: str = "hc1"
) -> tuple[np.ndarray, np.ndarray, float]:
    """Coefficients, standard errors and the residual mean square of ``support: bool[K, n]``.

    ``stderr``: ``'hc1'`` (the sandwich of the module docstring), ``'classical'``
    (``s²·diag (ΦᵀΦ)⁻¹``, no second pass over the data) or ``'none'`` (zeros; coefficients only,
    for intermediate fits).
    """
    count, n = int(masks.shape[0]), int(masks.shape[1])
    k = support.shape[0]
    width = _padded_width(k)
    padded = -(-count // CHUNK) * CHUNK
    member = np.zeros((width, n), bool)
    member[:k] = support
    active = np.zeros(width, np.float32)
    active[:k] = 1.0
    weights = np.zeros(padded, np.float32)
    weights[:count] = 1.0
    x = np.ones((padded, n), np.float32)
    x[:count] = np.asarray(masks)
    v = np.zeros(padded, np.float32)
    v[:count] = values
    args = (jnp.asarray(x), jnp.asarray(v), jnp.asarray(weights), jnp.asarray(member), jnp.asarray(active))
    gram, xty = _moments(*args, jnp.zeros(width, jnp.float32), meat=False)
    gram = np.asarray(gram, np.float64)[:k, :k]
    xty = np.asarray(xty, np.float64)[:k]
    coef, bread = _solve(gram, xty, inverse=stderr != "none")
    fitted_sq = float(coef @ gram @ coef)
    rss = max(float((np.asarray(values, np.float64) ** 2).sum()) - 2 * float(coef @ xty) + fitted_sq, 0.0)
    if bread is None:
        return coef, np.zeros(k), rss / max(count, 1)
    if stderr == "classical":
        var = rss / max(count - k, 1) * np.diag(bread)
    else:
        full = np.zeros(width, np.float32)
        full[:k] = coef
        meat = np.asarray(_moments(*args, jnp.asarray(full), meat=True), np.float64)[:k, :k]
        var = ((bread @ meat) * bread).sum(axis=1) * count / max(count - k, 1)
    return coef, np.sqrt(np.maximum(var, 0.0)), rss / max(count, 1)


def fit_characters(
    phi: np.ndarray, values: np.ndarray, *, stderr: str = "hc1"
) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`least_squares` on explicit characters ``phi: float[N, K]`` (the refit of a plan whose
    masks are not kept: :func:`~.design.structured_characters` and the uniform rows' columns), in
    float64 on the host — ``K`` is the peeled support, small next to ``N``."""
    x = np.asarray(phi, np.float64)
    v = np.asarray(values, np.float64)
    count, k = x.shape
    gram, xty = x.T @ x, x.T @ v
    coef, bread = _solve(gram, xty, inverse=stderr != "none")
    resid = v - x @ coef
    mse = float(resid @ resid) / max(count, 1)
    if bread is None:
        return coef, np.zeros(k), mse
    if stderr == "classical":
        var = mse * count / max(count - k, 1) * np.diag(bread)
    else:
        meat = (x * (resid * resid)[:, None]).T @ x
        var = ((bread @ meat) * bread).sum(axis=1) * count / max(count - k, 1)
    return coef, np.sqrt(np.maximum(var, 0.0)), mse


def peeled_characters(codes: list, held: Any, subsets: list, b: int) -> np.ndarray:
    """``float32[N, K]``: the characters of ``subsets`` on the refit's rows — every round's of
    ``codes`` (:class:`~.multiton.Code`), then the uniform rows ``held``
    (:class:`~.stream.UniformRows`) — from the designs and the uniform rows' columns, without
    the masks (memory ``N·K``)."""
    n = held.n
    rows = subset_rows(subsets, n)
    parts = [structured_characters(c.tables, rows, b) for c in codes]
    elements = np.unique(rows[rows < n])
    bits = np.zeros((held.count, elements.size + 1), bool)  # last column: the pad (never set)
    bits[:, :-1] = held.columns(elements)
    index = np.where(rows < n, np.searchsorted(elements, np.minimum(rows, n - 1)), elements.size)
    parity = np.bitwise_xor.reduce(bits[:, index], axis=-1)  # [held, K]
    parts.append(np.where(parity, -1.0, 1.0).astype(np.float32))
    return np.concatenate(parts)


class CountedFit:
    """A refit ``fit`` that counts its host syncs (the Gram, and the meat for HC1 errors)."""

    def __init__(self, fit: Callable[..., Any]):
        self.fit, self.syncs = fit, 0

    def __call__(self, masks: Any, values: np.ndarray, subsets: list, n: int, stderr: str = "hc1") -> Any:
        self.syncs += 1 + (stderr == "hc1")
        return self.fit(masks, values, subsets, n, stderr)
