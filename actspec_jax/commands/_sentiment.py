"""The shipped sentiment transformer and review inputs, as the concept/layer commands use them."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["SentimentModel", "sentiment_inputs", "sentiment_model", "token_snippet"]


class SentimentModel(NamedTuple):
    """``module``, ``variables``, ``tokenizer``, ``info`` of the shipped transformer."""

    module: Any
    variables: Any
    tokenizer: Any
    info: dict[str, Any]
    apply_kwargs: dict[str, Any]

    @property
    def depth(self) -> int:
        return int(self.module.depth)

    @property
    def context(self) -> int:
        return int(self.module.context)

    def logits(self, tokens: Any) -> Any:
        return self.module.apply(self.variables, tokens, **self.apply_kwargs)


def sentiment_model() -> SentimentModel:
    """Load the shipped sentiment transformer (clear error if this version lacks it)."""
    from actspec_jax.errors import ActSpecError

    try:
        from actspec_jax.models.transformer import load_sentiment_transformer
    except ImportError as err:  # pragma: no cover - depends on the installed version
        raise ActSpecError(
            "this installation has no sentiment transformer (actspec_jax.models.transformer); use the "
            "MNIST presets."
        ) from err
    module, variables, tokenizer, info = load_sentiment_transformer()
    return SentimentModel(module, variables, tokenizer, dict(info), {})


def sentiment_inputs(
    model: SentimentModel,
    num_inputs: int,
    *,
    seed: int = 0,
    split: str = "test",
    source: str = "imdb",
    length: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """A seeded sample of reviews: ``(tokens int32[m, T], token_mask float32[m, T], labels, texts)``.

    Reviews are encoded at ``length`` (default: the model's context) and the columns after the
    longest review are dropped: padding is never attended to or pooled, so the outputs are
    unchanged and the arrays smaller.
    """
    from actspec_jax.data import load_reviews

    reviews = load_reviews(source, split)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    count = min(int(num_inputs), len(reviews.texts))
    index = np.sort(rng.choice(len(reviews.texts), size=count, replace=False))
    texts = [reviews.texts[i] for i in index]
    encoded = model.tokenizer.encode(texts, int(length or model.context))
    tokens = np.asarray(encoded.tokens, np.int32)
    tokens = tokens[:, : max(1, int(np.max(encoded.lengths, initial=1)))]
    return tokens, (tokens != 0).astype(np.float32), np.asarray(reviews.labels)[index], texts


def token_snippet(tokenizer: Any, row: np.ndarray, position: int, window: int = 6) -> str:
    """The words around ``position`` of one encoded review, the centre word in [brackets]."""
    real = int(np.sum(row != 0))
    lo, hi = max(0, position - window), min(real, position + window + 1)
    words = [tokenizer.tokens[int(t)] for t in row[lo:hi]]
    centre = position - lo
    if 0 <= centre < len(words):
        words[centre] = f"[{words[centre]}]"
    return ("… " if lo > 0 else "") + " ".join(words) + (" …" if hi < real else "")
