"""A small, generic optax training loop for Flax linen classifiers.

Used to reproduce the shipped weights (``scripts/``) and by tests on tiny configs. The
module must take ``(inputs, train=bool)`` and return logits ``float[batch, classes]``;
dropout draws from the ``'dropout'`` RNG stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["TrainResult", "accuracy", "predict_logits", "train_classifier"]


class TrainResult(NamedTuple):
    """Trained variables and one record per epoch (loss, accuracies, seconds)."""

    variables: Any
    history: list[dict[str, float]]


def predict_logits(
    module: nn.Module, variables: Any, inputs: np.ndarray, *, batch_size: int = 1024
) -> np.ndarray:
    """Logits ``float32[N, classes]`` in evaluation mode (``train=False``), batched."""
    apply = jax.jit(lambda v, x: module.apply(v, x, train=False))
    out = [
        np.asarray(apply(variables, inputs[i : i + batch_size])) for i in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(out, axis=0)


def accuracy(
    module: nn.Module, variables: Any, inputs: np.ndarray, labels: np.ndarray, *, batch_size: int = 1024
) -> float:
    """Fraction of ``inputs`` whose argmax logit equals ``labels`` (:func:`predict_logits` batches)."""
    logits = predict_logits(module, variables, inputs, batch_size=batch_size)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels)))


def train_classifier(
    module: nn.Module,
    inputs: np.ndarray,
    labels: np.ndarray,
    *,
    key: jax.Array,
    epochs: int,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Minimise softmax cross-entropy with ``optimizer`` (default Adam, lr 1e-3).

    Args:
      module: linen classifier taking ``(x, train=...)``.
      inputs, labels: training data ``[N, ...]`` and ``int[N]`` (host arrays).
      key: PRNG key for initialisation, shuffling and dropout (same key → same weights).
      epochs, batch_size: schedule; the last partial batch of each epoch is dropped.
      eval_data: optional ``(inputs, labels)`` whose accuracy is logged every epoch.
      log: called with each epoch's record.
    """
    if len(inputs) != len(labels):
        raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels.")
    if len(inputs) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} training examples, got {len(inputs)}.")
    optimizer = optimizer or optax.adam(1e-3)
    init_key, key = jax.random.split(key)
    variables = module.init(init_key, jnp.asarray(inputs[:1]), train=False)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}
    opt_state = optimizer.init(params)

    def loss_fn(params, x, y, dropout_key):
        logits = module.apply({"params": params, **rest}, x, train=True, rngs={"dropout": dropout_key})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, jnp.mean(jnp.argmax(logits, -1) == y)

    @jax.jit
    def step(params, opt_state, x, y, dropout_key):
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y, dropout_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, acc

    history: list[dict[str, float]] = []
    steps = len(inputs) // batch_size
    for epoch in range(epochs):
        started = time.perf_counter()
        key, perm_key = jax.random.split(key)
        order = np.asarray(jax.random.permutation(perm_key, len(inputs)))
        losses, accs = [], []
        for s in range(steps):
            idx = order[s * batch_size : (s + 1) * batch_size]
            key, dropout_key = jax.random.split(key)
            params, opt_state, loss, acc = step(
                params, opt_state, jnp.asarray(inputs[idx]), jnp.asarray(labels[idx]), dropout_key
            )
            losses.append(loss)
            accs.append(acc)
        record = {
            "epoch": float(epoch + 1),
            "loss": float(np.mean(jax.device_get(losses))),
            "train_accuracy": float(np.mean(jax.device_get(accs))),
            "seconds": time.perf_counter() - started,
        }
        if eval_data is not None:
            record["eval_accuracy"] = accuracy(module, {"params": params, **rest}, *eval_data)
        history.append(record)
        if log is not None:
            log(record)
    return TrainResult({"params": params, **rest}, history)
