"""Non-negative dictionaries (CRAFT-style NMF), JAX-native and jit-compiled.

Given non-negative activations ``A float[R, N]`` (rows = inputs, or tokens / crops; columns
= neurons), find codes ``U float[R, k] ≥ 0`` and a dictionary ``W float[k, N] ≥ 0`` (row
``W_j`` = concept ``j``, a direction in neuron space) minimising

    L(U, W) = ½‖A − UW‖²_F
              + α·ρ·N·‖U‖₁ + ½·α·(1 − ρ)·N·‖U‖²_F
              + α·ρ·R·‖W‖₁ + ½·α·(1 − ρ)·R·‖W‖²_F

(``α = alpha``, ``ρ = l1_ratio``). This is scikit-learn's ``NMF`` objective with the
Frobenius loss and ``alpha_W = alpha_H = α``; CRAFT (Fel et al. 2023, used by Colin et
al. 2024) calls it with ``alpha_W = 1e-2`` and the default ``l1_ratio = 0``, which are our
defaults. ``l1_ratio > 0`` makes the codes sparse.

Solver: HALS (hierarchical alternating least squares, i.e. exact block-coordinate descent
on one column of ``U`` or one row of ``W`` at a time, Cichocki & Phan 2009). Each block
update has the closed form ``u_j ← max(0, (R_j w_j − λ₁) / (‖w_j‖² + λ₂))`` with ``R_j``
the residual without concept ``j``; the objective never increases. Iteration stops when
the relative decrease of ``L`` falls below ``tol`` or after ``max_iter`` sweeps.

:func:`encode` solves the convex problem for ``U`` alone with ``W`` fixed (non-negative
least squares by default, ``alpha = 0``) with the same block updates.

Reconstruction error is reported as the relative Frobenius error ``‖A − UW‖_F / ‖A‖_F``.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = [
    "INITS",
    "NMFResult",
    "NegativeActivationError",
    "encode",
    "fit_nmf",
    "normalize_dictionary",
    "relative_error",
]

#: The NMF initialisations :func:`fit_nmf` accepts.
INITS = ("nndsvdar", "nndsvda", "random")
Init = Literal["nndsvdar", "nndsvda", "random"]
_TINY = 1e-12


class NegativeActivationError(ActSpecError):
    """Activations with negative entries given to a non-negative dictionary."""


class NMFResult(NamedTuple):
    """A fitted non-negative dictionary (a pytree of arrays).

    Attributes:
      codes: ``float32[R, k]`` non-negative concept activations ``U`` of the fitted rows.
      dictionary: ``float32[k, N]`` non-negative concepts ``W`` (one per row).
      relative_error: ``‖A − UW‖_F / ‖A‖_F`` on the fitted rows (scalar).
      objective: final value of ``L(U, W)`` (scalar).
      iterations: number of HALS sweeps run (int scalar).
      converged: whether the relative decrease fell below ``tol`` before ``max_iter``.
    """

    codes: jax.Array
    dictionary: jax.Array
    relative_error: jax.Array
    objective: jax.Array
    iterations: jax.Array
    converged: jax.Array


# --------------------------------------------------------------------------- validation


def check_activations(A: jax.Array, *, what: str = "activations") -> jax.Array:
    """Validate ``A float[R, N]``: 2-D, floating, finite and (when concrete) non-negative."""
    A = jnp.asarray(A)
    if A.ndim != 2:
        raise ActSpecError(
            f"{what} must be a matrix [rows, neurons], got shape {tuple(A.shape)}. Flatten extra "
            "axes (tokens, positions) into rows first: A.reshape(-1, A.shape[-1])."
        )
    if not jnp.issubdtype(A.dtype, jnp.floating):
        A = A.astype(jnp.float32)
    if not isinstance(A, jax.core.Tracer):
        values = np.asarray(A)
        if not np.all(np.isfinite(values)):
            raise ActSpecError(f"{what} contain NaN or inf; check the model and the inputs.")
        low = float(values.min()) if values.size else 0.0
        if low < 0.0:
            row, col = np.unravel_index(int(np.argmin(values)), values.shape)
            raise NegativeActivationError(
                f"{what} must be non-negative for a non-negative dictionary, but the minimum is "
                f"{low:.4g} (row {row}, neuron {col}). Cut the model after a ReLU (e.g. 'relu_0' "
                "rather than 'dense_0'), or shift the activations to be non-negative "
                "(shift='min' in the concept tools subtracts each neuron's minimum)."
            )
    return A


def _check_k(num_concepts: int, rows: int) -> int:
    k = int(num_concepts)
    if k < 1:
        raise ActSpecError(f"num_concepts must be at least 1, got {num_concepts}.")
    if k > rows:
        raise ActSpecError(
            f"asked for {k} concepts but there are only {rows} rows (inputs or tokens) to fit them "
            f"on; use at most {rows} concepts or give more inputs."
        )
    return k


# --------------------------------------------------------------------------- kernels


def _hals_sweep(X: jax.Array, XtY: jax.Array, gram: jax.Array, l1: float, l2: float) -> jax.Array:
    """Update each column ``j`` of ``X [R, k]`` in turn for ``min ½‖Y − X Bᵀ‖² + pen``.

    ``XtY = Y B`` is ``[R, k]`` and ``gram = BᵀB`` is ``[k, k]``.
    """

    def body(j, X):
        g = gram[:, j]
        num = XtY[:, j] - X @ g + X[:, j] * g[j] - l1
        den = g[j] + l2
        col = jnp.where(den > _TINY, jnp.maximum(num, 0.0) / jnp.maximum(den, _TINY), 0.0)
        return X.at[:, j].set(col)

    return jax.lax.fori_loop(0, X.shape[1], body, X)


def _penalties(alpha: float, l1_ratio: float, scale: int) -> tuple[float, float]:
    return alpha * l1_ratio * scale, alpha * (1.0 - l1_ratio) * scale


def _objective(A_sq, UtA, UtU, U, W, pens) -> jax.Array:
    """``L(U, W)`` from ``‖A‖²``, ``UᵀA``, ``UᵀU`` (no ``R·N`` product needed)."""
    l1u, l2u, l1w, l2w = pens
    fit = 0.5 * (A_sq - 2.0 * jnp.sum(UtA * W) + jnp.sum(UtU * (W @ W.T)))
    pen_u = l1u * jnp.sum(U) + 0.5 * l2u * jnp.sum(U * U)
    pen_w = l1w * jnp.sum(W) + 0.5 * l2w * jnp.sum(W * W)
    return fit + pen_u + pen_w


def _init_factors(A: jax.Array, k: int, init: str, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    R, N = A.shape
    mean = jnp.mean(A)
    if init == "random":
        scale = jnp.sqrt(mean / k)
        ku, kw = jax.random.split(key)
        U = scale * jnp.abs(jax.random.normal(ku, (R, k), A.dtype))
        W = scale * jnp.abs(jax.random.normal(kw, (k, N), A.dtype))
        return U, W
    # NNDSVD (Boutsidis & Gallopoulos 2008): the positive or negative part of each singular pair.
    left, sing, right = jnp.linalg.svd(A, full_matrices=False)
    x, y, s = left[:, :k].T, right[:k], sing[:k]  # x [k, R], y [k, N]
    xp, xn, yp, yn = jnp.maximum(x, 0), jnp.maximum(-x, 0), jnp.maximum(y, 0), jnp.maximum(-y, 0)
    nxp, nxn = jnp.linalg.norm(xp, axis=1), jnp.linalg.norm(xn, axis=1)
    nyp, nyn = jnp.linalg.norm(yp, axis=1), jnp.linalg.norm(yn, axis=1)
    mp, mn = nxp * nyp, nxn * nyn
    pos = mp >= mn
    u = jnp.where(pos[:, None], xp / jnp.maximum(nxp, _TINY)[:, None], xn / jnp.maximum(nxn, _TINY)[:, None])
    v = jnp.where(pos[:, None], yp / jnp.maximum(nyp, _TINY)[:, None], yn / jnp.maximum(nyn, _TINY)[:, None])
    sigma = jnp.sqrt(s * jnp.where(pos, mp, mn))
    # the leading pair is non-negative up to a global sign (Perron–Frobenius)
    sigma = sigma.at[0].set(jnp.sqrt(s[0]))
    u = u.at[0].set(jnp.abs(x[0]))
    v = v.at[0].set(jnp.abs(y[0]))
    U, W = (u * sigma[:, None]).T, v * sigma[:, None]
    if init == "nndsvda":
        U, W = jnp.where(U > 0, U, mean), jnp.where(W > 0, W, mean)
    else:  # nndsvdar: zeros become small random values (key-dependent restarts)
        ku, kw = jax.random.split(key)
        U = jnp.where(U > 0, U, mean / 100 * jax.random.uniform(ku, U.shape, A.dtype))
        W = jnp.where(W > 0, W, mean / 100 * jax.random.uniform(kw, W.shape, A.dtype))
    return U, W


@functools.partial(jax.jit, static_argnames=("k", "init", "max_iter"))
def _fit(
    A: jax.Array,
    key: jax.Array,
    *,
    k: int,
    init: str,
    alpha: jax.Array,
    l1_ratio: jax.Array,
    tol: jax.Array,
    max_iter: int,
) -> NMFResult:
    R, N = A.shape
    l1u, l2u = _penalties(alpha, l1_ratio, N)
    l1w, l2w = _penalties(alpha, l1_ratio, R)
    pens = (l1u, l2u, l1w, l2w)
    A_sq = jnp.sum(A * A)
    U0, W0 = _init_factors(A, k, init, key)

    def sweep(U, W):
        U = _hals_sweep(U, A @ W.T, W @ W.T, l1u, l2u)
        UtA, UtU = U.T @ A, U.T @ U
        Wt = _hals_sweep(W.T, UtA.T, UtU, l1w, l2w)
        W = Wt.T
        return U, W, _objective(A_sq, UtA, UtU, U, W, pens)

    def cond(state):
        _, _, it, prev, obj = state
        decrease = (prev - obj) / jnp.maximum(jnp.abs(prev), _TINY)
        return (it < max_iter) & ((it < 2) | (decrease > tol))

    def body(state):
        U, W, it, _, obj = state
        U, W, new = sweep(U, W)
        return U, W, it + 1, obj, new

    inf = jnp.asarray(jnp.inf, A.dtype)
    U, W, it, prev, obj = jax.lax.while_loop(cond, body, (U0, W0, jnp.int32(0), inf, inf))
    decrease = (prev - obj) / jnp.maximum(jnp.abs(prev), _TINY)
    return NMFResult(
        codes=U,
        dictionary=W,
        relative_error=relative_error(A, U, W),
        objective=obj,
        iterations=it,
        converged=decrease <= tol,
    )


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _encode(
    A: jax.Array, W: jax.Array, *, alpha: jax.Array, l1_ratio: jax.Array, tol: jax.Array, max_iter: int
) -> jax.Array:
    N = A.shape[1]
    l1, l2 = _penalties(alpha, l1_ratio, N)
    gram = W @ W.T
    AWt = A @ W.T
    k = W.shape[0]
    # warm start: unconstrained least squares, clipped at zero
    ridge = gram + (l2 + 1e-6 * jnp.trace(gram) / k) * jnp.eye(k, dtype=gram.dtype)
    U0 = jnp.maximum(jnp.linalg.solve(ridge, AWt.T).T, 0.0)

    def cond(state):
        _, it, change = state
        return (it < max_iter) & (change > tol)

    def body(state):
        U, it, _ = state
        new = _hals_sweep(U, AWt, gram, l1, l2)
        change = jnp.linalg.norm(new - U) / jnp.maximum(jnp.linalg.norm(new), _TINY)
        return new, it + 1, change

    U, _, _ = jax.lax.while_loop(cond, body, (U0, jnp.int32(0), jnp.asarray(jnp.inf, A.dtype)))
    return U


# --------------------------------------------------------------------------- public API


def relative_error(A: jax.Array, U: jax.Array, W: jax.Array) -> jax.Array:
    """Relative Frobenius reconstruction error ``‖A − UW‖_F / ‖A‖_F`` (0 = perfect)."""
    return jnp.linalg.norm(A - U @ W) / jnp.maximum(jnp.linalg.norm(A), _TINY)


def fit_nmf(
    A: jax.Array,
    num_concepts: int,
    *,
    key: jax.Array,
    alpha: float = 1e-2,
    l1_ratio: float = 0.0,
    init: Init = "nndsvdar",
    tol: float = 1e-4,
    max_iter: int = 500,
) -> NMFResult:
    """Fit ``U·W ≈ A`` with ``U, W ≥ 0`` (see the module docstring for the objective).

    Args:
      A: ``float[R, N]`` non-negative activations (rows = inputs or tokens, columns = neurons).
      num_concepts: ``k``, the number of concepts (``1 ≤ k ≤ R``).
      key: PRNG key for the initialisation (same key → same dictionary).
      alpha: regularisation strength ``α`` (CRAFT: ``1e-2``); ``0`` = plain NMF.
      l1_ratio: ``ρ ∈ [0, 1]``, share of L1 (sparsity) in the penalty; CRAFT uses ``0``.
      init: ``'nndsvdar'`` (NNDSVD, zeros filled with small random values from ``key``),
        ``'nndsvda'`` (zeros filled with the mean, deterministic) or ``'random'``.
      tol: stop when the relative decrease of the objective per sweep is below this.
      max_iter: at most this many HALS sweeps.

    Returns:
      :class:`NMFResult` (codes, dictionary, relative error, objective, iterations, converged).

    Raises:
      NegativeActivationError: if ``A`` has negative entries (cut after a ReLU, or shift).
      ActSpecError: wrong shape, NaN/inf, ``k`` outside ``1..R``, bad settings.
    """
    A = check_activations(A)
    k = _check_k(num_concepts, A.shape[0])
    if init not in INITS:
        raise ActSpecError(f"unknown init {init!r}; use one of {INITS}.")
    if init.startswith("nndsvd") and k > min(A.shape):
        raise ActSpecError(
            f"init={init!r} uses the top {k} singular vectors but A {tuple(A.shape)} has only "
            f"{min(A.shape)}; use init='random' for an overcomplete dictionary."
        )
    _check_penalty(alpha, l1_ratio)
    if int(max_iter) < 1:
        raise ActSpecError(f"max_iter must be >= 1, got {max_iter}.")
    dtype = A.dtype
    return _fit(
        A,
        key,
        k=k,
        init=init,
        alpha=jnp.asarray(alpha, dtype),
        l1_ratio=jnp.asarray(l1_ratio, dtype),
        tol=jnp.asarray(tol, dtype),
        max_iter=int(max_iter),
    )


def encode(
    A: jax.Array,
    dictionary: jax.Array,
    *,
    alpha: float = 0.0,
    l1_ratio: float = 0.0,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> jax.Array:
    """Codes ``U ≥ 0`` of new activations with the dictionary ``W`` fixed.

    Solves ``min_{U ≥ 0} ½‖A − UW‖²_F + α·ρ·N·‖U‖₁ + ½·α·(1 − ρ)·N·‖U‖²_F`` — with the
    default ``alpha = 0`` plain non-negative least squares, row by row — by HALS sweeps
    from the clipped least-squares solution until the relative change of ``U`` is below
    ``tol``. Jittable.

    Args:
      A: ``float[R, N]`` non-negative activations.
      dictionary: ``float[k, N]`` non-negative concepts (``NMFResult.dictionary``).

    Returns:
      ``float[R, k]`` codes.
    """
    A = check_activations(A)
    W = jnp.asarray(dictionary, A.dtype)
    if W.ndim != 2 or W.shape[1] != A.shape[1]:
        raise ActSpecError(
            f"dictionary must be [concepts, neurons] = [k, {A.shape[1]}] to match the activations "
            f"{tuple(A.shape)}, got shape {tuple(W.shape)}."
        )
    if not isinstance(W, jax.core.Tracer) and float(np.min(np.asarray(W))) < 0:
        raise ActSpecError("the dictionary has negative entries; pass a non-negative dictionary W.")
    _check_penalty(alpha, l1_ratio)
    return _encode(
        A,
        W,
        alpha=jnp.asarray(alpha, A.dtype),
        l1_ratio=jnp.asarray(l1_ratio, A.dtype),
        tol=jnp.asarray(tol, A.dtype),
        max_iter=int(max_iter),
    )


def normalize_dictionary(codes: jax.Array, dictionary: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rescale so every concept has unit L2 norm: ``(U·diag‖W_j‖, diag(1/‖W_j‖)·W)``.

    The product ``UW`` is unchanged; afterwards ``u_j`` is the length of concept ``j``'s
    contribution ``u_j W_j``, comparable with a single neuron's activation (a unit vector
    ``e_i``). Dead concepts (``W_j = 0``) stay zero.
    """
    norms = jnp.linalg.norm(dictionary, axis=-1)
    safe = jnp.where(norms > _TINY, norms, 1.0)
    return codes * jnp.where(norms > _TINY, norms, 0.0), dictionary / safe[:, None]


def _check_penalty(alpha: float, l1_ratio: float) -> None:
    if not isinstance(alpha, jax.core.Tracer) and float(alpha) < 0:
        raise ActSpecError(f"alpha must be >= 0, got {alpha}.")
    if not isinstance(l1_ratio, jax.core.Tracer) and not 0.0 <= float(l1_ratio) <= 1.0:
        raise ActSpecError(f"l1_ratio must be in [0, 1], got {l1_ratio}.")
