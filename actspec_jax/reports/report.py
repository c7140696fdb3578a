"""Report folders: ``summary.md``, PNG figures, JSON results and a self-contained ``report.html``.

Every file is written atomically and durably (:func:`actspec_jax._io.atomic_write`): a crash,
a kill or a full disk never leaves a truncated figure or page; the folder is checked to be
writable when the :class:`Report` is created.

A :class:`Report` collects blocks (headings, paragraphs, tables, figures, code) and writes
them twice: as Markdown next to the PNG files, and as one HTML page with the figures
embedded (base64), so the page can be mailed or opened anywhere without the folder.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text as MplText

from actspec_jax._format import jsonable as _jsonable
from actspec_jax._io import check_writable_folder
from actspec_jax.errors import ActSpecError
from actspec_jax.spectrum import Spectrum, SpectrumBatch, _atomic_write, share_percent

__all__ = ["Report", "add_faithfulness_section", "add_firing_section", "add_spectrum_sections"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:980px;
margin:2em auto;padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figcaption{font-size:.9em;color:#555}img{max-width:100%}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.88em}
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def md_escape(text: Any) -> str:
    """``text`` safe in Markdown: ``&``, ``<`` and ``>`` as entities, so labels and titles can
    hold no raw HTML (``<script>``, ``<img onerror>``) that a Markdown viewer would render; table
    pipes escaped; line breaks flattened to spaces where one line is expected (use for inline text)."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return out.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text`` (text cannot close it early)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _file_name(name: str, what: str) -> str:
    """``name`` if it is a plain file name inside the report folder; refuses paths."""
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise ActSpecError(
            f"report {what} names must be plain file names inside the report folder, got {name!r} "
            "(no folders, no '..')."
        )
    return name


class Report:
    """Accumulate a report, then :meth:`write` it into ``out_dir``.

    Args:
      out_dir: folder to create (parents too); existing files of the same names are replaced.
      title: page title (first heading).
    """

    def __init__(self, out_dir: str | Path, title: str) -> None:
        self.out_dir = check_writable_folder(out_dir, "report folder")
        self.title = title
        self._md: list[str] = [f"# {md_escape(title)}\n"]
        self._html: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    # ------------------------------------------------------------------ blocks
    def heading(self, text: str, level: int = 2) -> None:
        self._md.append(f"{'#' * level} {md_escape(text)}\n")
        self._html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, paragraph: str) -> None:
        """A plain paragraph (no markup interpretation)."""
        self._md.append(
            "\n".join(md_escape(line).replace("\\|", "|") for line in paragraph.strip().split("\n")) + "\n"
        )
        self._html.append(f"<p>{html.escape(paragraph.strip())}</p>")

    def code(self, text: str) -> None:
        """Preformatted text, e.g. a spectrum summary table."""
        fence = _fence(text)
        self._md.append(f"{fence}\n{text.rstrip()}\n{fence}\n")
        self._html.append(f"<pre>{html.escape(text.rstrip())}</pre>")

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None
    ) -> None:
        md = ["| " + " | ".join(md_escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
        md += ["| " + " | ".join(md_escape(_fmt(v)) for v in row) + " |" for row in rows]
        if caption:
            md.insert(0, f"*{md_escape(caption)}*\n")
        self._md.append("\n".join(md) + "\n")
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
        )
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._html.append(f"<table>{cap}<tr>{head}</tr>{body}</table>")

    def figure(self, fig: Figure, name: str, caption: str, dpi: int = 130) -> Path:
        """Save ``fig`` as ``<name>.png`` and add it with a caption."""
        buffer = io.BytesIO()
        for text in fig.findobj(MplText):  # user labels are literal: "$\\frac$" must not crash mathtext
            text.set_parse_math(False)
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        data = buffer.getvalue()
        path = self.out_dir / _file_name(f"{name}.png", "figure")
        _atomic_write(path, lambda h: h.write(data), "wb", label="figure")
        self._md.append(f"![{md_escape(caption)}]({path.name})\n\n*{md_escape(caption)}*\n")
        encoded = base64.b64encode(data).decode("ascii")
        self._html.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return path

    def block(self, markdown: str, html_fragment: str) -> None:
        """One block given in both renderings (e.g. text with highlighted tokens).

        ``html_fragment`` is inserted as is: escape any untrusted text in it.
        """
        self._md.append(markdown.rstrip() + "\n")
        self._html.append(html_fragment)

    # ------------------------------------------------------------------ files
    def save_json(self, name: str, obj: Any) -> Path:
        path = self.out_dir / _file_name(name, "JSON file")
        text = json.dumps(_jsonable(obj), indent=1)
        _atomic_write(path, lambda h: h.write(text), "w", label="json")
        return path

    def save_spectrum(self, spectrum: Spectrum | SpectrumBatch, name: str = "spectrum.json") -> Path:
        return spectrum.save(self.out_dir / _file_name(name, "spectrum file"))

    def write(self) -> Path:
        """Write ``summary.md`` and ``report.html``; returns the HTML path."""
        md = "\n".join(self._md)
        _atomic_write(self.out_dir / "summary.md", lambda h: h.write(md), "w", label="report")
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(self._html)
            + "</body></html>"
        )
        path = self.out_dir / "report.html"
        _atomic_write(path, lambda h: h.write(page), "w", label="report")
        return path


