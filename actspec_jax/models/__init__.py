"""Flax models, their training loop and the shipped pretrained weights."""

from actspec_jax.models.io import load_variables, save_variables
from actspec_jax.models.train import TrainResult, accuracy, predict_logits, train_classifier

__all__ = [
    "TrainResult",
    "accuracy",
    "load_variables",
    "predict_logits",
    "save_variables",
    "train_classifier",
]
