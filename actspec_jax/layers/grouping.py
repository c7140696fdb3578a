"""Grouping layers into sub-networks from a layer × layer distance matrix.

Two readings of the block structure of ``D float[L, L]`` (symmetric, zero diagonal; e.g.
GW distances, or ``1 − CKA``):

* :func:`cluster_layers` — agglomerative (hierarchical) clustering of the layers with
  scipy's ``linkage`` (``'average'`` by default), cut into ``num_groups`` clusters; groups
  need not be contiguous in depth.
* :func:`segment_layers` — the best split of the layer *sequence* into ``num_groups``
  contiguous segments by dynamic programming, minimising the total within-segment scatter

      cost(segment S) = Σ_{a<b ∈ S} D[a, b] / |S|

  (for squared Euclidean distances this is exactly ``Σ_{a∈S} ‖x_a − mean_S‖²``, the k-means
  objective). Exact, ``O(L² · num_groups)``.

Labels are integers ``0..g−1`` numbered by first appearance in layer order.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = ["Segmentation", "cluster_layers", "segment_layers"]

Linkage = Literal["average", "complete", "single", "weighted"]


class Segmentation(NamedTuple):
    """Contiguous segmentation of the layer sequence.

    Attributes:
      labels: ``int[L]`` segment of each layer.
      boundaries: start index of each segment (``[0, …]``).
      cost: total within-segment scatter of this segmentation.
      cost_by_groups: ``float[L]`` optimal cost for ``1..L`` segments (for choosing ``g``
        by the elbow; ``cost_by_groups[g − 1]``).
    """

    labels: np.ndarray
    boundaries: tuple[int, ...]
    cost: float
    cost_by_groups: np.ndarray


def _check(D: np.ndarray, num_groups: int) -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ActSpecError(f"the distance matrix must be square [layers, layers], got {D.shape}.")
    L = D.shape[0]
    if L < 2:
        raise ActSpecError(
            f"grouping needs at least 2 layers, got {L}; compare two or more layers of the model."
        )
    if not np.all(np.isfinite(D)):
        raise ActSpecError("the distance matrix contains NaN or inf.")
    if not np.allclose(D, D.T, rtol=1e-6, atol=1e-9):
        raise ActSpecError("the distance matrix must be symmetric (D[a, b] == D[b, a]).")
    if not 1 <= int(num_groups) <= L:
        raise ActSpecError(f"num_groups must be between 1 and the number of layers ({L}), got {num_groups}.")
    return D


def _relabel(labels: np.ndarray) -> np.ndarray:
    order: dict[int, int] = {}
    return np.asarray([order.setdefault(int(x), len(order)) for x in labels], dtype=np.int64)


def cluster_layers(D: np.ndarray, num_groups: int, *, method: Linkage = "average") -> np.ndarray:
    """Hierarchical clustering of layers into ``num_groups`` groups → ``int[L]`` labels."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    D = _check(D, num_groups)
    if method not in ("average", "complete", "single", "weighted"):
        raise ActSpecError(f"unknown linkage {method!r}; use average, complete, single or weighted.")
    condensed = squareform(np.maximum(D - np.diag(np.diag(D)), 0.0), checks=False)
    tree = linkage(condensed, method=method)
    return _relabel(fcluster(tree, t=int(num_groups), criterion="maxclust"))


def segment_layers(D: np.ndarray, num_groups: int) -> Segmentation:
    """Optimal split of the layer order into ``num_groups`` contiguous segments (see module doc)."""
    D = _check(D, num_groups)
    L = D.shape[0]
    # seg[i, j] = cost of segment i..j inclusive, via 2-D prefix sums of the upper triangle
    upper = np.triu(D, k=1)
    prefix = np.zeros((L + 1, L + 1))
    prefix[1:, 1:] = upper.cumsum(0).cumsum(1)
    seg = np.full((L, L), np.inf)
    for i in range(L):
        for j in range(i, L):
            inside = prefix[j + 1, j + 1] - prefix[i, j + 1] - prefix[j + 1, i] + prefix[i, i]
            seg[i, j] = inside / (j - i + 1)
    best = np.full((L + 1, L + 1), np.inf)  # best[g, j]: first j layers in g segments
    arg = np.zeros((L + 1, L + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for g in range(1, L + 1):
        for j in range(g, L + 1):
            starts = np.arange(g - 1, j)
            costs = best[g - 1, starts] + seg[starts, j - 1]
            k = int(np.argmin(costs))
            best[g, j], arg[g, j] = costs[k], starts[k]
    g = int(num_groups)
    bounds, j = [], L
    for level in range(g, 0, -1):
        start = int(arg[level, j])
        bounds.append(start)
        j = start
    bounds = tuple(sorted(bounds))
    labels = np.zeros(L, dtype=np.int64)
    for index, start in enumerate(bounds):
        labels[start:] = index
    return Segmentation(
        labels=labels, boundaries=bounds, cost=float(best[g, L]), cost_by_groups=best[1:, L].copy()
    )
