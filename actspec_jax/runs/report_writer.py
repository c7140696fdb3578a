"""The report folder of one ``actspec run`` (its last step) and reading a run back.

:func:`_write_report` writes ``spectrum.json`` first, then the settings table, the spectrum's
sections, the faithfulness curve and the firing examples, and ``run.json``
(:class:`~actspec_jax.reports.report.Report` does the writing); :func:`load_run` reads the
``run.json`` record of a folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actspec_jax.errors import ActSpecError
from actspec_jax.runs.config import RunConfig
from actspec_jax.runs.inputs import Inputs

__all__ = ["heatmap_shape", "load_run"]


def heatmap_shape(problem: Any) -> tuple[int, int]:
    """Grid for the participation heatmap: one row per layer, 16×16 for 256, 16×32 for 512, …"""
    sizes = getattr(problem, "sizes", None)
    n = int(problem.n)
    if sizes is not None and len(set(sizes)) == 1:
        return len(sizes), int(sizes[0])
    side = math.isqrt(n)
    if side * side == n:
        return side, side
    if n >= 64 and n % 32 == 0:
        return n // 32, 32
    return 1, n


def _default_title(cfg: RunConfig, output: str) -> str:
    return f"actspec run — {cfg.model}, {' + '.join(cfg.layers)}, {output}, {cfg.solver}"


def _write_report(
    cfg: RunConfig,
    model: Any,
    inputs: Inputs,
    problem: Any,
    spectrum: Any,
    record: dict[str, Any],
    curve: Any,
    firing: list[dict[str, Any]] | None,
) -> Path:
    from actspec_jax.reports.report import (
        Report,
        add_faithfulness_section,
        add_firing_section,
        add_spectrum_sections,
    )

    report = Report(Path(cfg.out), cfg.title or _default_title(cfg, record["problem"]["output"]))
    report.save_spectrum(spectrum)  # first: the result is on disk before any figure
    output = record["problem"]["output"]
    accuracy = record["model"]["test_accuracy"]
    report.text(
        f"Fourier spectrum of {output} (mean over {inputs.info['count']} inputs) as a function of a ±1 "
        f"mask over {problem.n} neurons of {' + '.join(cfg.layers)} of the shipped model {cfg.model} "
        f"(+1 = neuron kept, −1 = replaced by the {cfg.fill} fill"
        + ("; the other neurons of the layer are always kept" if record["problem"].get("units") else "")
        + f"). Solver: {cfg.solver}."
        + (
            " Paper mode: the coefficients are data correlations E_data[f(a) χ_S(sign pattern of a)] over "
            "hybrids of real rows, not mask-domain Fourier coefficients."
            if cfg.solver == "paper"
            else ""
        )
    )
    rows: list[list[Any]] = [
        ["model", cfg.model],
        ["model test accuracy (shipped)", _accuracy_text(accuracy)],
        ["accuracy on these inputs", record["model"]["accuracy_on_these_inputs"]],
        ["layer(s)", ", ".join(cfg.layers)],
        ["neurons masked n", problem.n],
        ["inputs", f"{inputs.info['count']} from {inputs.info['dataset']}, split {inputs.info['split']}"],
        *(
            [["next token", f"{inputs.info['next_token']!r} (id {inputs.info['next_token_id']})"]]
            if "next_token" in inputs.info
            else [["class filter", inputs.info["classes"]]]
        ),
        ["output", output],
        ["fill", cfg.fill],
        ["solver", cfg.solver],
        ["function evaluations", spectrum.solver.get("evaluations")],
        ["solver wall time (s)", spectrum.solver.get("wall_time_s")],
        ["seed", cfg.seed],
    ]
    if record["problem"].get("units") is not None:
        rows.insert(5, ["units", ", ".join(map(str, record["problem"]["units"]))])
    if inputs.texts is not None:
        info = inputs.info
        rows.append(
            [
                "truncation",
                f"{info['truncated']} of {info['count']} reviews longer than the context of "
                f"{info['context']} tokens were truncated ({info['tokens_dropped']} tokens dropped)",
            ]
        )
        if info["max_review_tokens"] is not None:
            rows.append(
                ["length filter", f"reviews of ≤ {info['max_review_tokens']} tokens "
                 f"({info['reviews_skipped_as_longer_than_max']} longer ones skipped)"]
            )  # fmt: skip
    metrics = record["metrics"]
    if "r2_top64_exact" in metrics:
        rows.append(
            [
                f"R² of the constant + top {metrics['r2_terms']} terms over all masks (exact)",
                metrics["r2_top64_exact"],
            ]
        )
    elif "r2_heldout_masks" in metrics:
        rows.append(
            [
                f"R² of {metrics['r2_terms']} listed terms on {cfg.r2_masks} held-out masks",
                metrics["r2_heldout_masks"],
            ]
        )
    else:
        r2 = metrics["data_r2_heldout"]
        rows.append(
            [
                f"R² on held-out {metrics['heldout_split']} rows (listed / refit)",
                f"{r2['listed']:.4f} / {r2['refit']:.4f}",
            ]
        )
    report.table(["setting", "value"], rows)
    add_spectrum_sections(report, spectrum, top=cfg.top, heatmap=True, heatmap_shape=heatmap_shape(problem))
    if curve is not None:
        add_faithfulness_section(report, curve)
        report.save_json("faithfulness.json", curve.to_dict())
    if firing:
        add_firing_section(report, firing)
    report.save_json("run.json", record)
    return report.write()


def _accuracy_text(accuracy: Any) -> str:
    if isinstance(accuracy, float):
        return f"{100 * accuracy:.2f} %"
    return str(accuracy)


def load_run(folder: str | Path) -> Mapping[str, Any]:
    """The ``run.json`` record of a report folder."""
    path = Path(folder) / "run.json"
    if not path.is_file():
        raise ActSpecError(f"no run.json in {folder}; is it a folder written by actspec run?")
    return json.loads(path.read_text())
