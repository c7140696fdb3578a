"""Flax models, their training loop and the shipped pretrained weights."""

from actspec_jax.models.io import load_variables, save_variables
from actspec_jax.models.train import TrainResult, accuracy, predict_logits, train_classifier
from actspec_jax.models.transformer import SentimentTransformer, load_sentiment_transformer

__all__ = [
    "SentimentTransformer",
    "TrainResult",
    "accuracy",
    "load_sentiment_transformer",
    "load_variables",
    "predict_logits",
    "save_variables",
    "train_classifier",
]
