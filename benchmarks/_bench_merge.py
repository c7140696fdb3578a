"""Merge the part files of ``bench_vs_spex.py --compressive`` into one JSON, with targets and tables.

The parts are written by separate processes (the Python 3.12 environment runs ProxySPEX; the
real functions and the planted grid run side by side). Each keeps its own ``argv``,
``machine`` and ``load_averages``; the merged file lists them under ``parts`` and adds, per
case, whether issue 10's targets hold:

* real functions, per budget: the best of ``ours``/``ours_d2`` has held-out R² ≥ SPEX's, in
  ≤ 1/10 of SPEX's wall time;
* planted, per case: ``ours`` at half of SPEX's smallest full-recall budget has recall and R² ≥
  SPEX's at that budget, in ≤ 1/10 of its time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, save, table

PLANNED = [(n, s, noise) for s in (20, 50) for n in (100, 500, 1000) for noise in (0.0, 0.1)]


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(Path(path).read_text())


def _by_method(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method: mean / sd / count of held-out R² over its seeds, the slowest run's seconds.

    A seed measured twice (two sessions, same key) counts once, with its mean R².
    """
    out: dict[str, dict[str, Any]] = {}
    for method in sorted({r["method"] for r in rows}):
        runs = [r for r in rows if r["method"] == method]
        seeds = sorted({r.get("seed", 1) for r in runs})
        r2 = np.array([np.mean([r["r2"] for r in runs if r.get("seed", 1) == s]) for s in seeds])
        out[method] = {
            "r2_mean": float(r2.mean()),
            "r2_sd": float(r2.std(ddof=1)) if len(r2) > 1 else None,
            "runs": len(seeds),
            "seconds_max": max(r["seconds"] for r in runs),
            "evaluations_max": max(r["evaluations"] for r in runs),
        }
    return out


