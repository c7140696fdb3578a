"""Experiment (b) + (c) on the shipped sentiment transformer: positive − negative logit.

Runs (presets of ``actspec run``; f = ``logit_diff:1-0`` averaged over IMDB *test* reviews, balanced):

* ``heads_block_0``, ``heads_block_1``: the 4 attention heads of one block, exact (16 masks),
  32 + 32 reviews of ≤ 128 tokens (``sentiment-heads``);
* ``heads_all``: all 8 heads of both blocks in one mask (``MultiLayerProblem``: a later block
  is recomputed from the masked earlier one), exact (256 masks), same reviews
  (``sentiment-all-heads``);
* ``mlp_block_0``, ``mlp_block_1``: the 512 MLP units of one block, GL (mask mode, τ = 0.1 of
  std f), 8 + 8 reviews of ≤ 64 tokens (``sentiment-mlp``; the budget of a 2-core CPU).

Each run also computes the faithfulness curve (spectral vs gradient×activation vs
leave-one-out vs random orderings) and where the top subsets fire (the reviews carrying
them and their co-active tokens). Full reports go to ``runs/sentiment/<run>/`` (not
committed); the figures, ``table.md``, ``firing.md`` and ``sentiment_results.json`` go to
``docs/sentiment/``. Regenerate with::

    python benchmarks/experiments/sentiment.py            # ≈ 30–60 min on a 2-core CPU

``--reuse`` rebuilds ``docs/`` from finished runs (a run is redone if its folder has no
``run.json`` or its configuration changed); ``--only heads_all,…`` picks runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from actspec_jax.analysis.ablation import FaithfulnessCurve  # noqa: E402
from actspec_jax.reports import plots  # noqa: E402
from actspec_jax.runs import config_from_preset, run  # noqa: E402
from actspec_jax.spectrum import Spectrum  # noqa: E402
from benchmarks._common import machine  # noqa: E402

RUNS = {
    "heads_block_0": ("sentiment-heads", {"layers": ("block_0/attn/heads",)}),
    "heads_block_1": ("sentiment-heads", {"layers": ("block_1/attn/heads",)}),
    "heads_all": ("sentiment-all-heads", {}),
    "mlp_block_1": ("sentiment-mlp", {"layers": ("block_1/mlp/act",)}),
    "mlp_block_0": ("sentiment-mlp", {"layers": ("block_0/mlp/act",)}),
}
TINY = {
    "per_class": 2,
    "max_review_tokens": 40,
    "leaf_samples": 256,
    "num_samples": 16,
    "influence_samples": 2,
    "r2_masks": 64,
    "faithfulness_k": 8,
    "random_orderings": 3,
}


def refresh_faithfulness(cfg, record: dict) -> dict:
    """Recompute a reused run's deletion curve with the current code (cheap next to the solve)."""
    from actspec_jax.models import load_pretrained
    from actspec_jax.reports.plots import plot_faithfulness_curve
    from actspec_jax.runs import build_problem, deletion_curve, load_inputs

    model = load_pretrained(cfg.model)
    inputs = load_inputs(model, cfg)
    problem, built = build_problem(model, inputs, cfg)
    spectrum = Spectrum.load(Path(cfg.out) / "spectrum.json")
    curve = deletion_curve(model, inputs, cfg, problem, spectrum, built)
    record["faithfulness"] = curve.to_dict()
    (Path(cfg.out) / "faithfulness.json").write_text(json.dumps(curve.to_dict(), indent=1))
    plot_faithfulness_curve(curve).savefig(Path(cfg.out) / "faithfulness.png", dpi=130, bbox_inches="tight")
    (Path(cfg.out) / "run.json").write_text(json.dumps(record, indent=1))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", default=str(ROOT / "docs" / "sentiment"))
    parser.add_argument("--runs", default=str(ROOT / "runs" / "sentiment"))
    parser.add_argument("--only", default=",".join(RUNS))
    parser.add_argument("--reuse", action="store_true", help="keep finished runs with the same configuration")
    parser.add_argument("--tiny", action="store_true", help="smoke run (into runs/)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    docs, runs = Path(args.docs), Path(args.runs)
    if args.tiny:
        docs, runs = runs / "tiny" / "docs", runs / "tiny"
    docs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records: dict[str, dict] = {}
    for name in args.only.split(","):
        preset, extra = RUNS[name]
        cfg = config_from_preset(
            preset, seed=args.seed, out=str(runs / name), **{**extra, **(TINY if args.tiny else {})}
        )
        record_path = runs / name / "run.json"
        if args.reuse and record_path.is_file():
            old = json.loads(record_path.read_text())
            same = {k: v for k, v in old["config"].items() if k not in ("out", "title")}
            if same == {
                k: v for k, v in json.loads(json.dumps(cfg.to_dict())).items() if k not in ("out", "title")
            }:
                print(f"— {name}: reusing {record_path}", flush=True)
                if "faithfulness" in old and "drops" not in old["faithfulness"]:
                    old = refresh_faithfulness(dataclasses.replace(cfg, out=str(runs / name)), old)
                records[name] = old
                continue
        print(f"— {name}: actspec run --preset {preset} {extra}", flush=True)
        result = run(cfg, progress=False, echo=lambda line: print("  " + line, flush=True))
        records[name] = result.record
    write_outputs(docs, runs, records, started)


def _std(spectrum: Spectrum, record: dict) -> float:
    solver = spectrum.solver
    if "norm_sq_estimate" in solver:
        return float(np.sqrt(max(solver["norm_sq_estimate"] - solver["mean_estimate"] ** 2, 0.0)))
    return float(np.sqrt(max((spectrum.norm_sq or 0.0) - spectrum.constant**2, 0.0)))


def write_outputs(docs: Path, runs: Path, records: dict, started: float) -> None:
    from matplotlib.figure import Figure

    spectra = {name: Spectrum.load(runs / name / "spectrum.json") for name in records}
    rows, summary = [], {}
    for name, rec in records.items():
        spec = spectra[name]
        m = rec["metrics"]
        sizes = np.bincount(np.minimum(spec.degrees[spec.degrees > 0], 4), minlength=5)[1:].tolist()
        r2 = m.get("r2_heldout_masks", m.get("r2_top64_exact"))
        solver = spec.solver
        influence_degree = (
            float(np.sum(solver["influence"]) / (solver["norm_sq_estimate"] - solver["mean_estimate"] ** 2))
            if solver.get("influence")
            else m["mean_degree"]  # exact runs: the whole spectrum is known
        )
        entry = {
            "n": spec.n,
            "layers": rec["config"]["layers"],
            "solver": rec["config"]["solver"],
            "inputs": rec["inputs"]["count"],
            "review_tokens_min_median_max": rec["inputs"]["review_tokens_min_median_max"],
            "truncated": rec["inputs"]["truncated"],
            "accuracy_on_inputs": rec["model"]["accuracy_on_these_inputs"],
            "constant": spec.constant,
            "std_f": _std(spec, rec),
            "sizes": sizes,
            "r2": r2,
            "r2_kind": "held-out masks" if "r2_heldout_masks" in m else "exact, top 64",
            "evaluations": spec.solver.get("evaluations"),
            "solver_seconds": spec.solver.get("wall_time_s"),
            "run_seconds": rec.get("wall_time_s"),
            **{k: m[k] for k in ("higher_order_share", "mean_degree", "effective_terms")},
            "whole_spectrum_mean_degree": influence_degree,
            # units whose influence alone says |f̂({i})| could reach τ (Inf_i ≥ f̂({i})²), and GL's beam use
            "units_with_sqrt_influence_above_tau": int(
                np.sum(np.sqrt(np.asarray(solver["influence"])) >= solver["tau_abs"])
            )
            if solver.get("influence")
            else None,
            "levels_with_full_beam": int(np.sum(np.asarray(solver["levels"]["kept"]) >= solver["beam"]))
            if solver.get("levels")
            else None,
            "levels": solver.get("num_levels"),
            "top": [
                [spec.neuron_labels[i] for i in s] + [float(c)] for s, c in list(spec.to_dict().items())[:10]
            ],
        }
        if "faithfulness" in rec:
            curve = FaithfulnessCurve.from_dict(rec["faithfulness"])
            entry["faithfulness_drop"] = {
                str(k): curve.at(k) for k in (1, 2, 3, 4, 8, 16, 32) if k in set(curve.ks.tolist())
            }
        summary[name] = entry
        rows.append(
            f"| {name} | {spec.n} | {entry['solver']} | {entry['inputs']} | "
            f"{entry['accuracy_on_inputs']:.3f} | "
            f"{entry['constant']:+.3f} | {entry['std_f']:.3f} | {entry['higher_order_share']:.3f} | "
            f"{entry['mean_degree']:.2f} | {entry['effective_terms']:.1f} | {'/'.join(map(str, sizes))} | "
            f"{r2:.3f} ({entry['r2_kind']}) | {influence_degree:.2f} | {entry['evaluations']} |"
        )
    table = [
        "| run | n | solver | reviews | accuracy on them | f̂(∅) = mean logit diff | std f | share deg ≥ 2 | "
        "mean degree | effective terms | terms 1/2/3/≥4 | R² | whole-spectrum mean degree | evaluations |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    columns = [
        "spectral: top subsets",
        "spectral: greedy",
        "attribution (grad×act)",
        "leave-one-out",
        "random (mean)",
    ]
    faith_rows = []
    for name, entry in summary.items():
        for k, values in entry.get("faithfulness_drop", {}).items():
            cells = [f"{values[c]:+.4f}" if c in values and np.isfinite(values[c]) else "–" for c in columns]
            faith_rows.append(f"| {name} | {k} | " + " | ".join(cells) + " |")
    if faith_rows:
        table += [
            "",
            "Faithfulness (deletion curve): D(k) = f(intact) − f(first k units of the ordering ablated, "
            "rest kept), in logits of the mean logit difference (– : the ordering has fewer than k units, "
            "or does not apply to the run).\n",
            "| run | k | " + " | ".join(columns) + " |",
            "|---|---|" + "---|" * len(columns),
            *faith_rows,
        ]
    (docs / "table.md").write_text("\n".join(table) + "\n")

    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.subplots()
    plots.plot_degree_profiles(
        {name.replace("_", " "): spectra[name] for name in records},
        ax=ax,
        title="Sentiment transformer, logit diff (pos − neg): energy by degree",
        xlabel="masked units",
    )
    fig.tight_layout()
    fig.savefig(docs / "energy_by_degree.png", dpi=100, bbox_inches="tight")
    for name in records:
        top = plots.plot_top_coefficients(spectra[name], k=12)
        top.axes[0].set_title(f"Top subsets — {name.replace('_', ' ')} (n = {spectra[name].n})", fontsize=10)
        top.savefig(docs / f"top_{name}.png", dpi=100, bbox_inches="tight")
        if "faithfulness" in records[name]:
            curve = FaithfulnessCurve.from_dict(records[name]["faithfulness"])
            title = f"Deletion curve — {name.replace('_', ' ')} (intact f = {curve.baseline:.3g})"
            plots.plot_faithfulness_curve(curve, title=title).savefig(
                docs / f"faithfulness_{name}.png", dpi=100, bbox_inches="tight"
            )
        heat = runs / name / "participation_heatmap.png"
        if heat.is_file() and name.startswith("mlp"):
            shutil.copyfile(heat, docs / f"participation_{name}.png")

    firing = ["# Where the top subsets fire\n"]
    for name, rec in records.items():
        if not rec.get("firing"):
            continue
        firing.append(f"## {name.replace('_', ' ')}\n")
        for entry in rec["firing"]:
            firing.append(
                f"**{{{', '.join(entry['neurons'])}}}**, f̂(S) = {entry['coefficient']:+.4g} "
                f"({entry['inputs_with_same_sign']} of {rec['inputs']['count']} reviews have a per-review "
                "coefficient of the same sign):\n"
            )
            for ex in entry["examples"]:
                label = "positive" if ex["label"] == 1 else "negative"
                firing.append(
                    f"- review #{ex['dataset_index']} ({label}), "
                    f"f̂_j(S) = {ex['per_input_coefficient']:+.3g}: {ex['markdown']}"
                )
            firing.append("")
    (docs / "firing.md").write_text("\n".join(firing) + "\n")
    payload = {"machine": machine(), "seconds": time.perf_counter() - started, "runs": summary}
    (docs / "sentiment_results.json").write_text(json.dumps(payload, indent=1) + "\n")
    print("\n".join(table))
    print(f"wrote {docs}")


if __name__ == "__main__":
    main()
