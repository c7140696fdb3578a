"""A scalar reference BCH decoder (the host decoder the batched one replaced), for agreement tests.

One syndrome at a time: Berlekamp–Massey over GF(2^m) with Python integers, then a Chien search
over every position ``i < n``. Slow and obviously correct; used only by the tests.
"""

from __future__ import annotations

import numpy as np

from actspec_jax.solvers.compressive.bch import _tables, field_bits


def _mul(a: int, b: int, exp: np.ndarray, log: np.ndarray) -> int:
    if a == 0 or b == 0:
        return 0
    return int(exp[log[a] + log[b]])


def reference_decode(bits: np.ndarray, n: int, t: int) -> tuple[int, ...] | None:
    """The support ``k`` (``|k| ≤ t``) whose syndrome is ``bits`` (``bool[m·t]``), or ``None``."""
    m = field_bits(n)
    exp, log = (np.asarray(a, np.int64) for a in _tables(m))
    size = (1 << m) - 1
    weights = 1 << np.arange(m)
    odd = (np.asarray(bits, np.int64).reshape(t, m) * weights).sum(axis=1)
    if not odd.any():
        return ()
    syn = [0] * (2 * t + 1)  # syn[j] = S_j; S_{2j} = S_j²
    for j in range(1, 2 * t + 1):
        syn[j] = int(odd[(j - 1) // 2]) if j % 2 else _mul(syn[j // 2], syn[j // 2], exp, log)
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
    positions = np.arange(n)
    total = np.zeros(n, np.int64)
    for power, coef in enumerate(locator):
        if coef:
            total ^= exp[(log[coef] - power * positions) % size]
    roots = tuple(int(i) for i in np.flatnonzero(total == 0))
    return roots if len(roots) == degree else None
