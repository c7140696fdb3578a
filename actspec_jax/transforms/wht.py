"""Fast Walsh–Hadamard transform (Sylvester order), batched and jit-compiled.

``fwht(v)[S] = Σ_k v[k] (−1)^{popcount(k & S)}`` over the last axis, whose length must be
``2^n``. With the value table of a pseudo-Boolean function in the index order of
:mod:`actspec_jax.transforms.indexing`, ``fwht(v) / 2^n`` is its Fourier spectrum.
The transform is its own inverse up to ``2^n``: ``ifwht(fwht(v)) == v``.

Two formulations:

* ``"kronecker"`` — ``H_{2^n} = H_{2^{k_1}} ⊗ … ⊗ H_{2^{k_p}}``. Each of the ``p`` passes
  multiplies the leading ``k`` index bits by a small dense Hadamard matrix and rotates
  them to the back (Good's shuffle). Written as a plain 2-D product ``[2^k, R]ᵀ · H`` (rows
  of a batch ride along as the fastest index), a pass is one matrix product whose operand
  transposition the GEMM absorbs: ``p = ⌈n / k⌉`` memory passes instead of ``n``, and the
  work lands on matrix units (MXU / tensor cores). Products run at ``Precision.HIGHEST``
  (default) so float32 stays float32.
* ``"radix2"`` — the textbook ``n`` butterfly passes; simplest, used as a reference.

Memory: at most two arrays of the input's size are live (no ``n``-fold copies);
:func:`fwht_consuming` keeps it at two even when the input is donated.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MAX_WHT_BITS", "default_block_bits", "fwht", "fwht_consuming", "hadamard_matrix", "ifwht"]

MAX_WHT_BITS = 30
Method = Literal["auto", "kronecker", "radix2"]


@functools.lru_cache(maxsize=64)
def _hadamard_numpy(bits: int) -> np.ndarray:
    h = np.ones((1, 1), dtype=np.float64)
    for _ in range(bits):
        h = np.block([[h, h], [h, -h]])
    return h


def hadamard_matrix(bits: int, dtype=jnp.float32) -> jax.Array:
    """Unnormalised Sylvester Hadamard matrix ``H[i, j] = (−1)^{popcount(i & j)}``, size ``2^bits``."""
    return jnp.asarray(_hadamard_numpy(bits), dtype=dtype)


def default_block_bits(backend: str | None = None) -> int:
    """Bits per Kronecker factor for a backend: 5 (32×32) on CPU, 7 (128×128) on GPU/TPU.

    Measured on a 2-core AVX-512 CPU at n = 24: 5 bits beats 4, 6 and 8 (fewer passes vs
    more FLOPs per pass). On matrix units 128 matches the systolic array / MMA tile width.
    """
    backend = backend or jax.default_backend()
    return 5 if backend == "cpu" else 7


def _check_length(length: int) -> int:
    bits = int(length).bit_length() - 1
    if length < 1 or (1 << bits) != length:
        raise ValueError(
            f"fwht needs a last axis of length 2^n, got {length}. Pad the value table to the "
            "next power of two or check which axis holds the masks."
        )
    if bits > MAX_WHT_BITS:
        raise ValueError(f"fwht supports lengths up to 2^{MAX_WHT_BITS}, got 2^{bits}.")
    return bits


def _split_bits(bits: int, block: int) -> tuple[int, ...]:
    """Split ``bits`` into near-equal factors of at most ``block`` bits each."""
    if bits == 0:
        return ()
    passes = -(-bits // block)
    base, extra = divmod(bits, passes)
    return tuple(base + (1 if i < extra else 0) for i in range(passes))


def _precision(precision: str | None) -> jax.lax.Precision:
    """``None`` → ``HIGHEST`` (float32 products stay float32 on every backend)."""
    if precision is None:
        return jax.lax.Precision.HIGHEST
    names = {"default": "DEFAULT", "high": "HIGH", "highest": "HIGHEST"}
    if str(precision).lower() not in names:
        raise ValueError(f"precision must be one of {sorted(names)} or None, got {precision!r}.")
    return jax.lax.Precision[names[str(precision).lower()]]


def _kronecker(
    values: jax.Array,
    bits: int,
    block: int,
    factors: tuple[int, ...] | None = None,
    scale: float = 1.0,
    precision: str | None = None,
    *,
    batch_first: bool = True,
) -> jax.Array:
    """Good's-shuffle passes over ``values`` viewed as one flat index ``(t, b)``.

    The rows ``b`` (leading axes, ``B`` of them) are first moved to the fastest position
    (``[2^bits, B]``; skipped for ``B = 1``). Each pass contracts the *leading* ``k`` index bits
    with ``H_{2^k}`` and moves them to the back — a plain 2-D product ``[2^k, R]ᵀ·H`` with
    no batch dimension, which XLA runs without any transpose — so once every factor has been
    applied the rows are in front again and the bit order is the original one.
    ``batch_first=False`` (internal) continues from an intermediate layout, so
    :func:`fwht_consuming` can split the passes over several calls (the intermediate
    arrays are flat permutations of the same size).
    """
    shape = values.shape
    rows = values.size >> bits
    factors = _split_bits(bits, block) if factors is None else factors
    x = values.reshape((rows, 1 << bits))
    if batch_first and rows > 1:
        x = x.T
    x = x.reshape(-1)
    for i, k in enumerate(factors):
        h = hadamard_matrix(k, x.dtype)
        if scale != 1.0 and i == len(factors) - 1:
            h = h * jnp.asarray(scale, x.dtype)  # exact for powers of two
        x = jnp.einsum("ij,jr->ri", h, x.reshape(1 << k, -1), precision=_precision(precision))
        x = x.reshape(-1)
    return x.reshape(shape)


def _radix2(values: jax.Array, bits: int) -> jax.Array:
    batch = values.shape[:-1]
    x = values.reshape((-1, 1 << bits))
    for i in range(bits):
        x = x.reshape((x.shape[0], -1, 2, 1 << i))
        x = jnp.stack([x[:, :, 0] + x[:, :, 1], x[:, :, 0] - x[:, :, 1]], axis=2)
    return x.reshape((*batch, 1 << bits))


@functools.partial(jax.jit, static_argnames=("method", "block_bits", "precision"))
def fwht(
    values: jax.Array,
    *,
    method: Method = "auto",
    block_bits: int | None = None,
    precision: str | None = None,
) -> jax.Array:
    """Unnormalised Walsh–Hadamard transform over the last axis.

    Args:
      values: ``float[..., 2^n]`` (float32 or float64; integer input is promoted to float32).
      method: ``"kronecker"`` (matrix-unit friendly), ``"radix2"``, or ``"auto"`` (kronecker).
      block_bits: bits per Kronecker factor; default :func:`default_block_bits`.
      precision: matmul precision of the Kronecker products: ``None``/``"highest"`` (default;
        exact float32 on every backend), ``"high"`` or ``"default"`` (TPU: bf16 passes, GPU:
        TF32 — faster, but the transform is then only accurate to ~3 significant digits).

    Returns:
      Array of the same shape: ``out[..., S] = Σ_k values[..., k] (−1)^{popcount(k & S)}``.
    """
    if not jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(jnp.float32)
    bits = _check_length(values.shape[-1])
    if method == "radix2":
        return _radix2(values, bits)
    if method not in ("auto", "kronecker"):
        raise ValueError(f"unknown fwht method {method!r}; use 'auto', 'kronecker' or 'radix2'.")
    block = block_bits if block_bits is not None else default_block_bits()
    if block < 1:
        raise ValueError(f"block_bits must be >= 1, got {block}.")
    return _kronecker(values, bits, block, precision=precision)


def ifwht(coefficients: jax.Array, *, method: Method = "auto", block_bits: int | None = None) -> jax.Array:
    """Inverse of :func:`fwht`: ``fwht(c) / 2^n``."""
    out = fwht(coefficients, method=method, block_bits=block_bits)
    return out / out.shape[-1]


@functools.partial(jax.jit, static_argnames=("factors", "scale", "precision", "first"), donate_argnums=(0,))
def _kronecker_passes(
    values: jax.Array,
    factors: tuple[int, ...],
    scale: float,
    precision: str | None = None,
    first: bool = True,
) -> jax.Array:
    bits = values.shape[-1].bit_length() - 1
    return _kronecker(values, bits, 0, factors=factors, scale=scale, precision=precision, batch_first=first)


def fwht_consuming(
    values: jax.Array,
    *,
    scale: float = 1.0,
    block_bits: int | None = None,
    passes_per_call: int = 2,
    precision: str | None = None,
) -> jax.Array:
    """``scale · fwht(values)`` with at most two arrays of the input's size alive at once.

    The Kronecker passes run in separate compiled calls of ``passes_per_call`` passes, each
    donating its input (so ``values`` is consumed: do not use it afterwards). Inside a single
    compiled call XLA keeps the donated input, the output and a temporary (3×); two passes per
    call let the second pass write back into the input's buffer (2×). ``scale`` is folded into
    the last Hadamard factor (exact when it is a power of two, e.g. ``2^{-n}``).
    ``block_bits`` and ``precision`` as in :func:`fwht`. Not for use under ``jit`` (use
    :func:`fwht` there).
    """
    values = jnp.asarray(values)
    if not jnp.issubdtype(values.dtype, jnp.floating):
        values = values.astype(jnp.float32)
    bits = _check_length(values.shape[-1])
    block = block_bits if block_bits is not None else default_block_bits()
    if block < 1:
        raise ValueError(f"block_bits must be >= 1, got {block}.")
    factors = _split_bits(bits, block)
    if not factors:
        return values * jnp.asarray(scale, values.dtype)
    step = max(1, int(passes_per_call))
    for first in range(0, len(factors), step):
        group = factors[first : first + step]
        last = first + step >= len(factors)
        values = _kronecker_passes(values, group, float(scale) if last else 1.0, precision, first == 0)
    return values
