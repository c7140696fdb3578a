"""Flax models, their training loop and the shipped pretrained weights."""

from actspec_jax.models.io import load_variables, save_variables
from actspec_jax.models.language_model import MovieLM, SparseAutoencoder, load_movie_lm
from actspec_jax.models.mlp import MLP
from actspec_jax.models.train import TrainResult, accuracy, predict_logits, train_classifier
from actspec_jax.models.transformer import SentimentTransformer, load_sentiment_transformer
from actspec_jax.models.zoo import Pretrained, available_models, load_pretrained

__all__ = [
    "MLP",
    "MovieLM",
    "Pretrained",
    "SentimentTransformer",
    "SparseAutoencoder",
    "TrainResult",
    "accuracy",
    "available_models",
    "load_movie_lm",
    "load_pretrained",
    "load_sentiment_transformer",
    "load_variables",
    "predict_logits",
    "save_variables",
    "train_classifier",
]
