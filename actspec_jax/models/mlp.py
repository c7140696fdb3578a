"""The MNIST multilayer perceptron of the ActSpec paper, with named cut points.

``MLP(hidden=(256,))`` is 196 → 256 ReLU → 10. Every layer is a named sub-module, so
:func:`actspec_jax.cut_linen` can cut the model at

* ``'dense_{i}'`` — pre-activation of hidden layer ``i`` (``float32[m, hidden[i]]``);
* ``'relu_{i}'`` — post-ReLU activation of hidden layer ``i``, the paper's layer;
* ``'logits'`` — the output logits ``float32[m, num_classes]``.

Dropout (after each ReLU) is active only with ``train=True`` and then draws from the
``'dropout'`` RNG stream.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["MLP", "ReLU"]


class ReLU(nn.Module):
    """``max(x, 0)`` as a named module, so its output is a cut point."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(x)


class MLP(nn.Module):
    """Fully connected ReLU classifier on flattened images.

    Attributes:
      hidden: widths of the hidden layers.
      num_classes: number of output logits.
      dropout: dropout rate after each ReLU during training.

    Call with ``x`` float32 ``[m, H, W]`` (flattened to ``[m, H·W]``) or ``[m, d]``;
    returns logits float32 ``[m, num_classes]``.
    """

    hidden: tuple[int, ...] = (256,)
    num_classes: int = 10
    dropout: float = 0.2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        if x.ndim == 3:
            x = x.reshape(x.shape[0], -1)
        if x.ndim != 2:
            raise ValueError(f"MLP expects inputs [m, H, W] or [m, d], got shape {x.shape}.")
        for i, width in enumerate(self.hidden):
            x = nn.Dense(width, name=f"dense_{i}")(x)
            x = ReLU(name=f"relu_{i}")(x)
            x = nn.Dropout(self.dropout, deterministic=not train, name=f"dropout_{i}")(x)
        return nn.Dense(self.num_classes, name="logits")(x)