def add_spectrum_sections(
    report: Report,
    spectrum: Spectrum,
    *,
    top: int = 20,
    heatmap_shape: tuple[int, int] | None = None,
    heatmap: bool = False,
) -> None:
    """The standard sections for one spectrum: top terms, distributedness, figures."""
    from actspec_jax.reports import plots

    if isinstance(spectrum, SpectrumBatch):
        raise ActSpecError(
            f"add_spectrum_sections takes one Spectrum; this is a SpectrumBatch of {len(spectrum)} outputs "
            f"{list(spectrum.output_labels)[:3]}…: add the sections of each output, e.g. "
            "add_spectrum_sections(report, batch[i]) under report.heading(batch.output_labels[i])."
        )
    report.heading("Top subsets")
    report.code(spectrum.summary(top))
    add_joint_section(report, spectrum, top=top)
    d = spectrum.distributedness()
    report.heading("How distributed")
    report.table(
        ["measure", "value"],
        [
            [
                "interaction share of the listed terms (energy at |S| ≥ 2 / non-constant energy)",
                share_percent(d["higher_order_share"]),
            ],
            ["energy-weighted mean degree", d["mean_degree"]],
            ["effective number of terms", d["effective_terms"]],
            ["captured share of E[f²] by the listed terms", d["captured_share"]],
        ],
    )
    add_degree_profile_section(report, spectrum)
    energy = spectrum.energy_by_degree()
    report.table(
        ["degree", "energy W^k"], [[k, float(e)] for k, e in enumerate(energy)], caption="Energy by degree"
    )
    report.figure(
        plots.plot_energy_by_degree(spectrum),
        "energy_by_degree",
        "Share of the non-constant Fourier energy carried by subsets of each size.",
    )
    report.figure(
        plots.plot_top_coefficients(spectrum, k=top),
        "top_coefficients",
        "Largest Fourier coefficients; positive = keeping the neurons together raises the output.",
    )
    if heatmap:
        report.figure(
            plots.plot_participation_heatmap(spectrum, shape=heatmap_shape),
            "participation_heatmap",
            "Per-neuron participation: share of non-constant energy in subsets containing the neuron. "
            "Units are placed by index (row = index // width), as the paper draws them; neighbouring "
            "cells are not neighbouring units in any spatial sense.",
        )
    report.figure(
        plots.plot_subset_sizes(spectrum),
        "subset_sizes",
        "Subset sizes: the share of the listed energy at each size, and how many subsets are listed "
        "(solid: at least 3 standard errors from zero).",
    )


