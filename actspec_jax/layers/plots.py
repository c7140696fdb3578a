"""Layer × layer heatmaps (matplotlib ``Figure`` objects, no pyplot state)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from actspec_jax.reports._literal import literal_text

__all__ = ["plot_layer_matrix"]


@literal_text
def plot_layer_matrix(
    matrix: np.ndarray,
    labels: Sequence[str],
    *,
    title: str,
    value_label: str,
    groups: np.ndarray | None = None,
    segments: Sequence[int] | None = None,
    cmap: str = "viridis",
    annotate: bool | None = None,
) -> Figure:
    """Heatmap of a layer × layer matrix (GW distance, CKA, …).

    Args:
      matrix: ``float[L, L]``.
      labels: layer names (rows and columns in network order).
      title, value_label: figure title and colour-bar label (with units/convention).
      groups: optional ``int[L]`` cluster label per layer, shown as coloured tick labels.
      segments: optional start indices of contiguous segments, drawn as boxes.
      annotate: print the values in the cells (default: when ``L ≤ 12``).
    """
    M = np.asarray(matrix, dtype=np.float64)
    L = M.shape[0]
    size = min(3.0 + 0.45 * L, 12.0)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    image = ax.imshow(M, cmap=cmap)
    fig.colorbar(image, ax=ax, label=value_label, fraction=0.046, pad=0.04)
    ax.set_xticks(range(L), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(L), labels, fontsize=8)
    if groups is not None:
        palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
        for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
            for tick, g in zip(ticks, groups):
                tick.set_color(palette[int(g) % len(palette)])
    if segments is not None:
        bounds = [*list(segments), L]
        for start, stop in itertools.pairwise(bounds):
            ax.add_patch(_box(start - 0.5, stop - start, edge="white" if cmap != "Greys" else "black"))
    if annotate if annotate is not None else L <= 12:
        for i in range(L):
            for j in range(L):
                red, green, blue, _ = image.cmap(image.norm(M[i, j]))
                light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
                ax.text(
                    j,
                    i,
                    f"{M[i, j]:.3g}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if light else "white",
                )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _box(corner: float, width: float, edge: str):
    from matplotlib.patches import Rectangle

    return Rectangle((corner, corner), width, width, fill=False, edgecolor=edge, linewidth=2.0)
