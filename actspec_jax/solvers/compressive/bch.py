"""Binary BCH syndromes as delay vectors: recover a low-degree support from ``m·t`` parity bits.

A singleton bin of the aliased spectrum holds one coefficient ``F[k]``; its values under the
delays ``d_p`` are ``±F[k]`` with sign ``(−1)^{⟨d_p, k⟩}``, i.e. one parity bit of ``k`` per
delay. With the delays taken as the binary rows of the parity-check matrix of a
``t``-error-correcting binary BCH code of length ``N = 2^m − 1 ≥ n`` (column ``i`` holds
``α^{j·i}`` for odd ``j < 2t``, each as ``m`` bits), the bits are the code's syndrome of the
"error pattern" ``k``. Every ``k`` with ``|k| ≤ t`` has a distinct syndrome, and the standard
decoder (Berlekamp–Massey for the error locator, then its roots) returns ``k`` from
``p = m·t ≈ t·log₂ n`` bits — against ``n`` bits for reading ``k`` coordinate by coordinate.
A bin that is not a singleton (or a singleton whose bits were flipped by noise) gives a
syndrome that either fails to decode (the locator's degree differs from its number of roots
in ``0…n−1``) or decodes to a wrong ``k``; the caller verifies every decoded ``k`` against the
bin's index and all its delays, so a wrong decode is rejected rather than reported.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["bch_delays", "decode_syndrome", "field_bits"]

# Primitive polynomials of GF(2^m) (bit i = coefficient of x^i).
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
}


def field_bits(n: int) -> int:
    """Smallest ``m ≥ 2`` with ``2^m − 1 ≥ n``."""
    m = 2
    while (1 << m) - 1 < n:
        m += 1
    if m not in _PRIMITIVE:
        raise ValueError(f"n={n} needs GF(2^{m}); supported up to n = 2^16 − 1.")
    return m


@functools.lru_cache(maxsize=16)
def _tables(m: int) -> tuple[np.ndarray, np.ndarray]:
    """``exp[i] = α^i`` (``i < 2N``, wrapped) and ``log[x]`` for ``x ≠ 0`` in GF(2^m)."""
    size = (1 << m) - 1
    exp = np.zeros(2 * size, np.int64)
    log = np.full(1 << m, -1, np.int64)
    x = 1
    for i in range(size):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x >> m:
            x ^= _PRIMITIVE[m]
    exp[size:] = exp[:size]
    return exp, log


def bch_delays(n: int, t: int) -> np.ndarray:
    """``bool[m·t, n]``: row ``(j, r)`` has bit ``r`` of ``α^{(2j+1)·i}`` in column ``i``."""
    m = field_bits(n)
    exp, _ = _tables(m)
    size = (1 << m) - 1
    cols = np.arange(n)
    rows = []
    for j in range(t):
        power = exp[((2 * j + 1) * cols) % size]
        rows.extend(((power >> r) & 1).astype(bool) for r in range(m))
    return np.stack(rows)


def _mul(a: int, b: int, exp: np.ndarray, log: np.ndarray) -> int:
    if a == 0 or b == 0:
        return 0
    return int(exp[log[a] + log[b]])


def decode_syndrome(bits: np.ndarray, n: int, t: int) -> tuple[int, ...] | None:
    """The support ``k`` (``|k| ≤ t``) whose syndrome is ``bits`` (``bool[m·t]``), or ``None``."""
    m = field_bits(n)
    exp, log = _tables(m)
    size = (1 << m) - 1
    weights = 1 << np.arange(m)
    odd = (np.asarray(bits, np.int64).reshape(t, m) * weights).sum(axis=1)
    if not odd.any():
        return ()
    syn = [0] * (2 * t + 1)  # syn[j] = S_j, j = 1…2t; S_{2j} = S_j²
    for j in range(1, 2 * t + 1):
        syn[j] = int(odd[(j - 1) // 2]) if j % 2 else _mul(syn[j // 2], syn[j // 2], exp, log)
    # Berlekamp–Massey over GF(2^m): shortest LFSR generating S_1 … S_2t.
    locator, prev = [1], [1]
    length, shift, prev_disc = 0, 1, 1
    for step in range(2 * t):
        disc = syn[step + 1]
        for i in range(1, length + 1):
            if i < len(locator):
                disc ^= _mul(locator[i], syn[step + 1 - i], exp, log)
        if disc == 0:
            shift += 1
            continue
        scale = int(exp[(log[disc] - log[prev_disc]) % size])
        new = locator + [0] * max(0, len(prev) + shift - len(locator))
        for i, c in enumerate(prev):
            new[i + shift] ^= _mul(scale, c, exp, log)
        if 2 * length <= step:
            prev, length, prev_disc, shift = locator, step + 1 - length, disc, 1
        else:
            shift += 1
        locator = new
    while len(locator) > 1 and locator[-1] == 0:
        locator.pop()
    degree = len(locator) - 1
    if degree == 0 or degree > t or degree != length:
        return None
    # Chien search: position i is in k iff Λ(α^{−i}) = 0, over the shortened positions i < n.
    positions = np.arange(n)
    total = np.zeros(n, np.int64)
    for power, coef in enumerate(locator):
        if coef:
            total ^= exp[(log[coef] - power * positions) % size]
    roots = tuple(int(i) for i in np.flatnonzero(total == 0))
    return roots if len(roots) == degree else None
