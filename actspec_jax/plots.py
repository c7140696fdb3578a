"""Figures of a spectrum, drawn on matplotlib ``Figure`` objects (no pyplot global state).

Every function returns a new :class:`matplotlib.figure.Figure`; save it with
``fig.savefig`` or add it to a :class:`actspec_jax.report.Report`.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from actspec_jax.spectrum import Spectrum

__all__ = [
    "plot_energy_by_degree",
    "plot_participation_heatmap",
    "plot_subset_sizes",
    "plot_top_coefficients",
]

_DEGREE_COLORS = ["#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _degree_color(degree: int) -> str:
    return _DEGREE_COLORS[min(degree, len(_DEGREE_COLORS) - 1)]


def _output_name(spectrum: Spectrum) -> str:
    return str(spectrum.problem.get("output") or spectrum.output_label or "f")


def plot_energy_by_degree(spectrum: Spectrum, *, include_constant: bool = False) -> Figure:
    """Bar chart of the share of energy ``W^k / Σ_{j≥1} W^j`` at each degree ``k``."""
    energy = spectrum.energy_by_degree()
    degrees = np.arange(energy.shape[0])
    if not include_constant:
        degrees, energy = degrees[1:], energy[1:]
    total = energy.sum()
    share = energy / total if total > 0 else energy
    visible = np.flatnonzero(share > 1e-4)  # drop the negligible tail of high degrees
    last = int(visible[-1]) + 1 if visible.size else 1
    degrees, share = degrees[:last], share[:last]
    fig = Figure(figsize=(5.2, 3.2))
    ax = fig.subplots()
    ax.bar(degrees, share, color=[_degree_color(int(d)) for d in degrees])
    ax.set_xlabel("degree |S| (number of neurons acting jointly)")
    ax.set_ylabel("share of non-constant energy" if not include_constant else "energy share")
    ax.set_xticks(degrees)
    d = spectrum.distributedness()
    ax.set_title(
        f"Energy by degree — {_output_name(spectrum)}\n"
        f"higher-order share {d['higher_order_share']:.2f}, mean degree {d['mean_degree']:.2f}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_top_coefficients(spectrum: Spectrum, k: int = 20, *, include_constant: bool = False) -> Figure:
    """Horizontal bars of the ``k`` largest coefficients, labelled by their neurons,
    coloured by degree, with ±2 standard errors when the solver reports them."""
    labels = spectrum.neuron_labels
    rows = [
        (subset, float(coef), None if spectrum.stderr is None else float(spectrum.stderr[i]))
        for i, (subset, coef) in enumerate(zip(spectrum.subset_tuples(), spectrum.coefficients))
        if include_constant or subset
    ][:k]
    fig = Figure(figsize=(6.4, 0.32 * max(len(rows), 3) + 1.2))
    ax = fig.subplots()
    ys = np.arange(len(rows))[::-1]
    names = ["{" + ", ".join(labels[i] for i in s) + "}" if s else "∅" for s, _, _ in rows]
    errors = [2 * e if e is not None else 0.0 for _, _, e in rows]
    ax.barh(
        ys,
        [c for _, c, _ in rows],
        xerr=errors if spectrum.stderr is not None else None,
        color=[_degree_color(len(s)) for s, _, _ in rows],
    )
    ax.set_yticks(ys, names, fontsize=8)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel(f"Fourier coefficient f̂(S) of {_output_name(spectrum)} (+1 = neuron kept)")
    shown = sorted({len(s) for s, _, _ in rows})
    handles = [Patch(color=_degree_color(d), label=f"|S| = {d}") for d in shown]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_title(f"Top {len(rows)} subsets", fontsize=10)
    fig.tight_layout()
    return fig


def plot_participation_heatmap(
    spectrum: Spectrum, *, shape: tuple[int, int] | None = None, weighted: bool = True
) -> Figure:
    """Per-neuron participation on a grid (16×16 for 256 units): the share of non-constant
    energy in terms containing each neuron (``weighted``) or the count of subsets."""
    values = spectrum.participation(weighted=weighted)
    n = values.shape[0]
    if shape is None:
        side = math.isqrt(n)
        shape = (side, side) if side * side == n else (1, n)
    rows, cols = shape
    if rows * cols < n:
        raise ValueError(f"grid {shape} is too small for {n} neurons.")
    grid = np.full(rows * cols, np.nan)
    grid[:n] = values
    fig = Figure(figsize=(4.6, 4.0))
    ax = fig.subplots()
    image = ax.imshow(grid.reshape(rows, cols), cmap="viridis")
    fig.colorbar(image, ax=ax, label="energy share" if weighted else "subsets containing neuron")
    ax.set_title(f"Neuron participation — {_output_name(spectrum)}", fontsize=10)
    ax.set_xlabel(f"neuron index mod {cols}")
    ax.set_ylabel(f"neuron index // {cols}")
    fig.tight_layout()
    return fig


def plot_subset_sizes(spectrum: Spectrum) -> Figure:
    """Histogram of the sizes ``|S|`` of the listed non-empty subsets."""
    degrees = spectrum.degrees
    degrees = degrees[degrees > 0]
    fig = Figure(figsize=(4.6, 3.0))
    ax = fig.subplots()
    top = int(degrees.max(initial=1))
    counts = np.bincount(degrees, minlength=top + 1)[1:]
    ax.bar(np.arange(1, top + 1), counts, color=[_degree_color(d) for d in range(1, top + 1)])
    ax.set_xlabel("subset size |S|")
    ax.set_ylabel("number of subsets found")
    ax.set_xticks(np.arange(1, top + 1))
    ax.set_title("Sizes of the subsets found", fontsize=10)
    fig.tight_layout()
    return fig
