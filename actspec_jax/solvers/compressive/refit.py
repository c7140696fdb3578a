"""Least-squares refit of a found support on evaluated masks, with sandwich errors (private).

``Φ[i, s] = χ_{S_s}(x_i)``; the coefficients solve ``min ‖v − Φc‖²`` and their
heteroskedasticity-robust (HC1) covariance is ``(ΦᵀΦ)⁻¹ Φᵀdiag(e²)Φ (ΦᵀΦ)⁻¹ · N/(N−K)``, as
GL's leaf refit. On uniform masks the characters are orthonormal, so the population solution
is exactly ``f̂(S)`` and the residual is only the unfound energy. Moments are accumulated on
device in fixed-size chunks; the support is padded with inactive (zero) columns to a power of
two (a multiple of 256 above 512) so that a second call with another support size rarely
compiles again.

**Large supports** (``K >`` :data:`ITERATIVE_ABOVE`, the hybrid refit's thousands of screened
pairs): the explicit Gram costs ``N·K²`` (10¹² multiply-adds at 40k masks × 5,000 columns, 8 s a
fit on 2 cores, six fits a solve). Instead :func:`_cgls` solves the normal equations by conjugate
gradients on the implicit matrix: the pair columns never exist — ``Φ_pairs c = rowsum((X U) ⊙ X)``
with ``U`` the coefficients of the pairs as an upper-triangular ``n × n`` matrix, and
``Φ_pairsᵀ r = (Xᵀ diag(r) X)[i, j]`` — and the other columns (∅, singletons, peeled terms of any
degree) are explicit, so a product costs ``N·(n² + E)``, not ``N·K``. Standard errors then use
``E[(ΦᵀΦ)⁻¹] ≈ I/(N − K)`` for near-orthogonal ±1 characters (the inverse-Wishart mean): HC1 and
classical alike become ``√(Σ e²)/(N − K)``. Checked against the exact HC1 on MNIST ``relu_0`` at
10k evaluations (1,250 columns): exact/approximate between 0.97 and 1.07, median 1.00
(``tests/solvers/test_compressive_engine.py``).
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
#: Supports wider than this are fitted by conjugate gradients (module docstring); the iteration
#: stops at a relative normal-equation residual of :data:`CG_TOL` or after :data:`CG_STEPS` steps.
ITERATIVE_ABOVE, CG_TOL, CG_STEPS = 1024, 1e-6, 200
#: Largest ``float32[N, K]`` of characters the iterative fit materializes (two ``N·K`` products a
#: step); wider fits take the pair columns apart (``N·n²`` a product, :func:`_cgls`).
DENSE_BYTES = 256 << 20
#: Coefficient-only fits (the screening passes: no standard errors) wider than this take
#: :func:`_iterative` too: ~15 steps of ``2·N·K`` instead of the Gram's ``N·K²``.
CG_COEFFICIENTS_ABOVE = 256


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
def _predict(masks: jax.Array, member: jax.Array, coef: jax.Array, pair_i, pair_j, pair_coef) -> jax.Array:
    return characters(masks, member) @ coef + _pair_sum(masks, pair_i, pair_j, pair_coef)


def _pair_sum(x: jax.Array, pair_i: jax.Array, pair_j: jax.Array, coef: jax.Array) -> jax.Array:
    """``Σ_p c_p x_{i_p} x_{j_p}`` per row as ``rowsum((X U) ⊙ X)`` (``U[i_p, j_p] = c_p``)."""
    n = x.shape[1]
    upper = jnp.zeros((n, n), jnp.float32).at[pair_i, pair_j].add(jnp.where(pair_i != pair_j, coef, 0.0))
    return jnp.sum((x @ upper) * x, axis=1)


def _split_pairs(support: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(explicit rows, pair rows, pair_i, pair_j)`` of ``support: bool[K, n]``: the pairs are
    taken apart (:func:`_pair_sum`, ``N·n²`` a product) only when there are more of them than units
    (explicit characters cost ``N·n·K``); both padded to :func:`_padded_width` (``pair_i = pair_j
    = 0`` is an inactive pad)."""
    n = support.shape[1]
    sizes = support.sum(axis=1)
    pairs = np.flatnonzero(sizes == 2)
    if pairs.size <= n:
        pairs = pairs[:0]
    others = np.setdiff1d(np.arange(support.shape[0]), pairs)
    width = _padded_width(pairs.size) if pairs.size else 1
    pair_i, pair_j = np.zeros(width, np.int32), np.zeros(width, np.int32)
    if pairs.size:
        members = np.argwhere(support[pairs])[:, 1].reshape(-1, 2)
        pair_i[: pairs.size], pair_j[: pairs.size] = members[:, 0], members[:, 1]
    return others, pairs, pair_i, pair_j


