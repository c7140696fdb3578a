"""Figures and tables for concept analyses (matplotlib ``Figure``, no pyplot state)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure

from actspec_jax.reports._literal import literal_text

__all__ = ["plot_contribution", "plot_image_exemplars", "text_exemplars"]


@literal_text
def plot_image_exemplars(
    images: np.ndarray,
    most: np.ndarray,
    least: np.ndarray,
    names: Sequence[str],
    *,
    title: str,
    scores: np.ndarray | None = None,
) -> Figure:
    """Grid: one row per unit/concept, its most activating images, a gap, its least.

    Args:
      images: ``float[m, H, W]`` (grey) inputs.
      most, least: ``int[K, k]`` from :func:`top_exemplars`.
      names: row labels (``K``).
      scores: optional ``float[m, K]`` to print each image's score.
    """
    images = np.asarray(images)
    K, k = most.shape
    fig = Figure(figsize=(0.75 * (2 * k + 1) + 1.4, 0.8 * K + 0.8))
    axes = fig.subplots(K, 2 * k + 1, squeeze=False)
    for r in range(K):
        cells = [*list(most[r]), None, *list(least[r])]
        for c, index in enumerate(cells):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if index is None:
                ax.axis("off")
                continue
            ax.imshow(images[index], cmap="gray_r", vmin=0.0, vmax=max(float(images.max()), 1e-6))
            if scores is not None:
                ax.set_title(f"{scores[index, r]:.2g}", fontsize=6, pad=1)
        axes[r, 0].set_ylabel(names[r], fontsize=7, rotation=0, ha="right", va="center")
    axes[0, 0].annotate("most activating →", (0, 1.35), xycoords="axes fraction", fontsize=8)
    axes[0, k + 1].annotate("least activating →", (0, 1.35), xycoords="axes fraction", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def text_exemplars(
    texts: Sequence[str] | Callable[[int, int], str],
    most: np.ndarray,
    least: np.ndarray,
    names: Sequence[str],
    *,
    width: int = 90,
) -> list[list[str]]:
    """Table rows ``[name, most activating snippets, least activating snippets]``.

    ``texts`` is one text per input, or a function ``(row r, input i) -> str`` giving the
    snippet of input ``i`` for unit/concept ``r`` (e.g. the words around its peak token).
    """
    text_of = texts if callable(texts) else (lambda r, i: texts[i])  # type: ignore[index]

    def clip(text: str) -> str:
        text = " ".join(str(text).split())
        return text if len(text) <= width else text[: width - 1] + "…"

    rows = []
    for r, name in enumerate(names):
        rows.append(
            [
                name,
                " ‖ ".join(clip(text_of(r, int(i))) for i in most[r]),
                " ‖ ".join(clip(text_of(r, int(i))) for i in least[r]),
            ]
        )
    return rows


@literal_text
def plot_contribution(summaries: Sequence[dict], *, title: str) -> Figure:
    """Bars per layer: mean drop of the target logit when the top unit vs the top concept
    is nulled (the decision-contribution test), and the norm-matched units when reported."""
    layers = [str(s["layer"]) for s in summaries]
    unit = [s["drop_logit_unit"] for s in summaries]
    concept = [s["drop_logit_concept"] for s in summaries]
    x = np.arange(len(layers))
    fig = Figure(figsize=(1.2 * len(layers) + 2.5, 3.2))
    ax = fig.subplots()
    matched = [s.get("drop_logit_matched") for s in summaries]
    has_matched = all(v is not None for v in matched)
    width = 0.27 if has_matched else 0.4
    ax.bar(x - (width if has_matched else 0.2), unit, width=width, label="null top unit", color="#7f7f7f")
    if has_matched:
        ax.bar(x, matched, width=width, label="null top units, concept's norm", color="#bcbd22")
    ax.bar(
        x + (width if has_matched else 0.2), concept, width=width, label="null top concept", color="#1f77b4"
    )
    ax.set_xticks(x, layers, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("mean drop of target logit")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
