"""Real data sets, read offline from pinned packages (nothing is downloaded)."""

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
    "REVIEWS_SHA256",
    "REVIEW_SOURCES",
    "REVIEW_SPLITS",
    "Encoded",
    "Reviews",
    "Tokenizer",
    "load_reviews",
    "reviews_summary",
    "tokenize",
]
