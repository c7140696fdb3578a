"""A small Flax linen encoder for binary sentiment, with named cut points for ActSpec.

``SentimentTransformer(tokens int32[m, T], train=False) -> logits float32[m, 2]``
(class 1 = positive). Architecture: token embedding + learned positions, ``depth``
pre-LayerNorm blocks (multi-head self-attention, then an MLP ``width → 4·width → width``),
a final LayerNorm, the mean over the non-padding positions, a linear classifier. Padding
(id 0) is never attended to and never pooled, so padded positions do not change outputs.

Named cut points (identity modules, so :func:`actspec_jax.cut_linen` and
:class:`actspec_jax.MultiLayerProblem` can mask them; the neuron axis is the last one and
a mask is broadcast over every leading axis, i.e. applied at every token position):

=========================  ======================  ==========================================
path                       shape                   the ``n`` masked "neurons"
=========================  ======================  ==========================================
``block_{i}/attn/heads``   ``[m, T, d_head, H]``   the ``H`` heads' outputs (before the output
                                                   projection); masking ``h`` removes head ``h``
``block_{i}/mlp/act``      ``[m, T, 4·width]``     MLP hidden units after the nonlinearity
``block_{i}/resid``        ``[m, T, width]``       residual stream after block ``i``
``pooled``                 ``[m, width]``          the pooled representation
=========================  ======================  ==========================================

Caveat for ``fill='mean'`` on the head tap: :class:`actspec_jax.MaskedProblem` averages over
every axis but the last, so a head's mean would also average over its ``d_head``
components; for a per-component mean fill pass ``fill=acts.mean(axis=(0, 1))``.

:func:`load_sentiment_transformer` returns the shipped, trained model (reproduced by
``scripts/train_sentiment_transformer.py``) with its tokenizer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.data.text import PAD_ID, Tokenizer
from actspec_jax.errors import ActSpecError
from actspec_jax.models.io import load_variables

__all__ = [
    "SENTIMENT_WEIGHTS",
    "SentimentTransformer",
    "load_sentiment_transformer",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SENTIMENT_WEIGHTS = "sentiment_transformer"
_ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu}


class Tap(nn.Module):
    """Identity module: a named point where an analysis can read or replace activations.

    Every tap of this model carries its units on the last axis (the heads are laid out
    ``[m, T, d_head, H]`` for that), and says so with ``features_last``, so a plain layer name
    masks them (:func:`~actspec_jax.problems.sites.features_last_layer`).
    """

    features_last: ClassVar[bool] = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x


class SelfAttention(nn.Module):
    """Multi-head self-attention; heads exposed at ``heads``. ``keep`` is ``bool[m, S]`` (the keys
    every query may read: the non-padding positions) or ``bool[m, T, S]`` (per query, e.g. causal)."""

    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array, keep: jax.Array) -> jax.Array:
        width = x.shape[-1]
        d_head = width // self.num_heads
        qkv = nn.DenseGeneral((3, self.num_heads, d_head), name="qkv")(x)  # [m, T, 3, H, d]
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        scores = jnp.einsum("mthd,mshd->mhts", q, k) / np.sqrt(d_head).astype(x.dtype)
        allowed = keep[:, None, None, :] if keep.ndim == 2 else keep[:, None, :, :]  # [m, S] or [m, T, S]
        scores = jnp.where(allowed, scores, jnp.finfo(scores.dtype).min)
        probs = jax.nn.softmax(scores, axis=-1)
        heads = jnp.einsum("mhts,mshd->mtdh", probs, v)  # [m, T, d_head, H]: heads last
        heads = Tap(name="heads")(heads)
        return nn.DenseGeneral(width, axis=(-2, -1), name="out")(heads)


class MLP(nn.Module):
    """``width → hidden → width``; hidden units exposed after the nonlinearity at ``act``."""

    hidden: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = _ACTIVATIONS[self.activation](nn.Dense(self.hidden, name="fc1")(x))
        h = Tap(name="act")(h)
        return nn.Dense(x.shape[-1], name="fc2")(h)


class Block(nn.Module):
    """Pre-LayerNorm transformer block; the residual stream after it is exposed at ``resid``."""

    num_heads: int
    hidden: int
    dropout: float
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array, keep: jax.Array, train: bool) -> jax.Array:
        attn = SelfAttention(self.num_heads, name="attn")(nn.LayerNorm(name="ln_attn")(x), keep)
        x = x + nn.Dropout(self.dropout, deterministic=not train)(attn)
        mlp = MLP(self.hidden, self.activation, name="mlp")(nn.LayerNorm(name="ln_mlp")(x))
        x = x + nn.Dropout(self.dropout, deterministic=not train)(mlp)
        return Tap(name="resid")(x)


class SentimentTransformer(nn.Module):
    """Encoder classifier over token ids (see the module docstring for shapes and cut points).

    Attributes:
      vocab_size: number of token ids (``PAD_ID = 0`` is padding).
      context: maximum sequence length ``T`` (learned positions).
      width: model width; ``num_heads`` must divide it.
      depth: number of blocks.
      num_heads: attention heads per block.
      mlp_ratio: MLP hidden size = ``mlp_ratio · width``.
      num_classes: output logits.
      dropout: dropout rate on the embeddings and both residual branches (training only).
      activation: MLP nonlinearity, ``'relu'`` (zero fill = unit off) or ``'gelu'``.
    """

    vocab_size: int
    context: int = 256
    width: int = 128
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4
    num_classes: int = 2
    dropout: float = 0.1
    activation: str = "relu"

    @nn.compact
    def __call__(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        if self.width % self.num_heads:
            raise ActSpecError(f"width {self.width} is not divisible by num_heads {self.num_heads}.")
        if self.activation not in _ACTIVATIONS:
            raise ActSpecError(f"activation must be one of {tuple(_ACTIVATIONS)}, got {self.activation!r}.")
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ActSpecError(
                "tokens must be integer ids of shape [batch, length], got "
                f"{tokens.dtype}{list(tokens.shape)}; encode texts with Tokenizer.encode."
            )
        if tokens.shape[1] > self.context:
            raise ActSpecError(
                f"sequences of {tokens.shape[1]} tokens exceed the model's context of {self.context}; "
                f"encode with length ≤ {self.context} (longer texts are truncated and counted)."
            )
        keep = tokens != PAD_ID
        init = nn.initializers.normal(0.02)
        x = nn.Embed(self.vocab_size, self.width, embedding_init=init, name="embed")(tokens)
        positions = self.param("pos_embed", init, (self.context, self.width))
        x = x + positions[: tokens.shape[1]]
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        for i in range(self.depth):
            x = Block(
                self.num_heads, self.mlp_ratio * self.width, self.dropout, self.activation, name=f"block_{i}"
            )(x, keep, train)
        x = nn.LayerNorm(name="ln_final")(x)
        weights = keep[..., None].astype(x.dtype)
        pooled = jnp.sum(x * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)
        pooled = Tap(name="pooled")(pooled)
        return nn.Dense(self.num_classes, name="classifier")(pooled)

    def cut_points(self) -> dict[str, int]:
        """The analysis targets: ``{path: n}`` for every block's heads, MLP units and residual."""
        return {
            **block_cut_points(self.depth, self.num_heads, self.mlp_ratio * self.width, self.width),
            "pooled": self.width,
        }

    def head_layers(self) -> list[str]:
        """Paths of every block's head tap (for the all-heads :class:`MultiLayerProblem`)."""
        return [f"block_{i}/attn/heads" for i in range(self.depth)]

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable."""
        return module_config(self)


def block_cut_points(depth: int, num_heads: int, hidden: int, width: int) -> dict[str, int]:
    """``{path: n}`` of the taps of ``depth`` :class:`Block` s: heads, MLP units, residual stream."""
    points: dict[str, int] = {}
    for i in range(depth):
        points[f"block_{i}/attn/heads"] = num_heads
        points[f"block_{i}/mlp/act"] = hidden
        points[f"block_{i}/resid"] = width
    return points


def module_config(module: nn.Module) -> dict[str, Any]:
    """A linen module's constructor arguments (its dataclass fields but ``parent`` and ``name``)."""
    return {
        f.name: getattr(module, f.name)
        for f in dataclasses.fields(module)
        if f.name not in ("parent", "name")
    }


