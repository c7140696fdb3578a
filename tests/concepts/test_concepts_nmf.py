"""Non-negative dictionaries: objective, NNLS encoding, determinism, jit, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import nnls

from actspec_jax.concepts import NegativeActivationError, encode, fit_basis, fit_nmf, normalize_dictionary
from actspec_jax.errors import ActSpecError


def _objective(A, U, W, alpha, l1_ratio):
    """scikit-learn's NMF objective (Frobenius, alpha_W = alpha_H = alpha) in float64."""
    R, N = A.shape
    l1, l2 = alpha * l1_ratio, alpha * (1 - l1_ratio)
    return (
        0.5 * np.sum((A - U @ W) ** 2)
        + l1 * N * U.sum()
        + 0.5 * l2 * N * np.sum(U**2)
        + l1 * R * W.sum()
        + 0.5 * l2 * R * np.sum(W**2)
    )


@pytest.fixture(scope="module")
def relu_data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.maximum(rng.normal(size=(200, 24)) @ rng.normal(size=(24, 24)), 0).astype(np.float32)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the reference's own cap
@pytest.mark.parametrize(("alpha", "l1_ratio"), [(1e-2, 0.0), (1e-3, 0.5)])
def test_objective_matches_sklearn_nmf(relu_data, alpha, l1_ratio):
    from sklearn.decomposition import NMF

    A = relu_data
    ours = fit_nmf(A, 6, key=jax.random.key(0), alpha=alpha, l1_ratio=l1_ratio, tol=1e-6)
    U, W = np.asarray(ours.codes, np.float64), np.asarray(ours.dictionary, np.float64)
    assert float(ours.objective) == pytest.approx(_objective(A, U, W, alpha, l1_ratio), rel=1e-3)
    assert (U >= 0).all() and (W >= 0).all()
    ref = NMF(6, alpha_W=alpha, l1_ratio=l1_ratio, init="nndsvda", max_iter=2000, tol=1e-6, random_state=0)
    U_ref = ref.fit_transform(A.astype(np.float64))
    theirs = _objective(A, U_ref, ref.components_, alpha, l1_ratio)
    # both are local optima of the same objective: within 2 % of each other
    assert _objective(A, U, W, alpha, l1_ratio) <= 1.02 * theirs
    err = np.linalg.norm(A - U @ W) / np.linalg.norm(A)
    assert float(ours.relative_error) == pytest.approx(err, rel=1e-4)


def test_planted_factorisation_is_recovered():
    rng = np.random.default_rng(1)
    U = rng.uniform(size=(80, 4)) * (rng.uniform(size=(80, 4)) < 0.5)
    W = rng.uniform(size=(4, 15)) * (rng.uniform(size=(4, 15)) < 0.6)
    A = (U @ W).astype(np.float32)
    fit = fit_nmf(A, 4, key=jax.random.key(3), alpha=0.0, tol=1e-8)
    assert float(fit.relative_error) < 1e-2


def test_sparsity_penalty_gives_sparser_codes(relu_data):
    dense = fit_nmf(relu_data, 6, key=jax.random.key(0), alpha=0.0)
    sparse = fit_nmf(relu_data, 6, key=jax.random.key(0), alpha=0.2, l1_ratio=1.0)
    assert np.mean(np.asarray(sparse.codes) == 0) > np.mean(np.asarray(dense.codes) == 0) + 0.05


def test_encode_is_nonnegative_least_squares(relu_data):
    W = np.asarray(fit_nmf(relu_data, 6, key=jax.random.key(0)).dictionary)
    new = relu_data[:12] * 1.3
    U = np.asarray(encode(new, W))
    expected = np.stack([nnls(W.T.astype(np.float64), row.astype(np.float64))[0] for row in new])
    np.testing.assert_allclose(U, expected, atol=1e-3 * max(expected.max(), 1))


def test_same_key_same_result_and_jit(relu_data):
    a = fit_nmf(relu_data, 6, key=jax.random.key(7))
    jitted = jax.jit(lambda A, key: fit_nmf(A, 6, key=key))
    b = jitted(jnp.asarray(relu_data), jax.random.key(7))  # same key, under an outer jit
    c = fit_nmf(relu_data, 6, key=jax.random.key(8))  # nndsvdar: the key fills the zeros
    np.testing.assert_allclose(np.asarray(a.dictionary), np.asarray(b.dictionary), rtol=1e-4, atol=1e-6)
    assert np.array_equal(
        np.asarray(a.dictionary), np.asarray(fit_nmf(relu_data, 6, key=jax.random.key(7)).dictionary)
    )
    assert not np.allclose(np.asarray(a.dictionary), np.asarray(c.dictionary))
    codes = jax.jit(encode)(jnp.asarray(relu_data[:3]), a.dictionary)
    assert codes.shape == (3, 6)


def test_normalize_dictionary_keeps_the_product(relu_data):
    fit = fit_nmf(relu_data, 6, key=jax.random.key(0))
    U, W = normalize_dictionary(fit.codes, fit.dictionary)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(W), axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(U @ W), np.asarray(fit.codes @ fit.dictionary), rtol=1e-4, atol=1e-4
    )


def test_bad_inputs(relu_data):
    negative = relu_data - 1.0
    with pytest.raises(NegativeActivationError, match=r"ReLU.*shift"):
        fit_nmf(negative, 3, key=jax.random.key(0))
    with pytest.raises(NegativeActivationError, match="non-negative"):
        encode(negative, np.ones((2, 24), np.float32))
    with pytest.raises(NegativeActivationError, match="ReLU"):
        fit_basis(negative, 3, key=jax.random.key(0))
    basis = fit_basis(negative, 6, key=jax.random.key(0), shift="min")  # the suggested fix works
    assert float(basis.relative_error) < 1.0
    with pytest.raises(ActSpecError, match="only 10 rows"):
        fit_nmf(relu_data[:10], 11, key=jax.random.key(0))
    with pytest.raises(ActSpecError, match="at least 1"):
        fit_nmf(relu_data, 0, key=jax.random.key(0))
    with pytest.raises(ActSpecError, match="init"):
        fit_nmf(relu_data, 3, key=jax.random.key(0), init="svd")
    with pytest.raises(ActSpecError, match="matrix"):
        fit_nmf(relu_data[0], 1, key=jax.random.key(0))
    with pytest.raises(ActSpecError, match="NaN"):
        fit_nmf(np.full((4, 3), np.nan, np.float32), 1, key=jax.random.key(0))
    with pytest.raises(ActSpecError, match="l1_ratio"):
        fit_nmf(relu_data, 3, key=jax.random.key(0), l1_ratio=2.0)
    with pytest.raises(ActSpecError, match="dictionary must be"):
        encode(relu_data, np.ones((2, 5), np.float32))