def predict(masks: Any, subsets: list, coef: Any, n: int) -> np.ndarray:
    """``Σ_s c_s χ_{S_s}(x)`` at ``masks: float[N, n]`` (±1) → ``float64[N]``.

    The terms are padded with zero coefficients to :func:`_padded_width`, so fits with another
    number of terms (a second call with another key) reuse the compiled evaluation; many pairs
    are summed as ``rowsum((X U) ⊙ X)`` (:func:`_split_pairs`).
    """
    support = np.zeros((len(subsets), n), bool)
    for row, subset in enumerate(subsets):
        support[row, list(subset)] = True
    coef = np.asarray(coef, np.float64)
    others, pairs, pair_i, pair_j = _split_pairs(support)
    width = _padded_width(others.size)
    member = np.zeros((width, n), np.float32)
    member[: others.size] = support[others]
    padded = np.zeros(width, np.float32)
    padded[: others.size] = coef[others]
    pair_coef = np.zeros(pair_i.size, np.float32)
    pair_coef[: pairs.size] = coef[pairs]
    out = _predict(
        jnp.asarray(masks, jnp.float32), jnp.asarray(member), jnp.asarray(padded),
        jnp.asarray(pair_i), jnp.asarray(pair_j), jnp.asarray(pair_coef),
    )  # fmt: skip
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
    if k > ITERATIVE_ABOVE or (stderr == "none" and k > CG_COEFFICIENTS_ABOVE):
        return _iterative(masks, values, support, stderr=stderr)
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


@functools.partial(jax.jit, static_argnames=("steps",))
def _cgls(x, explicit, pair_i, pair_j, values, start, *, steps: int):
    """Conjugate gradients on ``min ‖v − Φc‖²`` with ``Φ = [explicit, pairs]`` (module docstring).

    ``x: float32[N, n]`` masks, ``explicit: float32[N, E]``, pairs ``(pair_i, pair_j)`` (``P``
    of them, ``i < j``; padded pairs point at ``(0, 0)`` and are masked), ``values: float32[N]``,
    ``start: float32[E + P]`` the first guess. Returns ``(coef, residual, steps_taken)``."""
    e = explicit.shape[1]
    live = (pair_i != pair_j).astype(jnp.float32)

    def forward(c):
        return explicit @ c[:e] + _pair_sum(x, pair_i, pair_j, c[e:])

    def backward(r):
        moments = (x * r[:, None]).T @ x
        return jnp.concatenate([explicit.T @ r, moments[pair_i, pair_j] * live])

    resid = values - forward(start)
    grad = backward(resid)
    scale = jnp.sqrt(jnp.sum(grad * grad))

    def cond(state):
        _, _, _, gamma, step = state[0], state[1], state[2], state[3], state[5]
        return (step < steps) & (jnp.sqrt(gamma) > CG_TOL * scale)

    def body(state):
        coef, resid, direction, gamma, grad, step = state
        q = forward(direction)
        alpha = gamma / jnp.maximum(jnp.sum(q * q), 1e-30)
        coef = coef + alpha * direction
        resid = resid - alpha * q
        grad = backward(resid)
        new_gamma = jnp.sum(grad * grad)
        direction = grad + (new_gamma / jnp.maximum(gamma, 1e-30)) * direction
        return coef, resid, direction, new_gamma, grad, step + 1

    state = (start, resid, grad, jnp.sum(grad * grad), grad, jnp.int32(0))
    coef, resid, _, _, _, step = jax.lax.while_loop(cond, body, state)
    return coef, values - forward(coef), step


