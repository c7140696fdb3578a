"""Cross-layer similarity: which layers represent the same inputs alike (sub-networks).

* :func:`capture_representations` — every layer's representation of one input set
  (token pooling explicit);
* :func:`cost_matrix` / :func:`cost_matrices` — per-layer pairwise costs (metric and
  normalisation selectable);
* :func:`gw_matrix` — Gromov–Wasserstein distance between every pair of layers (ott-jax,
  entropic, vmapped); the unregularised objective ``Σ (C₁ᵢₖ − C₂ⱼₗ)² PᵢⱼPₖₗ`` at the
  returned coupling, no ½, no square root, zero diagonal;
* :func:`linear_cka`, :func:`rbf_cka` — centered kernel alignment (biased / debiased);
* :func:`cluster_layers`, :func:`segment_layers` — sub-networks from the block structure;
* :func:`plot_layer_matrix` — heatmap figure.
"""

from actspec_jax.layers.capture import POOLINGS, capture_representations, pool_tokens
from actspec_jax.layers.cka import cka, gram_linear, gram_rbf, hsic, linear_cka, rbf_cka
from actspec_jax.layers.costs import METRICS, NORMALIZATIONS, cost_matrices, cost_matrix
from actspec_jax.layers.grouping import Segmentation, cluster_layers, segment_layers
from actspec_jax.layers.gw import GWResult, gw_distance, gw_matrix, gw_objective, round_coupling
from actspec_jax.layers.plots import plot_layer_matrix
from actspec_jax.layers.similarity import LayerSimilarity, cka_matrix, layer_similarity

__all__ = [
    "METRICS",
    "NORMALIZATIONS",
    "POOLINGS",
    "GWResult",
    "LayerSimilarity",
    "Segmentation",
    "capture_representations",
    "cka",
    "cka_matrix",
    "cluster_layers",
    "cost_matrices",
    "cost_matrix",
    "gram_linear",
    "gram_rbf",
    "gw_distance",
    "gw_matrix",
    "gw_objective",
    "hsic",
    "layer_similarity",
    "linear_cka",
    "plot_layer_matrix",
    "pool_tokens",
    "rbf_cka",
    "round_coupling",
    "segment_layers",
]
