"""Tiny models for the concept tests: an MLP on 8×8 digits and a token model."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest


class Relu(nn.Module):
    @nn.compact
    def __call__(self, x):
        return jax.nn.relu(x)


class Gelu(nn.Module):
    @nn.compact
    def __call__(self, x):
        return jax.nn.gelu(x)


class TinyMLP(nn.Module):
    """64 → 12 ReLU → 10 ReLU → 3 (layers relu_0, relu_1)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape(x.shape[0], -1)
        x = Relu(name="relu_0")(nn.Dense(12, name="dense_0")(x))
        x = Relu(name="relu_1")(nn.Dense(10, name="dense_1")(x))
        return nn.Dense(3, name="logits")(x)


class TinyTokens(nn.Module):
    """Token ids [m, T] → embed 8 → per-token GELU MLP (16) → mean pool → 2 logits."""

    @nn.compact
    def __call__(self, tokens, train: bool = False):
        h = nn.Embed(20, 8, name="embed")(tokens)
        a = Gelu(name="act")(nn.Dense(16, name="fc")(h))
        r = Relu(name="relu")(nn.Dense(16, name="fc2")(h))
        h = h + nn.Dense(8, name="proj")(a) + nn.Dense(8, name="proj2")(r)
        return nn.Dense(2, name="out")(h.mean(axis=1))


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)
    keep = data.target < 3
    return x[keep], data.target[keep].astype(np.int32)


@pytest.fixture(scope="session")
def tiny_mlp(digits):
    x, _ = digits
    module = TinyMLP()
    variables = module.init(jax.random.key(0), jnp.asarray(x[:2]))
    return module, variables


@pytest.fixture(scope="session")
def tiny_tokens():
    module = TinyTokens()
    tokens = jax.random.randint(jax.random.key(1), (24, 6), 0, 20)
    variables = module.init(jax.random.key(2), tokens)
    return module, variables, tokens