def joint_rows(spectrum: Spectrum, top: int = 20, z: float = 3.0) -> tuple[list[list[Any]], dict[str, Any]]:
    """The ``top`` largest joint subsets (``|S| ≥ 2``) as rows ``[rank, subset, size, coefficient,
    stderr, |c|/se]`` and their totals (``count``, ``significant`` at ``|c| ≥ z·se``,
    ``energy_share`` of the listed non-constant energy)."""
    joint = spectrum.select(min_degree=2)
    labels = spectrum.neuron_labels
    coef = np.asarray(joint.coefficients, np.float64)
    se = None if joint.stderr is None else np.asarray(joint.stderr, np.float64)
    rows = []
    for rank, (subset, c) in enumerate(zip(joint.subset_tuples()[:top], coef[:top]), start=1):
        e = None if se is None else float(se[rank - 1])
        rows.append([
            rank, "{" + ", ".join(labels[i] for i in subset) + "}", len(subset), float(c),
            "n/a" if e is None else e, "n/a" if not e else abs(float(c)) / e,
        ])  # fmt: skip
    totals = {
        "count": int(coef.size),
        "significant": None if se is None else int(np.sum(np.abs(coef) >= z * se)),
        "energy_share": spectrum.interaction_share(),
    }
    return rows, totals


def add_joint_section(report: Report, spectrum: Spectrum, *, top: int = 20) -> None:
    """The joint subsets — what the method exists to find — ranked, with their standard errors,
    and a figure of the largest ones."""
    from actspec_jax.reports import plots

    rows, totals = joint_rows(spectrum, top)
    report.heading("Joint subsets (|S| ≥ 2): units that act together")
    if not rows:
        report.text("No joint subset is listed: every listed term is a single unit (or the constant).")
        return
    sure = (
        ""
        if totals["significant"] is None
        else f", {totals['significant']:,} of them at least 3 standard errors from zero"
    )
    report.text(
        f"{totals['count']:,} joint subsets are listed{sure}; they carry "
        f"{share_percent(totals['energy_share'])} of the listed terms' non-constant energy (their "
        "interaction share). The largest:"
    )
    report.table(["rank", "subset", "size", "coefficient", "stderr", "|c| / se"], rows)
    report.figure(
        plots.plot_top_coefficients(spectrum.select(min_degree=2), k=top),
        "top_joint_subsets",
        "Largest joint subsets; positive = keeping the units together raises the output beyond their "
        "single effects.",
    )
    if np.any(spectrum.degrees == 2):
        report.figure(
            plots.plot_pair_matrix(spectrum),
            "pair_matrix",
            "Pairwise coefficients among the units that carry the most pair energy; grey = pair not "
            "listed, • = at least 3 standard errors from zero.",
        )


def add_degree_profile_section(report: Report, spectrum: Spectrum) -> None:
    """The whole spectrum's estimated degree profile, when the solver attached one."""
    profile = spectrum.degree_profile()
    if profile is None or np.asarray(profile.total).size != 1:
        return
    from actspec_jax.solvers.common.degree_profile import shown_share

    o = profile.arrays(0)
    pct = lambda lo, hi: f"[{100 * lo:.1f}, {100 * hi:.1f}] %"  # noqa: E731

    def share(e: float, lo: float, hi: float) -> str:
        shown, moved = shown_share(e, lo, hi)
        return f"{100 * shown:.1f} %" + (" (estimate below its interval)" if moved else "")

    rows = [
        [
            k,
            share(o["shares"][k - 1], o["share_lower"][k - 1], o["share_upper"][k - 1]),
            pct(o["share_lower"][k - 1], o["share_upper"][k - 1]),
            float(o["weights"][k]),
            f"[{o['lower'][k]:.4g}, {o['upper'][k]:.4g}]",
        ]
        for k in range(1, profile.max_degree + 1)
    ]
    rows.append(
        [
            f"> {profile.max_degree}",
            share(o["tail_share"][0], o["tail_share_lower"][0], o["tail_share_upper"][0]),
            pct(o["tail_share_lower"][0], o["tail_share_upper"][0]),
            float(o["tail"][0]),
            f"[{o['tail_lower'][0]:.4g}, {o['tail_upper'][0]:.4g}]",
        ]
    )
    report.heading("Degree profile of the whole spectrum")
    report.text(
        f"{profile.headline()} — estimated from {profile.evaluations} extra uniform masks without "
        f"listing any coefficient (Krawtchouk U-statistic; {100 * profile.confidence:.0f} % intervals), "
        "so it covers the terms below the threshold too. Variance = E[f²] − f̂(∅)² = "
        f"{o['variance'][0]:.4g}."
    )
    report.table(["degree", "share of the variance", "interval", "W^k", "W^k interval"], rows)


