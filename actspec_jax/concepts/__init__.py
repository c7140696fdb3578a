"""Concept bases: sparse non-negative dictionaries over a layer (CRAFT-style NMF).

* :func:`fit_nmf` / :func:`encode` — ``U·W ≈ A`` with ``U, W ≥ 0`` (HALS, jit-compiled),
  and codes of new activations with the dictionary fixed (NNLS);
* :func:`fit_basis` → :class:`ConceptBasis` — a layer's concepts (offset, unit-norm
  dictionary), for activations with token axes too;
* :class:`ConceptProblem` — ActSpec with the concepts as variables (mask over concepts,
  residual kept; exact for ``k ≤ 24``, Goldreich–Levin above via :func:`concept_spectrum`);
* :func:`decision_contribution` — null the top unit vs the top concept (Colin et al. 2024);
  :func:`top_exemplars` and the figures in :mod:`actspec_jax.concepts.figures`.
"""

from actspec_jax.concepts.basis import ConceptBasis, fit_basis
from actspec_jax.concepts.contribution import decision_contribution, pooled_scores, top_exemplars
from actspec_jax.concepts.figures import plot_contribution, plot_image_exemplars, text_exemplars
from actspec_jax.concepts.nmf import (
    INITS,
    NegativeActivationError,
    NMFResult,
    encode,
    fit_nmf,
    normalize_dictionary,
    relative_error,
)
from actspec_jax.concepts.problem import ConceptProblem, concept_problem, concept_spectrum

__all__ = [
    "INITS",
    "ConceptBasis",
    "ConceptProblem",
    "NMFResult",
    "NegativeActivationError",
    "concept_problem",
    "concept_spectrum",
    "decision_contribution",
    "encode",
    "fit_basis",
    "fit_nmf",
    "normalize_dictionary",
    "plot_contribution",
    "plot_image_exemplars",
    "pooled_scores",
    "relative_error",
    "text_exemplars",
    "top_exemplars",
]
