"""One call for the whole cross-layer comparison: GW matrix, CKA matrix, groupings."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.layers.cka import linear_cka, rbf_cka
from actspec_jax.layers.costs import Metric, Normalization, cost_matrices
from actspec_jax.layers.grouping import Segmentation, cluster_layers, segment_layers
from actspec_jax.layers.gw import GWResult, gw_matrix

__all__ = ["LayerSimilarity", "cka_matrix", "layer_similarity"]


class LayerSimilarity(NamedTuple):
    """Result of :func:`layer_similarity` (all matrices ``[L, L]`` in layer order).

    Attributes:
      labels: layer names.
      gw: :class:`GWResult` (unregularised GW objective, symmetric, zero diagonal).
      cka: ``float[L, L]`` CKA similarity (``1`` on the diagonal).
      clusters: ``int[L]`` hierarchical clusters of the GW matrix.
      segments: contiguous segmentation of the GW matrix.
      settings: the settings used (metric, normalisation, ε, CKA kind, groups, seconds).
    """

    labels: tuple[str, ...]
    gw: GWResult
    cka: np.ndarray
    clusters: np.ndarray
    segments: Segmentation
    settings: dict[str, Any]


def cka_matrix(
    representations: Mapping[str, Any],
    *,
    kind: Literal["linear", "rbf"] = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
) -> np.ndarray:
    """CKA between every pair of representations ``{layer: float[m, d]}`` → ``float[L, L]``."""
    reps = list(representations.values())
    if kind not in ("linear", "rbf"):
        raise ActSpecError(f"CKA kind must be 'linear' or 'rbf', got {kind!r}.")
    L = len(reps)
    out = np.eye(L)
    for a in range(L):
        for b in range(a + 1, L):
            if kind == "linear":
                value = linear_cka(reps[a], reps[b], debiased=debiased)
            else:
                value = rbf_cka(reps[a], reps[b], threshold=threshold, debiased=debiased)
            out[a, b] = out[b, a] = float(value)
    return out


def layer_similarity(
    representations: Mapping[str, Any],
    *,
    metric: Metric = "euclidean",
    normalize: Normalization = "max",
    epsilon: float = 1e-3,
    anneal: tuple[float, ...] = (10.0, 3.0),
    num_groups: int = 2,
    linkage: str = "average",
    cka_kind: Literal["linear", "rbf"] = "linear",
    cka_debiased: bool = False,
    batch_size: int | None = None,
) -> LayerSimilarity:
    """GW distances (and CKA) between every pair of layers, and sub-networks from them.

    Args:
      representations: ``{layer: float[m, d_layer]}`` in network order, same ``m`` inputs
        (:func:`capture_representations`); at least two layers.
      metric, normalize: cost matrices (:func:`cost_matrix`).
      epsilon, anneal: entropic regularisation of the GW solver and its ε-continuation.
      num_groups: number of sub-networks for both groupings.
      linkage: hierarchical clustering method.
      cka_kind, cka_debiased: the CKA baseline.
      batch_size: GW pairs per vmapped batch.
    """
    if not isinstance(representations, Mapping):
        raise ActSpecError("representations must be a mapping {layer name: float[inputs, features]}.")
    labels = tuple(str(k) for k in representations)
    if len(labels) < 2:
        raise ActSpecError(
            f"comparing layers needs at least 2 layers, got {len(labels)} ({list(labels)}); name two "
            "or more layers."
        )
    started = time.perf_counter()
    costs = cost_matrices(list(representations.values()), metric=metric, normalize=normalize)
    gw = gw_matrix(costs, labels=labels, epsilon=epsilon, anneal=anneal, batch_size=batch_size)
    gw_seconds = time.perf_counter() - started
    similarity = cka_matrix(representations, kind=cka_kind, debiased=cka_debiased)
    groups = min(int(num_groups), len(labels))
    return LayerSimilarity(
        labels=labels,
        gw=gw,
        cka=similarity,
        clusters=cluster_layers(gw.distances, groups, method=linkage),  # type: ignore[arg-type]
        segments=segment_layers(gw.distances, groups),
        settings={
            "metric": metric,
            "normalize": normalize,
            "epsilon": float(epsilon),
            "anneal": [float(f) for f in anneal],
            "num_inputs": int(costs.shape[1]),
            "cka": f"{cka_kind}{' debiased' if cka_debiased else ''}",
            "num_groups": groups,
            "linkage": linkage,
            "gw_seconds": gw_seconds,
            "convention": "GW = sum_ijkl (C1_ik - C2_jl)^2 P_ij P_kl at the returned coupling; "
            "no 1/2, no square root; diagonal 0",
        },
    )
