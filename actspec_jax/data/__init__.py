"""Real data sets, read offline from pinned packages (nothing is downloaded)."""

from actspec_jax.data.mnist import MNIST_SHA256, load_digits_dataset, load_mnist, pool2x2
from actspec_jax.data.reviews import (
    REVIEW_SOURCES,
    REVIEW_SPLITS,
    REVIEWS_SHA256,
    Reviews,
    load_reviews,
    reviews_summary,
)
from actspec_jax.data.text import Encoded, Tokenizer, tokenize

__all__ = [
    "MNIST_SHA256",
    "REVIEWS_SHA256",
    "REVIEW_SOURCES",
    "REVIEW_SPLITS",
    "Encoded",
    "Reviews",
    "Tokenizer",
    "load_digits_dataset",
    "load_mnist",
    "load_reviews",
    "pool2x2",
    "reviews_summary",
    "tokenize",
]
