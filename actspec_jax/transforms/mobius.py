"""Möbius transforms and the Fourier ↔ Möbius change of basis, dense and sparse.

**Two bases of a pseudo-Boolean function.** Our spectra use ±1 masks (``x_i = +1`` kept,
see :mod:`actspec_jax.transforms.indexing`) and the Fourier basis
``f(x) = Σ_R f̂(R) χ_R(x)``, ``χ_R(x) = ∏_{i∈R} x_i``. Game theory (shapiq, SPEX) uses
0/1 coalitions ``z`` with ``z_i = 1`` = player ``i`` present, the game
``g(T) = f(x)`` with ``x_i = +1`` for ``i ∈ T`` and ``−1`` otherwise (``g(∅)``: every
neuron ablated), and its Möbius coefficients (Harsanyi dividends)

    g(T) = Σ_{U⊆T} a(U),        a(T) = Σ_{U⊆T} (−1)^{|T|−|U|} g(U)         (Rota 1964),

i.e. ``f = Σ_T a(T) ∏_{i∈T} z_i``. With ``x_i = 2 z_i − 1``,

    χ_R = ∏_{i∈R} (2 z_i − 1) = Σ_{T⊆R} 2^{|T|} (−1)^{|R|−|T|} z^T
      ⇒  a(T) = (−2)^{|T|} Σ_{R⊇T} (−1)^{|R|} f̂(R),                          (F→M)

and with ``z_i = (1 + x_i)/2``, ``z^T = 2^{−|T|} Σ_{R⊆T} χ_R``, so

      f̂(R) = Σ_{T⊇R} 2^{−|T|} a(T).                                            (M→F)

**Dense arrays** ``float[..., 2^n]`` are indexed by subset bitmask ``Σ_{i∈S} 2^i`` for
Fourier and Möbius coefficients alike, and a *game table* ``g[..., T]`` by the bitmask of
the **present** players. Our value tables ``v[k]`` index masks by their *ablated*
neurons, so ``g[T] = v[(2^n − 1) − T]``: :func:`game_table` reverses the last axis.
Every transform here is a Kronecker product of one 2×2 matrix per variable, computed
like :func:`~actspec_jax.transforms.wht.fwht`: either ``n`` butterfly passes (``radix2``,
exactly ``n·2^{n−1}`` additions) or a few passes of small dense blocks (``kronecker``,
matrix-unit friendly). All are batched over leading axes and jit-compiled.

**Sparse terms** (a :class:`~actspec_jax.Spectrum` or :class:`SparseTerms` of ``K``
subsets of any ``n``, bit-packed): a term of size ``d`` expands into its ``2^d`` subsets
(F→M) or the ``2^d`` subsets of a Möbius term become Fourier terms (M→F); the cost is
``O(K · 2^d · ⌈n/32⌉)`` — the size of the output (one parity of degree ``d`` has ``2^d``
Möbius terms, so no conversion can do better) — and never ``2^n``. Interaction indices of
order ``k`` (:mod:`actspec_jax.analysis.indices`) need only the ``Σ_{s≤k} C(d, s)`` small subsets of
each term: polynomial in ``K`` and ``d``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.transforms.indexing import (
    WORD_BITS,
    num_words,
    packed_from_tuples,
    unpack_subsets,
)

__all__ = [
    "MAX_SPARSE_EXPANSION",
    "SparseTerms",
    "fourier_to_moebius_dense",
    "fourier_to_moebius_sparse",
    "game_table",
    "inverse_moebius_transform",
    "moebius_to_fourier_dense",
    "moebius_to_fourier_sparse",
    "moebius_transform",
    "subset_sum",
    "superset_sum",
]

Method = Literal["auto", "kronecker", "radix2"]
Factor = tuple[float, float, float, float]  # 2×2 matrix [[m00, m01], [m10, m11]], row = output bit

# out[S] = Σ_R ∏_i F[S_i, R_i] in[R] for these per-variable factors F:
_ZETA: Factor = (1.0, 0.0, 1.0, 1.0)  # Σ_{U⊆T}
_MOEBIUS: Factor = (1.0, 0.0, -1.0, 1.0)  # Σ_{U⊆T} (−1)^{|T|−|U|}
_SUPERSET: Factor = (1.0, 1.0, 0.0, 1.0)  # Σ_{R⊇S}
_F2M: Factor = (1.0, -1.0, 0.0, 2.0)  # (F→M)
_M2F: Factor = (1.0, 0.5, 0.0, 0.5)  # (M→F)

MAX_SPARSE_EXPANSION = 1 << 26
"""Largest number of (term, subset) pairs a sparse conversion will enumerate."""


# --------------------------------------------------------------------------- dense


def _check_length(length: int) -> int:
    bits = int(length).bit_length() - 1
    if length < 1 or (1 << bits) != length:
        raise ActSpecError(
            f"a dense table over n variables has a last axis of length 2^n, got {length}. Check "
            "which axis holds the subsets."
        )
    return bits


def _block_matrix(factor: Factor, bits: int) -> np.ndarray:
    f = np.asarray(factor, np.float64).reshape(2, 2)
    out = np.ones((1, 1))
    for _ in range(bits):
        out = np.kron(f, out)  # keeps bit b of the block index on variable b
    return out


def _split(bits: int, block: int) -> tuple[int, ...]:
    if bits == 0:
        return ()
    passes = -(-bits // block)
    base, extra = divmod(bits, passes)
    return tuple(base + (1 if i < extra else 0) for i in range(passes))


def _kronecker(x: jax.Array, factor: Factor, bits: int, block: int) -> jax.Array:
    for k in _split(bits, block):
        m = jnp.asarray(_block_matrix(factor, k), x.dtype)
        x = x.reshape((x.shape[0], 1 << k, -1))
        # Apply the factor to the leading k bits, then rotate them to the back: after all
        # passes every bit has been transformed once and the original order is restored.
        x = jnp.einsum("ij,bjr->bri", m, x, precision=jax.lax.Precision.HIGHEST)
        x = x.reshape((x.shape[0], -1))
    return x


def _radix2(x: jax.Array, factor: Factor, bits: int) -> jax.Array:
    m00, m01, m10, m11 = (float(v) for v in factor)
    for i in range(bits):
        x = x.reshape((x.shape[0], -1, 2, 1 << i))
        lo, hi = x[:, :, 0], x[:, :, 1]
        x = jnp.stack([m00 * lo + m01 * hi, m10 * lo + m11 * hi], axis=2)
    return x.reshape((x.shape[0], -1))


@functools.partial(jax.jit, static_argnames=("factor", "method", "block_bits"))
def _transform(values: jax.Array, factor: Factor, method: Method, block_bits: int | None) -> jax.Array:
    if not jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(jnp.float32)
    bits = _check_length(values.shape[-1])
    batch = values.shape[:-1]
    x = values.reshape((-1, 1 << bits))
    if method == "radix2":
        x = _radix2(x, factor, bits)
    elif method in ("auto", "kronecker"):
        block = block_bits if block_bits is not None else (5 if jax.default_backend() == "cpu" else 7)
        if block < 1:
            raise ActSpecError(f"block_bits must be >= 1, got {block}.")
        x = _kronecker(x, factor, bits, block)
    else:
        raise ActSpecError(f"unknown method {method!r}; use 'auto', 'kronecker' or 'radix2'.")
    return x.reshape((*batch, 1 << bits))


def _dense(name: str, factor: Factor, doc: str) -> Callable[..., jax.Array]:
    def transform(values: Any, *, method: Method = "auto", block_bits: int | None = None) -> jax.Array:
        return _transform(jnp.asarray(values), factor, method, block_bits)

    transform.__doc__ = (
        doc
        + """

    Args:
      values: ``float[..., 2^n]`` (float32, or float64 under ``jax_enable_x64``), batched over
        leading axes; indexed by subset bitmask.
      method: ``"kronecker"`` (blocks of ≤ ``block_bits`` variables per pass, matrix units),
        ``"radix2"`` (``n`` butterfly passes) or ``"auto"`` (kronecker).
      block_bits: variables per Kronecker pass (default 5 on CPU, 7 on accelerators).

    Returns:
      ``float[..., 2^n]`` in the same subset-index order; jit-compiled, cost ``O(n 2^n)``.
    """
    )
    transform.__name__ = transform.__qualname__ = name
    return transform


subset_sum = _dense("subset_sum", _ZETA, "Zeta transform over subsets: ``out[T] = Σ_{U⊆T} values[U]``.")
superset_sum = _dense(
    "superset_sum", _SUPERSET, "Zeta transform over supersets: ``out[S] = Σ_{R⊇S} values[R]``."
)
moebius_transform = _dense(
    "moebius_transform",
    _MOEBIUS,
    "Fast Möbius transform of a game table: ``a[T] = Σ_{U⊆T} (−1)^{|T|−|U|} g[U]``.\n\n"
    "    ``g`` is indexed by the bitmask of present players (see :func:`game_table`).",
)
inverse_moebius_transform = _dense(
    "inverse_moebius_transform",
    _ZETA,
    "Inverse fast Möbius transform: the game ``g[T] = Σ_{U⊆T} a[U]`` from its Möbius coefficients.",
)
fourier_to_moebius_dense = _dense(
    "fourier_to_moebius_dense",
    _F2M,
    "Möbius coefficients from a dense Fourier spectrum: ``a[T] = (−2)^{|T|} Σ_{R⊇T} (−1)^{|R|} f̂[R]``.",
)
moebius_to_fourier_dense = _dense(
    "moebius_to_fourier_dense",
    _M2F,
    "Fourier spectrum from dense Möbius coefficients: ``f̂[R] = Σ_{T⊇R} 2^{−|T|} a[T]``.",
)


def game_table(value_table: Any) -> jax.Array:
    """Game table ``g[..., T]`` (bit ``i`` of ``T`` set ⇔ player ``i`` present) from our value
    table ``v[..., k]`` (bit ``i`` of ``k`` set ⇔ neuron ``i`` ablated): ``g[T] = v[2^n − 1 − T]``.

    The map is its own inverse.
    """
    values = jnp.asarray(value_table)
    _check_length(values.shape[-1])
    return values[..., ::-1]


# --------------------------------------------------------------------------- sparse


class SparseTerms(NamedTuple):
    """Sparse coefficients in some basis: ``n`` variables, bit-packed ``subsets uint32[K, W]``
    (the packing of :mod:`actspec_jax.transforms.indexing`) and ``coefficients float64[K]``.

    :func:`fourier_to_moebius_sparse` returns Möbius coefficients in this form; a
    :class:`~actspec_jax.Spectrum` has the same three fields and is accepted wherever
    ``SparseTerms`` is.
    """

    n: int
    subsets: np.ndarray
    coefficients: np.ndarray

    @classmethod
    def from_dict(cls, terms: Mapping[tuple[int, ...], float], n: int) -> SparseTerms:
        """From ``{subset tuple: coefficient}`` (validates that every neuron is in ``0..n−1``)."""
        keys = [tuple(int(i) for i in k) for k in terms]
        try:
            packed = packed_from_tuples(keys, n)
        except ValueError as err:
            raise ActSpecError(f"{err} Every subset must lie in 0..n−1 = 0..{n - 1}.") from err
        coefs = np.asarray([float(terms[k]) for k in terms], np.float64)
        return cls(int(n), packed, coefs)

    def subset_tuples(self) -> list[tuple[int, ...]]:
        member = unpack_subsets(np.asarray(self.subsets), self.n)
        return [tuple(int(i) for i in np.flatnonzero(row)) for row in member]

    def to_dict(self) -> dict[tuple[int, ...], float]:
        """``{sorted subset tuple: coefficient}``."""
        return {s: float(c) for s, c in zip(self.subset_tuples(), np.asarray(self.coefficients))}


def check_terms(terms: Any, what: str = "spectrum") -> tuple[int, np.ndarray, np.ndarray]:
    """Validate ``(n, packed subsets, coefficients)`` of a spectrum or :class:`SparseTerms`.

    Raises :class:`ActSpecError` if the packing does not match ``n`` or a subset names a
    neuron ``≥ n`` (e.g. a spectrum of a larger problem relabelled by hand).
    """
    n = int(terms.n)
    if n < 1:
        raise ActSpecError(f"{what} has n={n}; it needs at least one variable.")
    packed = np.asarray(terms.subsets)
    coefs = np.asarray(terms.coefficients, np.float64)
    if packed.ndim != 2 or packed.dtype != np.uint32 or packed.shape != (coefs.shape[0], num_words(n)):
        raise ActSpecError(
            f"{what}: subsets must be uint32[K, {num_words(n)}] bit-packed for n={n} with one row per "
            f"coefficient; got {packed.dtype}{list(packed.shape)} for {coefs.shape[0]} coefficients."
        )
    spare = num_words(n) * WORD_BITS - n
    if spare and packed.size:
        high = np.uint32(((1 << WORD_BITS) - 1) ^ ((1 << (WORD_BITS - spare)) - 1))
        bad = np.flatnonzero(packed[:, -1] & high)
        if bad.size:
            row = int(bad[0])
            member = unpack_subsets(packed[row : row + 1], num_words(n) * WORD_BITS)[0]
            names = [int(i) for i in np.flatnonzero(member)]
            raise ActSpecError(
                f"{what} term {row} names neurons {names}, but the {what} has n={n} (neurons "
                f"0..{n - 1}). The subsets exceed the problem's size: rebuild it for the right n."
            )
    if not np.all(np.isfinite(coefs)):
        raise ActSpecError(f"{what} has non-finite coefficients.")
    return n, packed, coefs


@functools.lru_cache(maxsize=256)
def sub_patterns(d: int, max_size: int | None = None) -> np.ndarray:
    """``bool[P, d]``: every subset of ``d`` positions with at most ``max_size`` members,
    ordered by size then lexicographically."""
    top = d if max_size is None else min(d, max_size)
    rows = []
    for size in range(top + 1):
        for combo in itertools.combinations(range(d), size):
            row = np.zeros(d, bool)
            row[list(combo)] = True
            rows.append(row)
    return np.asarray(rows, bool).reshape(len(rows), d)


def expand_terms(
    n: int,
    packed: np.ndarray,
    coefs: np.ndarray,
    weight: Callable[[int, np.ndarray], np.ndarray],
    max_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distribute every term ``R`` onto its subsets ``S ⊆ R`` (``|S| ≤ max_size``).

    ``out[S] = Σ_R weight(|R|, |S|) · coef[R]`` over the listed terms; ``weight(d, sizes)``
    maps a term size and an array of sub-sizes to weights. Returns unique packed subsets
    ``uint32[M, W]`` and their summed values ``float64[M]``, sorted by (size, subset).
    Cost ``O(Σ_R #patterns(|R|) · W)``.
    """
    words = num_words(n)
    member = unpack_subsets(packed, n) if packed.size else np.zeros((0, n), bool)
    degrees = member.sum(axis=1)
    total = sum(
        sub_patterns(int(d), max_size).shape[0] * int((degrees == d).sum()) for d in np.unique(degrees)
    )
    if total > MAX_SPARSE_EXPANSION:
        raise ActSpecError(
            f"expanding {packed.shape[0]} terms (largest size {int(degrees.max())}) into their subsets "
            f"would enumerate {total} pairs, more than {MAX_SPARSE_EXPANSION}. Restrict the terms "
            "(spectrum.top(k)) or ask for a lower interaction order."
        )
    out_words, out_vals = [], []
    for d in np.unique(degrees):
        d = int(d)
        rows = np.flatnonzero(degrees == d)
        patterns = sub_patterns(d, max_size)
        sizes = patterns.sum(axis=1)
        w = np.asarray(weight(d, sizes), np.float64)
        keep = w != 0
        patterns, w = patterns[keep], w[keep]
        if patterns.shape[0] == 0:
            continue
        pos = np.nonzero(member[rows])[1].reshape(rows.size, d)  # positions, ascending
        acc = np.zeros((rows.size, patterns.shape[0], words), np.uint64)
        ri = np.arange(rows.size)[:, None]
        pi = np.arange(patterns.shape[0])[None, :]
        for j in range(d):
            bit = np.uint64(1) << (pos[:, j] % WORD_BITS).astype(np.uint64)
            acc[ri, pi, (pos[:, j] // WORD_BITS)[:, None]] += (
                patterns[None, :, j].astype(np.uint64) * bit[:, None]
            )
        out_words.append(acc.reshape(-1, words).astype(np.uint32))
        out_vals.append((coefs[rows][:, None] * w[None, :]).reshape(-1))
    if not out_words:
        return np.zeros((0, words), np.uint32), np.zeros(0, np.float64)
    all_words = np.concatenate(out_words)
    uniq, inverse = np.unique(all_words, axis=0, return_inverse=True)
    vals = np.bincount(inverse.reshape(-1), weights=np.concatenate(out_vals), minlength=uniq.shape[0])
    sizes = unpack_subsets(uniq, n).sum(axis=1)
    order = np.lexsort((*[uniq[:, w] for w in range(words)], sizes))
    return uniq[order], vals[order]


def fourier_to_moebius_sparse(spectrum: Any) -> SparseTerms:
    """Möbius coefficients of a sparse Fourier expansion (a :class:`~actspec_jax.Spectrum`).

    Each term ``f̂(R) χ_R`` contributes ``2^{|T|} (−1)^{|R|−|T|} f̂(R)`` to ``a(T)`` for every
    ``T ⊆ R`` (formula F→M of the module docstring). Exact for the listed terms; cost
    ``O(Σ_R 2^{|R|})``. Exact zeros from cancellation are kept.
    """
    n, packed, coefs = check_terms(spectrum)
    sub, vals = expand_terms(
        n, packed, coefs, lambda d, t: np.ldexp(1.0, t.astype(np.int64)) * np.where((d - t) % 2, -1.0, 1.0)
    )
    return SparseTerms(n, sub, vals)


def moebius_to_fourier_sparse(terms: Any, **spectrum_kwargs: Any) -> Any:
    """Fourier :class:`~actspec_jax.Spectrum` of sparse Möbius coefficients.

    Each ``a(T) z^T`` contributes ``2^{−|T|} a(T)`` to ``f̂(R)`` for every ``R ⊆ T`` (formula
    M→F). ``spectrum_kwargs`` (labels, solver, problem, …) pass to :meth:`Spectrum.build`.
    """
    from actspec_jax.spectrum import Spectrum

    n, packed, coefs = check_terms(terms, "Möbius terms")
    sub, vals = expand_terms(n, packed, coefs, lambda d, t: np.full(t.shape, 2.0**-d))
    return Spectrum.build(n, sub, vals, **spectrum_kwargs)