def load_sentiment_transformer(
    directory: str | Path | None = None,
) -> tuple[SentimentTransformer, Any, Tokenizer, dict[str, Any]]:
    """The shipped sentiment transformer: ``(module, variables, tokenizer, info)``.

    Weights are stored as float16 to keep the file small and returned as float32 (the
    recorded accuracies were measured after this round trip). ``info`` is the JSON sidecar:
    architecture, training recipe, seed, history, accuracies, truncation counts, versions.
    Use ``tokenizer.encode(texts, module.context).tokens`` as the model's input.
    """
    directory = Path(directory) if directory is not None else WEIGHTS_DIR
    variables, info = load_variables(directory / SENTIMENT_WEIGHTS)
    try:
        module = SentimentTransformer(**info["architecture"])
        tokenizer = Tokenizer.load(directory / info["vocabulary_file"])
    except (KeyError, TypeError) as err:
        raise ActSpecError(
            f"{directory / SENTIMENT_WEIGHTS}.json lacks a valid architecture: {err}."
        ) from None
    if tokenizer.vocab_size != module.vocab_size:
        raise ActSpecError(
            f"the vocabulary has {tokenizer.vocab_size} tokens but the model expects {module.vocab_size}."
        )
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), variables)
    return module, variables, tokenizer, info
