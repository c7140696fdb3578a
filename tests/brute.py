"""Float64 brute-force references shared by the tests."""

from __future__ import annotations

import itertools

import numpy as np


def all_masks(n: int) -> np.ndarray:
    """``float64[2^n, n]`` masks in the library's enumeration order (bit i set ⇔ x_i = −1)."""
    k = np.arange(1 << n)
    bits = (k[:, None] >> np.arange(n)[None, :]) & 1
    return (1 - 2 * bits).astype(np.float64)


def brute_force_spectrum(values: np.ndarray, n: int) -> dict[tuple[int, ...], float]:
    """``f̂(S) = 2^{−n} Σ_x f(x) ∏_{i∈S} x_i`` by explicit products (float64), every S."""
    masks = all_masks(n)
    out = {}
    for size in range(n + 1):
        for subset in itertools.combinations(range(n), size):
            chi = np.prod(masks[:, list(subset)], axis=1) if subset else np.ones(1 << n)
            out[subset] = float(np.mean(values * chi))
    return out
