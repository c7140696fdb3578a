"""CKA: the classic reference values, brute-force HSIC estimators, invariances, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from actspec_jax.errors import ActSpecError
from actspec_jax.layers import gram_linear, gram_rbf, hsic, linear_cka, rbf_cka


@pytest.fixture(scope="module")
def reference_pair() -> tuple[np.ndarray, np.ndarray]:
    np.random.seed(1337)  # the legacy seed of the classic CKA example
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y


def test_reference_values(reference_pair):
    x, y = reference_pair
    assert float(linear_cka(x, y)) == pytest.approx(0.55761, abs=5e-5)
    assert float(rbf_cka(x, y, threshold=0.5)) == pytest.approx(0.65483, abs=5e-5)
    assert float(linear_cka(x, y, debiased=True)) == pytest.approx(0.51346, abs=5e-5)


def _hsic_biased_numpy(K, L):
    m = K.shape[0]
    H = np.eye(m) - np.ones((m, m)) / m
    return np.trace(K @ H @ L @ H)


def _hsic_u_statistic(K, L):
    """Unbiased HSIC as the U-statistic over distinct index tuples (brute force)."""
    m = K.shape[0]
    t1 = sum(K[i, j] * L[i, j] for i, j in itertools.permutations(range(m), 2))
    t2 = sum(K[i, j] * L[q, r] for i, j, q, r in itertools.permutations(range(m), 4))
    t3 = sum(K[i, j] * L[i, q] for i, j, q in itertools.permutations(range(m), 3))
    n2, n3, n4 = m * (m - 1), m * (m - 1) * (m - 2), m * (m - 1) * (m - 2) * (m - 3)
    return t1 / n2 + t2 / n4 - 2 * t3 / n3


def test_hsic_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(7, 4))
    K, L = x @ x.T, np.asarray(gram_rbf(y, 1.0), np.float64)
    assert float(hsic(K, L)) == pytest.approx(_hsic_biased_numpy(K, L), rel=1e-4)
    assert float(hsic(K, L, debiased=True)) == pytest.approx(_hsic_u_statistic(K, L), rel=1e-3, abs=1e-6)


def test_rbf_bandwidth_is_threshold_times_median_distance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 2))
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    sigma_sq = 0.7**2 * np.median(d2)
    np.testing.assert_allclose(np.asarray(gram_rbf(x, 0.7)), np.exp(-d2 / (2 * sigma_sq)), rtol=1e-5)


def test_invariances():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert float(linear_cka(x, 3.0 * x @ q)) == pytest.approx(1.0, abs=1e-5)
    assert float(rbf_cka(x, 3.0 * x @ q)) == pytest.approx(1.0, abs=1e-5)
    assert float(linear_cka(x, x, debiased=True)) == pytest.approx(1.0, abs=1e-5)
    unrelated = rng.normal(size=(50, 6))
    assert float(linear_cka(x, unrelated, debiased=True)) < 0.2
    assert np.allclose(np.asarray(gram_linear(x)), x @ x.T, atol=1e-4)


def test_bad_inputs():
    x = np.zeros((5, 3))
    with pytest.raises(ActSpecError, match="same inputs"):
        linear_cka(x, np.zeros((6, 3)))
    with pytest.raises(ActSpecError, match=r"\[inputs, features\]"):
        linear_cka(np.zeros((5, 2, 3)), x)
    with pytest.raises(ActSpecError, match="at least 4"):
        linear_cka(x[:3], x[:3], debiased=True)
    with pytest.raises(ActSpecError, match="threshold"):
        rbf_cka(x, x, threshold=0.0)