@functools.partial(jax.jit, static_argnames=("steps",))
def _cgls_dense(phi, values, start, *, steps: int):
    """Conjugate gradients on ``min ‖v − Φc‖²`` with ``Φ: float32[N, K]`` materialized (each step
    two products of ``N·K``). Returns ``(coef, residual, steps_taken)``."""
    resid = values - phi @ start
    grad = phi.T @ resid
    scale = jnp.sqrt(jnp.sum(grad * grad))

    def cond(state):
        return (state[5] < steps) & (jnp.sqrt(state[3]) > CG_TOL * scale)

    def body(state):
        coef, resid, direction, gamma, grad, step = state
        q = phi @ direction
        alpha = gamma / jnp.maximum(jnp.sum(q * q), 1e-30)
        coef = coef + alpha * direction
        resid = resid - alpha * q
        grad = phi.T @ resid
        new_gamma = jnp.sum(grad * grad)
        direction = grad + (new_gamma / jnp.maximum(gamma, 1e-30)) * direction
        return coef, resid, direction, new_gamma, grad, step + 1

    state = (start, resid, grad, jnp.sum(grad * grad), grad, jnp.int32(0))
    coef, resid, _, _, _, step = jax.lax.while_loop(cond, body, state)
    return coef, values - phi @ coef, step


def _iterative(
    masks: Any, values: np.ndarray, support: np.ndarray, *, stderr: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`least_squares` for wide supports: :func:`_cgls`, approximate errors (module docstring).

    Values are centred first (the constant column starts at their mean), so float32 iterations
    resolve coefficients far below a large mean (the sentiment layer: mean −6.0, std 0.017)."""
    x = np.asarray(masks, np.float32)
    count = x.shape[0]
    k = support.shape[0]
    if count * _padded_width(k) * 4 <= DENSE_BYTES:  # the characters fit: two N·K products a step
        return _iterative_dense(x, values, support, stderr=stderr)
    others, pairs, pair_i, pair_j = _split_pairs(support)
    width = pair_i.size
    member = np.zeros((_padded_width(others.size), support.shape[1]), np.float32)  # compiled widths
    member[: others.size] = support[others]
    explicit = characters(jnp.asarray(x), jnp.asarray(member)) * (np.arange(member.shape[0]) < others.size)
    v = np.asarray(values, np.float64)
    start = np.zeros(member.shape[0] + width, np.float32)
    empty = np.flatnonzero(support[others].sum(axis=1) == 0)
    if empty.size:
        start[empty[0]] = float(v.mean())
    coef, resid, _ = _cgls(
        jnp.asarray(x), explicit, jnp.asarray(pair_i), jnp.asarray(pair_j),
        jnp.asarray(v, jnp.float32), jnp.asarray(start), steps=CG_STEPS,
    )  # fmt: skip
    coef = np.asarray(coef, np.float64)
    out = np.zeros(k)
    out[others], out[pairs] = coef[: others.size], coef[member.shape[0] : member.shape[0] + pairs.size]
    resid = np.asarray(resid, np.float64)
    rss = float(resid @ resid)
    err = np.zeros(k) if stderr == "none" else np.full(k, np.sqrt(rss) / max(count - k, 1))
    return out, err, rss / max(count, 1)


def _iterative_dense(
    x: np.ndarray, values: np.ndarray, support: np.ndarray, *, stderr: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`_iterative` with every column's characters materialized (:func:`_cgls_dense`)."""
    count, k = x.shape[0], support.shape[0]
    member = np.zeros((_padded_width(k), support.shape[1]), np.float32)
    member[:k] = support
    phi = characters(jnp.asarray(x), jnp.asarray(member)) * (np.arange(member.shape[0]) < k)
    v = np.asarray(values, np.float64)
    start = np.zeros(member.shape[0], np.float32)
    empty = np.flatnonzero(support.sum(axis=1) == 0)
    if empty.size:
        start[empty[0]] = float(v.mean())
    coef, resid, _ = _cgls_dense(phi, jnp.asarray(v, jnp.float32), jnp.asarray(start), steps=CG_STEPS)
    out = np.asarray(coef, np.float64)[:k]
    resid = np.asarray(resid, np.float64)
    rss = float(resid @ resid)
    err = np.zeros(k) if stderr == "none" else np.full(k, np.sqrt(rss) / max(count - k, 1))
    return out, err, rss / max(count, 1)
