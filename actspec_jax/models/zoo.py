"""Pretrained models shipped inside the package (``actspec_jax/models/weights/``).

Each entry is ``<name>.msgpack`` (Flax msgpack variables) plus ``<name>.json`` (the
architecture, recipe, test accuracy and the weights' sha256, verified on load).
Reproduce them with ``scripts/train_mnist_mlp.py``, ``scripts/train_sentiment_transformer.py``
and ``scripts/train_movie_lm.py`` (the language model and its sparse autoencoder).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn

from actspec_jax.errors import ActSpecError
from actspec_jax.models.io import load_variables
from actspec_jax.models.mlp import MLP

__all__ = ["MODEL_SPECS", "Pretrained", "available_models", "load_pretrained", "weights_path"]

WEIGHTS_DIR = Path(__file__).parent / "weights"

# name -> constructor of the untrained module (the architecture the weights belong to).
MODEL_SPECS: dict[str, Callable[[], nn.Module]] = {
    "mnist_mlp": lambda: MLP(hidden=(256,), num_classes=10, dropout=0.2),
    "mnist_mlp_deep": lambda: MLP(hidden=(256, 256, 256), num_classes=10, dropout=0.2),
}


class Pretrained(NamedTuple):
    """A shipped model: the linen ``module``, its ``variables``, the sidecar ``info``, for text
    models the ``tokenizer`` that turns reviews into the model's input, and for the language
    model the sparse autoencoder ``sae`` on its ``info['sae']['layer']`` residual stream."""

    module: nn.Module
    variables: Any
    info: dict[str, Any]
    tokenizer: Any = None
    sae: Any = None


#: The shipped models that read token ids (loaded with their tokenizer).
TEXT_MODELS = ("sentiment_transformer", "movie_lm")


def available_models() -> list[str]:
    """Names accepted by :func:`load_pretrained`."""
    return sorted([*MODEL_SPECS, *TEXT_MODELS])


def weights_path(name: str) -> Path:
    """Path (without suffix) of a shipped model's weight files."""
    if name not in available_models():
        raise ActSpecError(
            f"unknown pretrained model {name!r}. Available models: {', '.join(available_models())}."
        )
    return WEIGHTS_DIR / name


def load_pretrained(name: str) -> Pretrained:
    """Load a shipped model by name (checksum verified).

    Example::

        model = load_pretrained("mnist_mlp")
        logits = model.module.apply(model.variables, images)   # images float32[m, 14, 14]
    """
    path = weights_path(name)
    if name == "sentiment_transformer":
        from actspec_jax.models.transformer import load_sentiment_transformer

        module, variables, tokenizer, info = load_sentiment_transformer(path.parent)
        return Pretrained(module, variables, info, tokenizer)
    if name == "movie_lm":
        from actspec_jax.models.language_model import load_movie_lm

        lm = load_movie_lm(path.parent)
        return Pretrained(lm.module, lm.variables, lm.info, lm.tokenizer, lm.sae)
    variables, info = load_variables(path)
    return Pretrained(MODEL_SPECS[name](), variables, info)
