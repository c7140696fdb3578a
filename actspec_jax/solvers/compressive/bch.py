"""Binary BCH syndromes as delay vectors: recover a low-degree support from ``m·t`` parity bits.

A singleton bin of the aliased spectrum holds one coefficient ``F[k]``; its values under the
delays ``d_p`` are ``±F[k]`` with sign ``(−1)^{⟨d_p, k⟩}``, i.e. one parity bit of ``k`` per
delay. With the delays taken as the binary rows of the parity-check matrix of a
``t``-error-correcting binary BCH code of length ``N = 2^m − 1 ≥ n`` (column ``i`` holds
``α^{j·i}`` for odd ``j < 2t``, each as ``m`` bits), the bits are the code's syndrome of the
"error pattern" ``k``. Every ``k`` with ``|k| ≤ t`` has a distinct syndrome, and the decoder
returns ``k`` from ``p = m·t ≈ t·log₂ n`` bits — against ``n`` bits for reading ``k``
coordinate by coordinate. Fields up to ``GF(2^24)`` (``n ≤ 16,777,215``).

**Decoding, batched and jitted** (:class:`Decoder`; one device call for a whole batch of
syndromes, e.g. every busy bin of a round and all their Chase flips):

1. Berlekamp–Massey over ``GF(2^m)`` gives the error locator ``Λ(x) = Π_l (1 + X_l x)``
   (``X_l = α^{i_l}``), ``2t`` fixed steps on arrays, log/exp tables as gathers;
2. the locators ``X_l`` are the roots of the reversed polynomial ``R(z) = z^d + λ₁z^{d−1} + … +
   λ_d``. For ``d ≤ 4`` they are found in ``O(m²)`` per syndrome, independent of ``n`` (no Chien
   search over all positions): ``R`` is turned into an *affine* polynomial
   ``A(y) = q₄y⁴ + q₂y² + q₁y + c`` — ``d = 2`` is one; ``d = 3`` times ``(z + λ₁)``; ``d = 4``
   shifted by ``e = √(λ₃/λ₁)`` (the linear term vanishes) and inverted, ``y = 1/(z + e)`` — whose
   non-constant part is ``GF(2)``-linear, so its roots solve an ``m × m`` linear system over
   ``GF(2)`` (Gauss–Jordan on bit-packed rows; at most 4 solutions). ``d > 4`` (``t > 4``) uses
   a Chien search over the ``n`` positions;
3. the decode is accepted only when ``R`` has ``d`` distinct roots, all at positions ``< n``, and
   ``d`` equals the register length (a non-codeword gives a locator with too few roots).

A bin that is not a singleton (or a singleton whose bits were flipped by noise) gives a
syndrome that fails to decode or decodes to a wrong ``k``; the caller verifies every decoded ``k``
against the bin's index and all its delays, so a wrong decode is rejected rather than reported.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = ["MAX_FIELD_BITS", "Decoder", "bch_delays", "decode_syndrome", "field_bits"]

# Primitive polynomials of GF(2^m) (bit i = coefficient of x^i); primitivity is checked when
# the tables are built (the powers of α must run through all 2^m − 1 non-zero elements).
_PRIMITIVE = {
    2: 0b111,
    3: 0b1011,
    4: 0b10011,
    5: 0b100101,
    6: 0b1000011,
    7: 0b10001001,
    8: 0b100011101,
    9: 0b1000010001,
    10: 0b10000001001,
    11: 0b100000000101,
    12: 0b1000001010011,
    13: 0b10000000011011,
    14: 0b100010001000011,
    15: 0b1000000000000011,
    16: 0b10001000000001011,
    17: (1 << 17) | 0b1001,
    18: (1 << 18) | (1 << 7) | 1,
    19: (1 << 19) | 0b100111,
    20: (1 << 20) | 0b1001,
    21: (1 << 21) | 0b101,
    22: (1 << 22) | 0b11,
    23: (1 << 23) | 0b100001,
    24: (1 << 24) | 0b10000111,
}
MAX_FIELD_BITS = max(_PRIMITIVE)
#: The two compiled batch sizes of the decode (a call pads to the small one or to multiples of the
#: large one): a compilation costs ≈ 1.3 s on a 2-core CPU, a decode microseconds a syndrome.
SMALL_BATCH, LARGE_BATCH = 64, 4096


def field_bits(n: int) -> int:
    """Smallest ``m ≥ 2`` with ``2^m − 1 ≥ n``."""
    m = 2
    while (1 << m) - 1 < n:
        m += 1
    if m not in _PRIMITIVE:
        raise ActSpecError(
            f"n={n} needs a BCH code over GF(2^{m}); supported up to n = 2^{MAX_FIELD_BITS} − 1 = "
            f"{(1 << MAX_FIELD_BITS) - 1:,}. Use max_degree=None (unit delays) or a site with fewer units."
        )
    return m


def _multiply(values: np.ndarray, factor: int, m: int) -> np.ndarray:
    """``values · factor`` in ``GF(2^m)``, elementwise (carry-less product, then reduction)."""
    out = np.zeros_like(values)
    for bit in range(m):
        if (factor >> bit) & 1:
            out ^= values << bit
    for bit in range(2 * m - 2, m - 1, -1):
        out ^= np.where((out >> bit) & 1, _PRIMITIVE[m] << (bit - m), 0)
    return out


@functools.lru_cache(maxsize=4)
def _tables(m: int) -> tuple[np.ndarray, np.ndarray]:
    """``exp[i] = α^i`` (``int32[2N]``, wrapped once) and ``log[x]`` (``int32[2^m]``, ``log[0] = −1``).

    Built by doubling blocks, ``exp[s:2s] = exp[:s]·α^s``: ``O(m·2^m)`` vectorised work."""
    size = (1 << m) - 1
    exp = np.zeros(size, np.int64)
    exp[0] = 1
    filled = 1
    while filled < size:
        step = min(filled, size - filled)
        power = int(_multiply(exp[filled - 1 : filled], 2, m)[0])  # α^filled
        exp[filled : filled + step] = _multiply(exp[:step], power, m)
        filled += step
    log = np.full(1 << m, -1, np.int64)
    log[exp] = np.arange(size)
    if (log[1:] < 0).any():
        raise AssertionError(f"the polynomial for GF(2^{m}) is not primitive")
    return np.concatenate([exp, exp]).astype(np.int32), log.astype(np.int32)


def bch_delays(n: int, t: int) -> np.ndarray:
    """``bool[m·t, n]``: row ``(j, r)`` has bit ``r`` of ``α^{(2j+1)·i}`` in column ``i``."""
    m = field_bits(n)
    exp, _ = _tables(m)
    size = (1 << m) - 1
    cols = np.arange(n, dtype=np.int64)
    rows = []
    for j in range(t):
        power = exp[((2 * j + 1) * cols) % size]
        rows.extend(((power >> r) & 1).astype(bool) for r in range(m))
    return np.stack(rows)


# ---------------------------------------------------------------- GF(2^m) arithmetic on arrays
class _Field:
    """Elementwise ``GF(2^m)`` arithmetic on ``int32`` arrays via log/exp gathers (traced)."""

    def __init__(self, exp: jax.Array, log: jax.Array, m: int):
        self.exp, self.log, self.m, self.size = exp, log, m, (1 << m) - 1

    def mul(self, a: jax.Array, b: jax.Array) -> jax.Array:
        zero = (a == 0) | (b == 0)
        idx = jnp.where(zero, 0, self.log[a] + self.log[b])
        return jnp.where(zero, 0, self.exp[idx])

    def inv(self, a: jax.Array) -> jax.Array:
        return jnp.where(a == 0, 0, self.exp[(self.size - self.log[a]) % self.size])

    def div(self, a: jax.Array, b: jax.Array) -> jax.Array:
        return self.mul(a, self.inv(b))

    def square(self, a: jax.Array) -> jax.Array:
        return self.mul(a, a)

    def sqrt(self, a: jax.Array) -> jax.Array:
        half = pow(2, self.m - 1, self.size)  # 2·2^{m−1} ≡ 1 (mod 2^m − 1)
        return jnp.where(a == 0, 0, self.exp[_mulmod(jnp.maximum(self.log[a], 0), half, self.size)])

    def poly(self, coef: list[jax.Array], z: jax.Array) -> jax.Array:
        """``Σ_i coef[i] z^{len−1−i}`` (Horner; ``coef[0]`` is the leading coefficient)."""
        out = coef[0]
        for c in coef[1:]:
            out = self.mul(out, z) ^ c
        return out


def _mulmod(a: jax.Array, b: int, mod: int) -> jax.Array:
    """``a·b mod mod`` for ``int32`` ``a < mod < 2^24`` without overflow (shift-and-add)."""
    out = jnp.zeros_like(a)
    x = a
    while b:
        if b & 1:
            out = (out + x) % mod
        x = (x * 2) % mod
        b >>= 1
    return out


def _berlekamp_massey(field: _Field, syn: jax.Array, t: int) -> tuple[jax.Array, jax.Array]:
    """Error locators ``Λ: int32[B, 2t+1]`` (``Λ[:, 0] = 1``) and register lengths ``int32[B]``
    of the syndromes ``syn: int32[B, 2t]`` (``syn[:, j] = S_{j+1}``), ``2t`` steps of a loop."""
    batch, width = syn.shape[0], 2 * t + 1
    one = jnp.zeros((batch, width), jnp.int32).at[:, 0].set(1)
    index = jnp.arange(width)

    def step(k, state):
        locator, prev, length, shift, prev_disc = state
        # d = S_{k+1} + Σ_{1 ≤ i ≤ L} Λ_i S_{k+1−i}
        lag = jnp.clip(k - index[1:], 0)
        terms = field.mul(locator[:, 1:], syn[:, lag])
        live = (index[1:][None, :] <= length[:, None]) & (index[1:] <= k)[None, :]
        disc = syn[:, k] ^ jnp.bitwise_xor.reduce(jnp.where(live, terms, 0), axis=1)
        scale = field.div(disc, prev_disc)
        source = index[None, :] - shift[:, None]
        moved = jnp.where(source >= 0, jnp.take_along_axis(prev, jnp.clip(source, 0), axis=1), 0)
        updated = locator ^ field.mul(scale[:, None], moved)
        nonzero = disc != 0
        grow = nonzero & (2 * length <= k)
        prev = jnp.where(grow[:, None], locator, prev)
        prev_disc = jnp.where(grow, disc, prev_disc)
        length = jnp.where(grow, k + 1 - length, length)
        shift = jnp.where(grow, 1, shift + 1)
        locator = jnp.where(nonzero[:, None], updated, locator)
        return locator, prev, length, shift, prev_disc

    ones = jnp.ones(batch, jnp.int32)
    state = (one, one, jnp.zeros(batch, jnp.int32), ones, ones)
    locator, _, length, _, _ = jax.lax.fori_loop(0, 2 * t, step, state)
    return locator, length


def _affine_roots(field: _Field, q4: jax.Array, q2: jax.Array, q1: jax.Array, c: jax.Array) -> tuple:
    """Up to 4 roots ``y: int32[B, 4]`` (with ``valid: bool[B, 4]``) of ``q₄y⁴ + q₂y² + q₁y + c``.

    ``L(y) = q₄y⁴ + q₂y² + q₁y`` is ``GF(2)``-linear: its matrix has column ``r = L(α^r)``; the
    rows (one per output bit, coefficient bits ``0…m−1`` and the right-hand side ``c`` at bit
    ``m``) are reduced by Gauss–Jordan. Solutions: the particular one (free bits 0) plus the
    span of the kernel (≤ 2 free columns, as a degree-≤ 4 polynomial has ≤ 4 roots)."""
    m = field.m
    basis = jnp.asarray(1 << np.arange(m), jnp.int32)[None, :]  # α^r for r < m as elements
    image = field.mul(q4[:, None], field.square(field.square(basis)))
    image ^= field.mul(q2[:, None], field.square(basis)) ^ field.mul(q1[:, None], basis)  # [B, m]
    bit = jnp.arange(m)
    rows = ((image[:, None, :] >> bit[None, :, None]) & 1) << bit[None, None, :]  # [B, out, col]
    rows = rows.sum(axis=2) | (((c[:, None] >> bit[None, :]) & 1) << m)  # [B, m]

    def eliminate(col, state):
        rows, used, pivot = state
        has = ((rows >> col) & 1).astype(bool)
        candidate = has & ~used
        exists = candidate.any(axis=1)
        p = jnp.argmax(candidate, axis=1)
        prow = jnp.take_along_axis(rows, p[:, None], axis=1)
        clear = has & (bit[None, :] != p[:, None]) & exists[:, None]
        rows = jnp.where(clear, rows ^ prow, rows)
        used = used | ((bit[None, :] == p[:, None]) & exists[:, None])
        pivot = jnp.where(bit[None, :] == col, jnp.where(exists, p, -1)[:, None], pivot)
        return rows, used, pivot

    state = (rows, jnp.zeros(rows.shape, bool), jnp.full(rows.shape, -1, jnp.int32))
    rows, used, pivot = jax.lax.fori_loop(0, m, eliminate, state)  # pivot: pivot row of each column
    consistent = ~(~used & (((rows >> m) & 1) == 1)).any(axis=1)
    is_pivot = pivot >= 0
    prow = jnp.where(is_pivot, jnp.take_along_axis(rows, jnp.maximum(pivot, 0), axis=1), 0)  # [B, col]
    weights = jnp.asarray(1 << np.arange(m), jnp.int32)[None, :]
    particular = (((prow >> m) & 1) * weights).sum(axis=1)
    free = ~is_pivot
    nfree = free.sum(axis=1)
    f1 = jnp.argmax(free, axis=1)
    f2 = jnp.argmax(free & (bit[None, :] != f1[:, None]), axis=1)

    def kernel(f: jax.Array) -> jax.Array:
        return (1 << f) | ((((prow >> f[:, None]) & 1) * weights).sum(axis=1))

    k1 = jnp.where(nfree >= 1, kernel(f1), 0)
    k2 = jnp.where(nfree >= 2, kernel(f2), 0)
    roots = jnp.stack([particular, particular ^ k1, particular ^ k2, particular ^ k1 ^ k2], axis=1)
    valid = jnp.stack([nfree >= 0, nfree >= 1, nfree >= 2, nfree >= 2], axis=1)
    return roots, valid & (consistent & (nfree <= 2))[:, None]


def _locator_roots(field: _Field, lam: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Candidate locators ``X: int32[B, 4]`` (``valid: bool[B, 4]``) of ``Λ`` of degree ≤ 4: the
    roots of ``R(z) = z^d + λ₁z^{d−1} + … + λ_d`` via :func:`_affine_roots` (module docstring)."""
    l1, l2, l3, l4 = (lam[:, i] for i in range(1, 5))
    degree = jnp.where(l4 != 0, 4, jnp.where(l3 != 0, 3, jnp.where(l2 != 0, 2, 1)))
    zero, one = jnp.zeros_like(l1), jnp.ones_like(l1)
    # d = 4, λ₁ ≠ 0: z = e + 1/y with e = √(λ₃/λ₁); R(e + w) = w⁴ + λ₁w³ + (λ₁e + λ₂)w² + R(e)
    e = field.sqrt(field.div(l3, l1))
    r_e = field.poly([one, l1, l2, l3, l4], e)
    inv_r = field.inv(r_e)
    shifted = (l1 != 0) & (degree == 4)
    q4 = jnp.where(degree >= 3, one, zero)
    q2 = jnp.select(
        [degree == 2, degree == 3, shifted],
        [one, field.square(l1) ^ l2, field.mul(field.mul(l1, e) ^ l2, inv_r)],
        l2,
    )
    q1 = jnp.select(
        [degree == 2, degree == 3, shifted], [l1, field.mul(l1, l2) ^ l3, field.mul(l1, inv_r)], l3
    )
    c = jnp.select([degree == 2, degree == 3, shifted], [l2, field.mul(l1, l3), inv_r], l4)
    y, valid = _affine_roots(field, q4, q2, q1, c)
    x = jnp.where(shifted[:, None], e[:, None] ^ field.inv(y), y)
    valid &= ~(shifted[:, None] & ((y == 0) | (r_e == 0)[:, None]))
    x = jnp.where((degree == 1)[:, None], jnp.stack([l1, zero, zero, zero], axis=1), x)
    valid = jnp.where((degree == 1)[:, None], jnp.array([True, False, False, False]), valid)
    at = field.poly(
        [
            jnp.broadcast_to(one[:, None], x.shape),
            *(jnp.broadcast_to(v[:, None], x.shape) for v in (l1, l2, l3, l4)),
        ],
        x,
    )
    # R has degree d: evaluate z^{4−d}·R(z) = z⁴ + … (the extra roots are z = 0, excluded)
    return x, valid & (x != 0) & (at == 0)


