"""Figures of a spectrum, drawn on matplotlib ``Figure`` objects (no pyplot global state).

Every function returns a new :class:`matplotlib.figure.Figure`; save it with
``fig.savefig`` or add it to a :class:`actspec_jax.reports.report.Report`.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from actspec_jax.reports._literal import literal_text
from actspec_jax.spectrum import Spectrum, share_percent

__all__ = [
    "plot_degree_profiles",
    "plot_energy_by_degree",
    "plot_faithfulness_curve",
    "plot_pair_matrix",
    "plot_participation_grid",
    "plot_participation_heatmap",
    "plot_subset_sizes",
    "plot_top_coefficients",
]

_DEGREE_COLORS = ["#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _degree_color(degree: int) -> str:
    return _DEGREE_COLORS[min(degree, len(_DEGREE_COLORS) - 1)]


def _output_name(spectrum: Spectrum) -> str:
    return str(spectrum.problem.get("output") or spectrum.output_label or "f")


@literal_text
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
        f"interaction share (listed terms) {share_percent(d['higher_order_share'])}, "
        f"mean degree {d['mean_degree']:.2f}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


@literal_text
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


@literal_text
def plot_pair_matrix(spectrum: Spectrum, k: int = 12, *, z: float = 3.0) -> Figure:
    """The pairwise coefficients ``f̂({i, j})`` among the ``k`` units that carry the most listed
    pair energy: a symmetric matrix (red = keeping both raises the output beyond their single
    effects), grey where the pair is not listed, a dot where ``|f̂| ≥ z`` standard errors."""
    labels = spectrum.neuron_labels
    pairs = [
        (s, float(c), None if spectrum.stderr is None else float(spectrum.stderr[i]))
        for i, (s, c) in enumerate(zip(spectrum.subset_tuples(), spectrum.coefficients))
        if len(s) == 2
    ]
    weight: dict[int, float] = {}
    for (i, j), c, _ in pairs:
        weight[i] = weight.get(i, 0.0) + c * c
        weight[j] = weight.get(j, 0.0) + c * c
    units = sorted(weight, key=lambda u: -weight[u])[:k]
    where = {u: a for a, u in enumerate(units)}
    grid = np.full((len(units), len(units)), np.nan)
    sure = []
    for (i, j), c, e in pairs:
        if i in where and j in where:
            grid[where[i], where[j]] = grid[where[j], where[i]] = c
            if e is not None and abs(c) >= z * e:
                sure += [(where[i], where[j]), (where[j], where[i])]
    fig = Figure(figsize=(1.0 + 0.42 * max(len(units), 4), 0.6 + 0.42 * max(len(units), 4)))
    ax = fig.subplots()
    ax.set_facecolor("#e6e6e6")
    if units:
        bound = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-bound, vmax=bound)
        fig.colorbar(image, ax=ax, shrink=0.8, label="f̂({i, j})")
        for r, c in sure:
            ax.plot(c, r, "k.", markersize=4)
        names = [labels[u] for u in units]
        ax.set_xticks(range(len(units)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(units)), names, fontsize=7)
    ax.set_title(f"Pairwise coefficients of the top {len(units)} units (• = {z:g} se)", fontsize=10)
    fig.tight_layout()
    return fig


@literal_text
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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


@literal_text
def plot_subset_sizes(spectrum: Spectrum, *, z: float = 3.0) -> Figure:
    """Per subset size ``|S|`` of the listed non-empty subsets: the share of their energy
    (``Σ f̂(S)²``, left) and how many there are, split into those at least ``z`` standard errors
    from zero and the rest (right) — a count alone makes many small pairs look dominant."""
    degrees = spectrum.degrees
    keep = degrees > 0
    degrees = degrees[keep]
    energy = np.asarray(spectrum.coefficients, np.float64)[keep] ** 2
    if spectrum.stderr is None:
        sure = np.ones(degrees.shape, bool)
    else:
        se = np.asarray(spectrum.stderr, np.float64)[keep]
        sure = np.sqrt(energy) >= z * se
    top = int(degrees.max(initial=1))
    sizes = np.arange(1, top + 1)
    share = np.bincount(degrees, weights=energy, minlength=top + 1)[1:] / max(float(energy.sum()), 1e-300)
    strong = np.bincount(degrees[sure], minlength=top + 1)[1:]
    weak = np.bincount(degrees[~sure], minlength=top + 1)[1:]
    fig = Figure(figsize=(8.0, 3.0))
    left, right = fig.subplots(1, 2)
    colors = [_degree_color(d) for d in sizes]
    left.bar(sizes, 100 * share, color=colors)
    left.set_ylabel("% of the listed terms' energy")
    left.set_title("Energy by subset size", fontsize=10)
    right.bar(sizes, strong, color=colors, label=f"|f̂| ≥ {z:g} se" if spectrum.stderr is not None else "all")
    if spectrum.stderr is not None:
        right.bar(sizes, weak, bottom=strong, color=colors, alpha=0.3, label=f"|f̂| < {z:g} se")
        right.legend(fontsize=8)
    right.set_ylabel("number of subsets listed")
    right.set_title("Subsets listed", fontsize=10)
    for ax in (left, right):
        ax.set_xlabel("subset size |S|")
        ax.set_xticks(sizes)
    fig.tight_layout()
    return fig


_SPECTRAL_COLORS = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
_ORDER_STYLES = {"attribution": ("#1f77b4", "--"), "leave-one-out": ("#2ca02c", "-.")}


def _order_style(name: str, spectral_seen: int) -> tuple[str, str]:
    for prefix, style in _ORDER_STYLES.items():
        if name.startswith(prefix):
            return style
    if name.startswith("spectral"):
        return _SPECTRAL_COLORS[spectral_seen % len(_SPECTRAL_COLORS)], "-"
    return "#7f7f7f", ":"


@literal_text
def plot_faithfulness_curve(curve, *, title: str | None = None, ax=None) -> Figure:
    """Output drop ``D(k)`` against the number of neurons ablated: one line per ordering, random
    orderings as a 10–90 % band around their mean.

    ``curve`` is an :class:`actspec_jax.analysis.ablation.FaithfulnessCurve`; subset boundaries of subset
    orderings are marked with dots. Pass ``ax`` to draw into an existing axes.
    """
    own = ax is None
    if own:
        fig = Figure(figsize=(6.0, 3.8))
        ax = fig.subplots()
    else:
        fig = ax.figure
    ks = curve.ks
    mean, low, high = curve.random_band()
    ax.fill_between(ks, low, high, color="#bbbbbb", alpha=0.6, label="random (10–90 % band)")
    ax.plot(ks, mean, color="#555555", linewidth=1.2, label="random (mean)")
    spectral_seen = 0
    for name, drop in curve.drops.items():
        color, style = _order_style(name, spectral_seen)
        spectral_seen += name.startswith("spectral")
        ax.plot(ks, drop, color=color, linestyle=style, linewidth=1.8, label=name)
        bounds = [b for b in curve.boundaries.get(name, []) if b <= ks[-1]]
        if bounds:
            idx = np.searchsorted(ks, bounds)
            idx = idx[idx < ks.size]
            ax.plot(ks[idx], drop[idx], "o", color=color, markersize=3.5)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("neurons ablated together, k")
    ax.set_ylabel(f"output drop D(k) ({curve.output})")
    ax.set_title(title or f"Deletion curve (intact f = {curve.baseline:.3g})", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper left")
    ax.set_xlim(ks[0], ks[-1])
    if own:
        fig.tight_layout()
    return fig


@literal_text
def plot_degree_profiles(
    spectra,
    *,
    max_degree: int = 4,
    title: str = "Energy by degree",
    ax=None,
    xlabel: str = "function",
    legend: bool = True,
) -> Figure:
    """Stacked bars: for each named spectrum, the share of its non-constant energy at degree
    1, 2, …, ``max_degree`` (the last bar segment collects ``≥ max_degree``).

    ``spectra`` maps a label (e.g. a class) to a :class:`Spectrum`; the legend (``legend=True``)
    sits to the right of the axes.
    """
    own = ax is None
    if own:
        fig = Figure(figsize=(0.55 * max(len(spectra), 4) + 3.2, 3.2))
        ax = fig.subplots()
    else:
        fig = ax.figure
    names = list(spectra)
    shares = np.zeros((len(names), max_degree))
    for row, name in enumerate(names):
        energy = spectra[name].energy_by_degree()[1:]
        total = energy.sum()
        if total > 0:
            top = np.zeros(max_degree)
            top[: min(max_degree, energy.size)] = energy[:max_degree]
            top[-1] += energy[max_degree:].sum()
            shares[row] = top / total
    bottom = np.zeros(len(names))
    x = np.arange(len(names))
    for d in range(max_degree):
        label = f"|S| = {d + 1}" if d + 1 < max_degree else f"|S| ≥ {max_degree}"
        ax.bar(x, shares[:, d], bottom=bottom, color=_degree_color(d + 1), label=label)
        bottom += shares[:, d]
    ax.set_xticks(x, [str(n) for n in names])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of non-constant energy")
    ax.set_ylim(0, 1.0)
    ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    if own:
        fig.tight_layout()
    return fig


@literal_text
def plot_participation_grid(
    spectra, *, shape: tuple[int, int] | None = None, columns: int = 5, title: str = "Neuron participation"
) -> Figure:
    """One participation heatmap per named spectrum (same colour scale), e.g. one per class."""
    names = list(spectra)
    rows = -(-len(names) // columns)
    fig = Figure(figsize=(2.3 * min(columns, len(names)) + 0.8, 2.3 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, min(columns, len(names)), squeeze=False)).reshape(-1)
    grids = []
    for name in names:
        values = spectra[name].participation()
        n = values.shape[0]
        r, c = shape or ((math.isqrt(n),) * 2 if math.isqrt(n) ** 2 == n else (1, n))
        grid = np.full(r * c, np.nan)
        grid[:n] = values
        grids.append(grid.reshape(r, c))
    vmax = max(float(np.nanmax(g)) for g in grids) if grids else 1.0
    image = None
    for ax, name, grid in zip(axes, names, grids):
        image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=vmax or 1.0)
        ax.set_title(str(name), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(names) :]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="share of non-constant energy")
    fig.suptitle(title, fontsize=10)
    return fig