def _real_targets(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Per budget: the best of ``ours``/``ours_d2`` (mean R² over seeds) against SPEX and ls2.

    SPEX finished: R² ≥ SPEX's and the slowest of our runs ≤ SPEX's time / 10. SPEX stopped
    unfinished after ``X`` s: the time target holds when our slowest run took < ``X/10``; the R²
    comparison is not available (``r2_ge_spex: None``).
    """
    out = []
    for budget in sorted({r["budget"] for r in case["runs"]}):
        stats = _by_method([r for r in case["runs"] if r["budget"] == budget and "r2" in r])
        mine = {m: v for m, v in stats.items() if m in ("ours", "ours_d2")}
        if not mine:
            continue
        name = max(mine, key=lambda m: mine[m]["r2_mean"])
        best = mine[name]
        entry: dict[str, Any] = {"budget": budget, "ours_best": name, "ours_r2": best["r2_mean"],
                                 "ours_seconds_max": best["seconds_max"], "methods": stats}  # fmt: skip
        if "ls2" in stats:
            entry["r2_ge_ls2"] = best["r2_mean"] >= stats["ls2"]["r2_mean"]
        spex = stats.get("spex")
        other = next((r for r in case["runs"] if r["method"] == "spex" and r["budget"] == budget
                      and "r2" not in r), None)  # fmt: skip
        if spex is not None:
            entry.update(
                spex_r2=spex["r2_mean"],
                r2_ge_spex=best["r2_mean"] >= spex["r2_mean"] - 1e-4,
                time_ratio=best["seconds_max"] / spex["seconds_max"],
                time_le_tenth=best["seconds_max"] <= 0.1 * spex["seconds_max"],
            )
        elif other is not None and other.get("unfinished"):
            elapsed = float(other["elapsed_seconds"])
            entry.update(
                spex=f"not finished in {elapsed / 60:.0f} min (stopped)",
                r2_ge_spex=None,
                time_ratio_bound=best["seconds_max"] / elapsed,
                time_le_tenth=best["seconds_max"] < 0.1 * elapsed,
            )
        else:
            entry["spex"] = other or "not run"
        out.append(entry)
    return out


def _retag(case: dict[str, Any], tag: str) -> dict[str, Any]:
    """``ours``/``ours_d2`` rows of an older solver renamed ``ours@TAG`` (kept, not compared)."""
    runs = [dict(r, method=f"{r['method']}@{tag}") if r["method"] in ("ours", "ours_d2") else r
            for r in case.get("runs", [])]  # fmt: skip
    return dict(case, runs=runs)


def _planted_targets(case: dict[str, Any]) -> dict[str, Any] | None:
    spex = case["spex_grid"][-1]
    half = (case["spex_smallest_full_recall"] or spex["budget"]) // 2
    runs = [r for r in case["runs"] if r["method"] == "ours" and r["budget"] == half and "r2" in r]
    ours = runs[0] if runs else None
    if ours is None:
        return None
    return {
        "spex_budget": spex["budget"],
        "spex_full_recall": case["spex_smallest_full_recall"] is not None,
        "ours_half_recall": ours["recall"],
        "spex_recall": spex["recall"],
        "ours_half_r2": ours["r2"],
        "spex_r2": spex["r2"],
        "recall_ge_spex": ours["recall"] >= spex["recall"],
        "r2_ge_spex": ours["r2"] >= spex["r2"] - 1e-4,
        "time_ratio": ours["seconds"] / spex["seconds"],
        "time_le_tenth": ours["seconds"] <= 0.1 * spex["seconds"],
    }


def merge(parts: list[str], out: str) -> dict[str, Any]:
    """Combine ``parts`` (result-file names) into ``out``; print the real and planted tables."""
    merged: dict[str, Any] = {"benchmark": "bench_vs_spex (compressive, issue 10)", "parts": {}}
    real: dict[str, dict[str, Any]] = {}
    planted: list[dict[str, Any]] = []
    proxy_planted: list[dict[str, Any]] = []
    for spec in parts:
        name, _, tag = spec.partition("@")
        part = _load(name)
        if "notes" in part and "machine" not in part:  # a hand-written notes part (facts, not runs)
            merged.setdefault("notes", {}).update(part["notes"])
            merged.setdefault("real_not_run", []).extend(part.get("real_not_run", []))
            real_runs = part.get("real_runs", [])  # hand-recorded runs (e.g. a stopped SPEX)
            for case in real_runs:
                real.setdefault(case["name"], {"runs": []})["runs"] += case["runs"]
            continue
        if "parts" in part:  # an earlier merged file: keep its parts, notes and rows
            merged["parts"].update(part["parts"])
            merged.setdefault("notes", {}).update(part.get("notes", {}))
        else:
            merged["parts"][name] = {k: part.get(k) for k in ("argv", "machine", "load_averages", "note")}
        for case in part.get("real", []):
            case = _retag(case, tag) if tag else case
            slot = real.setdefault(case["name"], {"runs": []})
            slot.update({k: v for k, v in case.items() if k not in ("runs", "targets")})
            slot["runs"] += case.get("runs", [])
        planted += part.get("planted", [])
        proxy_planted += part.get("proxyspex_planted", [])
    not_run = {(r["name"], r["budget"], r["method"]): r["reason"] for r in merged.get("real_not_run", [])}
    for name, case in real.items():
        case["runs"].sort(key=lambda r: (r["budget"], r["method"], r.get("seed", 1)))
        case["targets"] = _real_targets(case)
        for entry in case["targets"]:
            if entry.get("spex") == "not run" and (name, entry["budget"], "spex") in not_run:
                entry["spex"] = f"not run: {not_run[name, entry['budget'], 'spex']}"
    for case in planted:
        case["targets"] = _planted_targets(case)
        key = (case["n"], case["s"], case["noise"])
        for proxy in (p for p in proxy_planted if (p["n"], p["s"], p["noise"]) == key):
            case["runs"] += proxy["runs"]
    done = {(c["n"], c["s"], c["noise"]) for c in planted}
    merged["real"] = list(real.values())
    merged["planted"] = sorted(planted, key=lambda c: (c["s"], c["n"], c["noise"]))
    merged["planted_not_run"] = [
        {"n": n, "s": s, "noise": noise, "reason": "not reached in the ~100 min run (time budget)"}
        for n, s, noise in PLANNED
        if (n, s, noise) not in done
    ]
    path = save(out, merged)
    print(tables(merged))
    print(f"saved {path}")
    return merged


def tables(merged: dict[str, Any]) -> str:
    """Markdown tables of the merged results (the README's)."""
    rows = []
    for case in merged["real"]:
        for r in case["runs"]:
            if "r2" in r:
                rows.append([case["name"], r["budget"], r["method"], r.get("seed", 1), r["evaluations"],
                             f"{r['r2']:.5f}", f"{r['seconds']:.0f}"])  # fmt: skip
            elif r.get("unfinished"):
                rows.append([case["name"], r["budget"], r["method"], r.get("seed", 1), "—",
                             "not finished", f"> {r['elapsed_seconds']:.0f}"])  # fmt: skip
            else:
                rows.append([case["name"], r["budget"], r["method"], "", "—", "skipped",
                             f"est. {r.get('estimated_seconds', float('nan')):.0f}"])  # fmt: skip
    real = table(["function", "budget", "method", "seed", "evaluations", "held-out R²", "wall s"], rows)
    rows = []
    for case in merged["real"]:
        for t in case["targets"]:
            for method, v in t["methods"].items():
                sd = "" if v["r2_sd"] is None else f" ± {v['r2_sd']:.5f}"
                rows.append([case["name"], t["budget"], method, v["runs"], f"{v['r2_mean']:.5f}{sd}",
                             f"{v['seconds_max']:.0f}"])  # fmt: skip
    real += "\n\n" + table(["function", "budget", "method", "seeds", "R² mean ± sd", "slowest s"], rows)
    rows = []
    for case in merged["planted"]:
        for r in case["spex_grid"][-1:] + case["runs"]:
            if "r2" not in r:
                rows.append([case["n"], case["s"], case["noise"], r["method"], r["budget"], "error", "", ""])
                continue
            rows.append([case["n"], case["s"], case["noise"], r["method"], r["evaluations"],
                         f"{r['recall']:.2f}", f"{r['r2']:.3f}", f"{r['seconds']:.0f}"])  # fmt: skip
    heads = ["n", "s", "noise", "method", "evaluations", "recall", "held-out R²", "wall s"]
    return real + "\n\n" + table(heads, rows)
