"""A concept basis for one layer: offset + non-negative dictionary, and how to apply it.

Activations ``A float[..., N]`` of any leading shape (inputs, or inputs × tokens) are
flattened to rows ``[R, N]``; a basis fitted on them holds

* ``offset float[N]`` — subtracted before fitting (zero by default; ``shift='min'``
  uses each neuron's minimum over the fitting rows, for layers that can be negative such
  as GELU outputs — ``A − offset ≥ 0`` on those rows);
* ``dictionary float[k, N] ≥ 0`` — the concepts, rows rescaled to unit L2 norm, so a
  concept's code ``u_j`` is the length of its contribution ``u_j W_j`` (comparable with
  a single neuron's activation).

Codes of any activations are ``encode(max(A − offset, 0), W)`` (non-negative least
squares with the dictionary fixed); the exact decomposition used everywhere is

    A = offset + U W + residual,   residual = A − offset − U W.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.concepts.nmf import (
    check_activations,
    encode,
    fit_nmf,
    normalize_dictionary,
    relative_error,
)
from actspec_jax.errors import ActSpecError

__all__ = ["ConceptBasis", "fit_basis"]

Shift = Literal["none", "min"]


class ConceptBasis(NamedTuple):
    """A fitted concept basis (a pytree of arrays; see the module docstring).

    Attributes:
      dictionary: ``float32[k, N]`` unit-norm non-negative concepts.
      offset: ``float32[N]`` subtracted before the dictionary applies.
      relative_error: ``‖A − offset − UW‖_F / ‖A − offset‖_F`` on the fitting rows.
      iterations: HALS sweeps used by the fit.
    """

    dictionary: jax.Array
    offset: jax.Array
    relative_error: jax.Array
    iterations: jax.Array

    @property
    def num_concepts(self) -> int:
        return int(self.dictionary.shape[0])

    def codes(self, activations: jax.Array, **encode_kwargs) -> jax.Array:
        """Codes ``float[..., k]`` of activations ``float[..., N]`` (NNLS, dictionary fixed)."""
        A = jnp.asarray(activations, jnp.float32)
        rows = jnp.maximum(A.reshape(-1, A.shape[-1]) - self.offset, 0.0)
        U = encode(rows, self.dictionary, **encode_kwargs)
        return U.reshape((*A.shape[:-1], U.shape[-1]))

    def reconstruct(self, codes: jax.Array) -> jax.Array:
        """``offset + U W`` for codes ``float[..., k]``."""
        return self.offset + codes @ self.dictionary

    def error(self, activations: jax.Array) -> jax.Array:
        """Relative Frobenius error of encoding new activations: ``‖A − offset − UW‖ / ‖A − offset‖``."""
        A = jnp.asarray(activations, jnp.float32).reshape(-1, self.dictionary.shape[1])
        U = self.codes(A)
        return relative_error(A - self.offset, U, self.dictionary)


def fit_basis(
    activations: jax.Array,
    num_concepts: int,
    *,
    key: jax.Array,
    shift: Shift = "none",
    token_mask: jax.Array | None = None,
    alpha: float = 1e-2,
    l1_ratio: float = 0.0,
    max_iter: int = 500,
    tol: float = 1e-4,
) -> ConceptBasis:
    """Fit a concept basis on activations ``float[..., N]`` (rows = all leading positions).

    Args:
      activations: e.g. ``[inputs, N]`` or ``[inputs, tokens, N]``; tokens become rows.
      num_concepts: ``k ≤`` number of rows.
      key: PRNG key for the NMF initialisation.
      shift: ``'none'`` (activations must be ≥ 0, e.g. after a ReLU) or ``'min'``
        (subtract each neuron's minimum first).
      token_mask: optional ``float[inputs, tokens]`` (1 = real token) for ``[inputs, tokens,
        N]`` activations: only real tokens become rows (padding is left out of the fit).
      alpha, l1_ratio, max_iter, tol: NMF settings (:func:`fit_nmf`; CRAFT defaults).
    """
    A = jnp.asarray(activations, jnp.float32)
    if A.ndim < 2:
        raise ActSpecError(
            f"activations must have a leading row axis and a neuron axis, got shape {tuple(A.shape)}."
        )
    if token_mask is not None:
        keep = np.asarray(token_mask).reshape(-1) > 0
        if A.ndim < 3 or keep.shape[0] != int(np.prod(A.shape[:-1])):
            raise ActSpecError(
                f"token_mask must be [inputs, tokens] matching the activations {tuple(A.shape)}, got "
                f"{np.shape(token_mask)}."
            )
        rows = A.reshape(-1, A.shape[-1])[np.flatnonzero(keep)]
    else:
        rows = A.reshape(-1, A.shape[-1])
    if shift == "none":
        offset = jnp.zeros((rows.shape[1],), jnp.float32)
    elif shift == "min":
        offset = rows.min(axis=0)
    else:
        raise ActSpecError(f"shift must be 'none' or 'min', got {shift!r}.")
    centred = check_activations(rows - offset)
    fit = fit_nmf(centred, num_concepts, key=key, alpha=alpha, l1_ratio=l1_ratio, max_iter=max_iter, tol=tol)
    _, W = normalize_dictionary(fit.codes, fit.dictionary)
    return ConceptBasis(
        dictionary=W, offset=offset, relative_error=fit.relative_error, iterations=fit.iterations
    )
