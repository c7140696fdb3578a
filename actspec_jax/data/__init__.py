"""Real data sets, read offline from pinned packages (nothing is downloaded)."""

from actspec_jax.data.mnist import MNIST_SHA256, load_digits_dataset, load_mnist, pool2x2

__all__ = ["MNIST_SHA256", "load_digits_dataset", "load_mnist", "pool2x2"]