def add_faithfulness_section(
    report: Report, curve: Any, *, checkpoints: Sequence[int] = (1, 2, 4, 8, 16, 32)
) -> None:
    """The deletion curve (:class:`~actspec_jax.analysis.ablation.FaithfulnessCurve`): definition,
    figure, table."""
    from actspec_jax.reports import plots

    report.heading("Faithfulness: ablating what the spectrum names")
    report.text(
        "Starting from the intact model, the first k neurons of each ordering are ablated together (set to "
        "the fill) and the drop of the output is measured: D(k) = f(all kept) − f(first k ablated), in "
        f"the output's units ({curve.output}); the intact value is f(all kept) = {curve.baseline:.4g}. Each "
        "ordering tries to remove what supports the output. Spectral, top subsets: the spectrum's subsets "
        "with the largest drop it predicts for ablating each alone, subset by subset. Spectral, greedy: "
        "neurons added one at a time by the spectrum's predicted drop of the whole set. Attribution: single "
        "neurons by gradient × activation. Leave-one-out: single neurons by their measured drop. Random: "
        f"{curve.random_drops.shape[0]} random orderings (mean and 10–90 % band)."
    )
    report.figure(
        plots.plot_faithfulness_curve(curve),
        "faithfulness",
        "Output drop D(k) when ablating k neurons chosen by each ordering.",
    )
    shown = [k for k in checkpoints if k in set(curve.ks.tolist())]
    names = list(curve.drops)
    rows = []
    mean, _, _ = curve.random_band()
    for k in shown:
        idx = int(np.searchsorted(curve.ks, k))
        rows.append([k, *[float(curve.drops[name][idx]) for name in names], float(mean[idx])])
    if rows:
        report.table(
            ["k", *names, "random (mean)"],
            rows,
            caption="Output drop D(k) (nan: the ordering has fewer than k neurons)",
        )


def add_firing_section(report: Report, firing: Sequence[dict[str, Any]]) -> None:
    """Where the top subsets fire: reviews carrying each subset and its co-active tokens."""
    report.heading("Where the top subsets fire")
    report.text(
        "For each subset S: the reviews j with the largest per-review coefficient f̂_j(S) of the same sign as "
        "f̂(S) (exact for small n, else estimated from uniform masks), and in each review the token positions "
        "where every neuron of S is strongly active at once (each neuron above its 90th percentile over all "
        "tokens of all reviews; marked tokens). For attention heads, a head's activity is the norm of its "
        "output vector."
    )
    for entry in firing:
        title = "{" + ", ".join(entry["neurons"]) + "}"
        report.heading(f"{title}: f̂(S) = {entry['coefficient']:+.4g}", level=3)
        same = f"{entry['inputs_with_same_sign']} reviews have a per-review coefficient of the same sign."
        md = [same + "\n"]
        page = [f"<p>{same}</p><ul>"]
        for ex in entry["examples"]:
            lead = (
                f"review #{ex['dataset_index']} (label {'positive' if ex['label'] == 1 else 'negative'}), "
                f"f̂_j(S) = {ex['per_input_coefficient']:+.3g}"
            )
            md.append(f"- {lead}: {ex['markdown']}")
            page.append(f"<li>{html.escape(lead)}: {ex['html']}</li>")
        page.append("</ul>")
        report.block("\n".join(md), "".join(page))
