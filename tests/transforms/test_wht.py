import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actspec_jax.transforms import fwht, hadamard_matrix, ifwht


def explicit_hadamard(n: int) -> np.ndarray:
    idx = np.arange(1 << n)
    parity = np.array([[bin(i & j).count("1") & 1 for j in idx] for i in idx])
    return 1.0 - 2.0 * parity


@pytest.mark.parametrize("method", ["kronecker", "radix2"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 9])
def test_matches_explicit_hadamard_matrix(method, n, rng):
    values = rng.standard_normal((3, 1 << n))
    expected = values @ explicit_hadamard(n).T
    got = np.asarray(fwht(jnp.asarray(values, jnp.float32), method=method))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4 * max(1, np.sqrt(1 << n)))


def test_hadamard_matrix_helper_is_sylvester():
    np.testing.assert_array_equal(np.asarray(hadamard_matrix(4)), explicit_hadamard(4))


@pytest.mark.parametrize("block_bits", [1, 2, 3, 5, 8])
def test_any_block_size_gives_the_same_transform(block_bits, rng):
    values = jnp.asarray(rng.standard_normal(1 << 11), jnp.float32)
    reference = fwht(values, method="radix2")
    np.testing.assert_allclose(fwht(values, block_bits=block_bits), reference, rtol=1e-5, atol=2e-3)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 14), seed=st.integers(0, 2**31 - 1), method=st.sampled_from(["kronecker", "radix2"]))
def test_involution_and_parseval(n, seed, method):
    values = np.random.default_rng(seed).standard_normal(1 << n).astype(np.float32)
    coef = fwht(jnp.asarray(values), method=method)
    back = ifwht(coef, method=method)
    np.testing.assert_allclose(back, values, rtol=1e-4, atol=1e-4)
    # Parseval: Σ v² = 2^{-n} Σ (Hv)².
    np.testing.assert_allclose(float(jnp.sum(coef**2)) / (1 << n), float(np.sum(values**2)), rtol=1e-4)


def test_float64_is_exact_to_double_precision(rng):
    values = rng.standard_normal(1 << 12)
    with jax.enable_x64(True):
        got = np.asarray(fwht(jnp.asarray(values, jnp.float64)))
        assert got.dtype == np.float64
        twice = np.asarray(ifwht(jnp.asarray(got)))
    np.testing.assert_allclose(twice, values, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, values @ explicit_hadamard(12), rtol=1e-10, atol=1e-9)


def test_batched_leading_axes_are_independent(rng):
    values = rng.standard_normal((2, 3, 1 << 6)).astype(np.float32)
    got = np.asarray(fwht(jnp.asarray(values)))
    for a in range(2):
        for b in range(3):
            np.testing.assert_allclose(got[a, b], np.asarray(fwht(jnp.asarray(values[a, b]))), rtol=1e-6)


def test_integer_input_is_promoted():
    assert fwht(jnp.arange(8)).dtype == jnp.float32


@pytest.mark.parametrize("length", [3, 6, 1000])
def test_length_must_be_a_power_of_two(length):
    with pytest.raises(ValueError, match="length 2\\^n"):
        fwht(jnp.zeros(length))


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="unknown fwht method"):
        fwht(jnp.zeros(8), method="fast")


@pytest.mark.slow
def test_involution_at_two_to_the_22(rng):
    values = jnp.asarray(rng.standard_normal(1 << 22), jnp.float32)
    back = ifwht(fwht(values))
    np.testing.assert_allclose(back, values, rtol=1e-3, atol=1e-3)
