"""A small decoder-only language model of the movie reviews, and a sparse autoencoder on it.

``MovieLM(tokens int32[m, T]) -> logits float32[m, T, V]``: the next-token logits at every
position (``PAD_ID = 0`` is padding; position ``t`` reads positions ``≤ t`` that are not padding).
Architecture: token embedding + learned positions, ``depth`` pre-LayerNorm blocks (the
:class:`~actspec_jax.models.transformer.Block` of the sentiment model, here causal), a final
LayerNorm and a linear unembedding. Its cut points are the sentiment model's, every one
features-last (the taps declare it):

=========================  ======================  ==========================================
path                       shape                   the ``n`` masked variables
=========================  ======================  ==========================================
``block_{i}/attn/heads``   ``[m, T, d_head, H]``   the ``H`` heads of block ``i``
``block_{i}/mlp/act``      ``[m, T, 4·width]``     MLP hidden units after the ReLU
``block_{i}/resid``        ``[m, T, width]``       residual stream after block ``i``
=========================  ======================  ==========================================

:class:`SparseAutoencoder` holds a ReLU sparse autoencoder trained on one residual stream
(``codes = relu((a − b_dec)·W_enc + b_enc)``, ``â = codes·W_dec + b_dec``, rows of ``W_dec``
of unit norm): with ``site(layer, basis=sae.w_dec, encoder=sae.encode)`` every latent is a
variable and the SAE's error ``a − â`` stays in the activations.

:func:`load_movie_lm` returns the shipped model, tokenizer and SAE (reproduced by
``scripts/train_movie_lm.py``; their figures are in the sidecar ``movie_lm.json``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.data.text import PAD_ID, Tokenizer
from actspec_jax.errors import ActSpecError
from actspec_jax.models.io import load_variables
from actspec_jax.models.transformer import WEIGHTS_DIR, Block, block_cut_points, module_config

__all__ = [
    "LM_WEIGHTS",
    "MovieLM",
    "MovieLanguageModel",
    "SparseAutoencoder",
    "causal_keep",
    "load_movie_lm",
    "review_windows",
]

#: File stem of the shipped language model (``.msgpack`` + ``.json``) and its SAE (``_sae``).
LM_WEIGHTS = "movie_lm"


def review_windows(tokenizer: Tokenizer, texts: Sequence[str], context: int, per_review: int) -> np.ndarray:
    """``int32[N, context + 1]``: each text's first ``per_review · context + 1`` tokens cut into
    windows of ``context + 1`` overlapping by one (inputs ``[:, :-1]``, next tokens ``[:, 1:]``);
    windows that start with padding are dropped (the training and held-out data of the LM)."""
    encoded = tokenizer.encode(list(texts), per_review * context + 1).tokens
    parts = [encoded[:, j * context : j * context + context + 1] for j in range(per_review)]
    stacked = np.concatenate(parts, axis=0)
    return stacked[stacked[:, 0] != PAD_ID].astype(np.int32)


def causal_keep(tokens: jax.Array) -> jax.Array:
    """``bool[m, T, S]``: query ``t`` reads key ``s`` when ``s ≤ t`` and ``s`` is not padding."""
    length = tokens.shape[1]
    causal = jnp.tril(jnp.ones((length, length), bool))
    return causal[None] & (tokens != PAD_ID)[:, None, :]


class MovieLM(nn.Module):
    """Decoder-only language model (see the module docstring for shapes and cut points).

    Attributes:
      vocab_size: number of token ids.
      context: maximum sequence length ``T`` (learned positions).
      width: model width; ``num_heads`` must divide it.
      depth: number of blocks.
      num_heads: attention heads per block.
      mlp_ratio: MLP hidden size = ``mlp_ratio · width``.
    """

    vocab_size: int
    context: int = 32
    width: int = 128
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ActSpecError(
                "tokens must be integer ids of shape [batch, length], got "
                f"{tokens.dtype}{list(tokens.shape)}."
            )
        if tokens.shape[1] > self.context:
            raise ActSpecError(f"sequences of {tokens.shape[1]} tokens exceed the context of {self.context}.")
        init = nn.initializers.normal(0.02)
        x = nn.Embed(self.vocab_size, self.width, embedding_init=init, name="embed")(tokens)
        x = x + self.param("pos_embed", init, (self.context, self.width))[: tokens.shape[1]]
        keep = causal_keep(tokens)
        for i in range(self.depth):
            x = Block(self.num_heads, self.mlp_ratio * self.width, 0.0, "relu", name=f"block_{i}")(
                x, keep, False
            )
        x = nn.LayerNorm(name="ln_final")(x)
        return nn.Dense(self.vocab_size, name="unembed")(x)

    def cut_points(self) -> dict[str, int]:
        """``{path: n}`` for every block's heads, MLP units and residual stream."""
        return block_cut_points(self.depth, self.num_heads, self.mlp_ratio * self.width, self.width)

    def head_layers(self) -> list[str]:
        """Paths of every block's head tap (all heads of all layers in one problem)."""
        return [f"block_{i}/attn/heads" for i in range(self.depth)]

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable."""
        return module_config(self)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SparseAutoencoder:
    """A ReLU sparse autoencoder over ``D``-dimensional activations with ``k`` latents.

    Attributes:
      w_enc: ``float[D, k]``.
      b_enc: ``float[k]``.
      w_dec: ``float[k, D]``, rows of unit norm (the latents' directions).
      b_dec: ``float[D]``, subtracted before encoding and added back after decoding.
    """

    w_enc: jax.Array
    b_enc: jax.Array
    w_dec: jax.Array
    b_dec: jax.Array

    def encode(self, activations: jax.Array) -> jax.Array:
        """``codes float[..., k] = relu((a − b_dec)·W_enc + b_enc)`` of ``a float[..., D]``."""
        return jax.nn.relu((activations - self.b_dec) @ self.w_enc + self.b_enc)

    def decode(self, codes: jax.Array) -> jax.Array:
        """``â float[..., D] = codes·W_dec + b_dec``."""
        return codes @ self.w_dec + self.b_dec

    @property
    def num_latents(self) -> int:
        return int(self.w_dec.shape[0])


class MovieLanguageModel(NamedTuple):
    """The shipped language model: module, variables, tokenizer, its SAE and the sidecar."""

    module: MovieLM
    variables: Any
    tokenizer: Tokenizer
    sae: SparseAutoencoder
    info: dict[str, Any]


def load_movie_lm(directory: str | Path | None = None) -> MovieLanguageModel:
    """The shipped language model and the SAE on its ``info['sae']['layer']`` residual stream.

    Weights are stored as float16 and returned as float32 (the recorded figures were measured
    after that round trip). Encode texts with ``tokenizer.encode(texts, module.context).tokens``.
    """
    directory = Path(directory) if directory is not None else WEIGHTS_DIR
    variables, info = load_variables(directory / LM_WEIGHTS)
    sae_arrays, _ = load_variables(directory / f"{LM_WEIGHTS}_sae")
    try:
        module = MovieLM(**info["architecture"])
        tokenizer = Tokenizer.load(directory / info["vocabulary_file"])
        sae = SparseAutoencoder(**{k: jnp.asarray(v, jnp.float32) for k, v in sae_arrays.items()})
    except (KeyError, TypeError) as err:
        raise ActSpecError(f"{directory / LM_WEIGHTS}.json or its SAE file is not valid: {err}.") from None
    if tokenizer.vocab_size != module.vocab_size:
        raise ActSpecError(
            f"the vocabulary has {tokenizer.vocab_size} tokens; the model expects {module.vocab_size}."
        )
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), variables)
    return MovieLanguageModel(module, variables, tokenizer, sae, info)
