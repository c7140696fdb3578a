"""Figures of game-theoretic indices, drawn on matplotlib ``Figure`` objects (no pyplot state).

* :func:`plot_shapley_vs_fourier` — per-neuron Shapley values next to the first-order
  Fourier coefficients ``f̂({i})`` (and Banzhaf values ``2 f̂({i})``): where they disagree,
  the neuron's effect lives in odd higher-order terms (``φ_i = Σ_{R∋i, |R| odd} 2 f̂(R)/|R|``).
* :func:`plot_interaction_network` — the strongest pairwise interactions as a network:
  neurons on a circle, edge width ∝ ``|I(i, j)|``, colour = sign, node area ∝ ``|φ_i|``.

Both return a new :class:`matplotlib.figure.Figure`; save with ``fig.savefig``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from actspec_jax.analysis.indices import banzhaf_values, interaction_index, shapley_values
from actspec_jax.errors import ActSpecError
from actspec_jax.reports._literal import literal_text

__all__ = ["plot_interaction_network", "plot_shapley_vs_fourier"]

_POS, _NEG = "#1f77b4", "#d62728"


def _first_order(spectrum: Any) -> np.ndarray:
    if getattr(spectrum, "dense", None) is not None:
        dense = np.asarray(spectrum.dense, np.float64)
        return dense[[1 << i for i in range(spectrum.n)]]
    out = np.zeros(spectrum.n)
    for subset, coef in spectrum.to_dict().items():
        if len(subset) == 1:
            out[subset[0]] += coef
    return out


@literal_text
def plot_shapley_vs_fourier(spectrum: Any, *, top: int = 25) -> Figure:
    """Shapley values ``φ_i`` beside first-order coefficients ``f̂({i})`` for each neuron.

    Left: grouped bars for the ``top`` neurons by ``|φ_i|`` (Shapley, ``f̂({i})``, Banzhaf
    ``= 2 f̂({i})``). Right: ``φ_i`` against ``2 f̂({i})`` for every neuron, with the
    diagonal — points off it owe their Shapley value to higher-order (odd-degree) terms.
    Units: the output's units (e.g. logits).
    """
    if top < 1:
        raise ActSpecError(f"top must be >= 1, got {top}.")
    sv = shapley_values(spectrum)
    bv = banzhaf_values(spectrum)
    first = _first_order(spectrum)
    labels = list(spectrum.neuron_labels)
    order = np.argsort(-np.abs(sv), kind="stable")[: min(top, spectrum.n)]
    fig = Figure(figsize=(11.0, max(3.2, 0.28 * len(order) + 1.4)))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1.0]})
    y = np.arange(len(order))
    h = 0.27
    left.barh(y - h, sv[order], height=h, color="#2ca02c", label="Shapley φ_i")
    left.barh(y, first[order], height=h, color="#7f7f7f", label="Fourier f̂({i})")
    left.barh(y + h, bv[order], height=h, color="#ff7f0e", label="Banzhaf 2f̂({i})")
    left.set_yticks(y, [labels[i] for i in order], fontsize=8)
    left.invert_yaxis()
    left.axvline(0.0, color="black", lw=0.6)
    left.set_xlabel("value (output units)")
    left.set_title(f"Top {len(order)} neurons by |Shapley value|", fontsize=10)
    left.legend(fontsize=8, loc="lower right")
    right.scatter(bv, sv, s=14, color="#2ca02c", alpha=0.8)
    lim = float(max(np.abs(sv).max(initial=0), np.abs(bv).max(initial=0), 1e-12)) * 1.08
    right.plot([-lim, lim], [-lim, lim], color="#7f7f7f", lw=0.8, ls="--")
    right.set_xlim(-lim, lim)
    right.set_ylim(-lim, lim)
    right.set_xlabel("Banzhaf value 2 f̂({i})")
    right.set_ylabel("Shapley value φ_i")
    gap = float(np.sqrt(np.mean((sv - bv) ** 2)))
    right.set_title(f"All {spectrum.n} neurons (rms gap {gap:.3g})", fontsize=10)
    fig.tight_layout()
    return fig


def _pairs_from(values: Mapping[tuple[int, ...], float]) -> dict[tuple[int, int], float]:
    return {(int(k[0]), int(k[1])): float(v) for k, v in values.items() if len(k) == 2}


@literal_text
def plot_interaction_network(
    source: Any,
    *,
    index: str = "k-SII",
    max_edges: int = 20,
    n: int | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Network of the strongest pairwise interactions.

    Args:
      source: a :class:`~actspec_jax.Spectrum` (then ``index`` of order 2 is computed, with
        Shapley values for the nodes) or a precomputed ``{subset: value}`` dict from
        :func:`~actspec_jax.analysis.indices.interaction_index` (node sizes from its singletons).
      index: interaction index to draw when ``source`` is a spectrum.
      max_edges: draw the ``max_edges`` pairs with the largest ``|I(i, j)|``.
      n, labels: number of neurons and their labels when ``source`` is a dict.
      title: figure title (default names the index).

    Neurons that appear in a drawn edge sit on a circle; edge width ∝ ``|I(i, j)|``,
    blue = positive (synergy), red = negative (redundancy); node area ∝ ``|node value|``.
    """
    if max_edges < 1:
        raise ActSpecError(f"max_edges must be >= 1, got {max_edges}.")
    if isinstance(source, Mapping):
        values = dict(source)
        size = n if n is not None else 1 + max((max(k) for k in values if k), default=0)
        nodes = np.zeros(size)
        for k, v in values.items():
            if len(k) == 1:
                nodes[k[0]] = v
        names = list(labels) if labels is not None else [str(i) for i in range(size)]
        what = title or "pairwise interactions"
    else:
        values = interaction_index(source, index, 2)
        nodes = shapley_values(source)
        names = list(source.neuron_labels)
        what = title or f"{index} pairwise interactions (node size: |Shapley value|)"
    pairs = _pairs_from(values)
    ranked = sorted(pairs.items(), key=lambda kv: -abs(kv[1]))[:max_edges]
    ranked = [(p, v) for p, v in ranked if v != 0.0]
    fig = Figure(figsize=(6.4, 6.4))
    ax = fig.subplots()
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(what, fontsize=10)
    if not ranked:
        ax.text(
            0.5, 0.5, "no non-zero pairwise interactions", ha="center", va="center", transform=ax.transAxes
        )
        return fig
    members = sorted({i for pair, _ in ranked for i in pair})
    angle = {i: 2 * math.pi * j / len(members) for j, i in enumerate(members)}
    pos = {i: (math.cos(a), math.sin(a)) for i, a in angle.items()}
    top = max(abs(v) for _, v in ranked)
    for (i, j), v in reversed(ranked):  # strongest drawn last, on top
        (x0, y0), (x1, y1) = pos[i], pos[j]
        ax.plot([x0, x1], [y0, y1], color=_POS if v > 0 else _NEG, lw=0.5 + 6.0 * abs(v) / top, alpha=0.75)
    scale = max(float(np.abs(nodes[members]).max()), 1e-12)
    for i in members:
        x, y = pos[i]
        ax.scatter([x], [y], s=80 + 900 * abs(nodes[i]) / scale, color="#dddddd", edgecolor="black", zorder=3)
        ax.text(1.16 * x, 1.16 * y, names[i], ha="center", va="center", fontsize=8)
    ax.set_xlim(-1.35, 1.35)
    ax.set_ylim(-1.35, 1.35)
    legend = [
        Line2D([0], [0], color=_POS, lw=3, label="positive"),
        Line2D([0], [0], color=_NEG, lw=3, label="negative"),
    ]
    ax.legend(handles=legend, loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