@functools.partial(jax.jit, static_argnames=("t", "m", "chien"))
def _decode(bits: jax.Array, exp: jax.Array, log: jax.Array, n: jax.Array, *, t: int, m: int, chien: int):
    """``(positions: int32[B, t], ok: bool[B])`` of syndromes ``bits: bool[B, m·t]``; positions
    sorted ascending, ``n`` in unused slots (see the module docstring). ``n`` is traced (one
    compilation serves every layer size of a field) except for the Chien search of ``t > 4``,
    which takes ``chien = n`` statically."""
    field = _Field(exp, log, m)
    batch = bits.shape[0]
    weights = jnp.asarray(1 << np.arange(m), jnp.int32)
    odd = (bits.reshape(batch, t, m).astype(jnp.int32) * weights).sum(axis=2)  # S_1, S_3, …
    syn = [None] * (2 * t + 1)
    for j in range(1, 2 * t + 1):
        syn[j] = odd[:, (j - 1) // 2] if j % 2 else field.square(syn[j // 2])
    syn = jnp.stack(syn[1:], axis=1)
    lam, length = _berlekamp_massey(field, syn, t)
    nonzero = lam != 0
    degree = jnp.max(jnp.where(nonzero, jnp.arange(2 * t + 1)[None, :], 0), axis=1)
    empty = ~(odd != 0).any(axis=1)
    if t <= 4:
        padded = jnp.pad(lam, ((0, 0), (0, max(0, 5 - lam.shape[1]))))
        x, valid = _locator_roots(field, padded)
        pos = jnp.where(valid, log[x], n)
        pos = jnp.where((pos >= 0) & (pos < n), pos, n)
        pos = jnp.sort(pos, axis=1)
        distinct = (pos < n) & jnp.concatenate(
            [jnp.ones((batch, 1), bool), pos[:, 1:] != pos[:, :-1]], axis=1
        )
        pos = jnp.sort(jnp.where(distinct, pos, n), axis=1)
        count = distinct.sum(axis=1)
        pos = jnp.pad(pos, ((0, 0), (0, max(0, t - 4))), constant_values=n)[:, :t]
    else:  # Chien search: position i is in k iff Λ(α^{−i}) = 0
        inv_powers = exp[(field.size - (jnp.arange(chien) % field.size)) % field.size]  # α^{−i}
        total = jnp.zeros((batch, chien), jnp.int32)
        power = jnp.ones((chien,), jnp.int32)
        for i in range(2 * t + 1):
            total ^= field.mul(lam[:, i : i + 1], power[None, :])
            power = field.mul(power, inv_powers)
        root = total == 0
        count = root.sum(axis=1)
        order = jnp.argsort(~root, axis=1, stable=True)[:, :t].astype(jnp.int32)
        pos = jnp.where(jnp.take_along_axis(root, order, axis=1), order, n)
    ok = (degree >= 1) & (degree <= t) & (degree == length) & (count == degree)
    pos = jnp.where(empty[:, None], n, pos)
    return pos.astype(jnp.int32), ok | empty


class Decoder:
    """Batched BCH decoding for ``n`` positions and ``t`` errors (one jitted call per batch).

    ``decoder(bits: bool[B, m·t]) → list`` of sorted supports (tuples) or ``None`` per row;
    :meth:`positions` gives the raw arrays. Batches are padded to :data:`SMALL_BATCH` or cut into
    :data:`LARGE_BATCH` pieces, so the decode compiles at most twice per field and degree bound.
    Each call is one host sync, counted in :attr:`calls`."""

    def __init__(self, n: int, t: int):
        self.n, self.t, self.m = int(n), int(t), field_bits(n)
        exp, log = _tables(self.m)
        self._exp, self._log = jnp.asarray(exp), jnp.asarray(log)
        self.calls = 0

    def positions(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(int32[B, t], bool[B])``: sorted positions (``n`` = unused) and whether each decoded."""
        bits = np.asarray(bits, bool).reshape(-1, self.m * self.t)
        count = bits.shape[0]
        size = SMALL_BATCH if count <= SMALL_BATCH else LARGE_BATCH
        padded = np.zeros((-(-count // size) * size, bits.shape[1]), bool)
        padded[:count] = bits
        limit = jnp.asarray(self.n, jnp.int32)
        chien = self.n if self.t > 4 else 0
        parts = [
            _decode(
                jnp.asarray(padded[s : s + size]),
                self._exp,
                self._log,
                limit,
                t=self.t,
                m=self.m,
                chien=chien,
            )
            for s in range(0, padded.shape[0], size)
        ]
        self.calls += 1
        pos, ok = jax.device_get(
            (jnp.concatenate([p[0] for p in parts]), jnp.concatenate([p[1] for p in parts]))
        )
        return np.asarray(pos)[:count], np.asarray(ok)[:count]

    def __call__(self, bits: np.ndarray) -> list[tuple[int, ...] | None]:
        pos, ok = self.positions(bits)
        return [tuple(int(i) for i in row if i < self.n) if good else None for row, good in zip(pos, ok)]


@functools.lru_cache(maxsize=8)
def _decoder(n: int, t: int) -> Decoder:
    return Decoder(n, t)


def decode_syndrome(bits: np.ndarray, n: int, t: int) -> tuple[int, ...] | None:
    """The support ``k`` (``|k| ≤ t``) whose syndrome is ``bits`` (``bool[m·t]``), or ``None``."""
    return _decoder(n, t)(np.asarray(bits, bool)[None, :])[0]
