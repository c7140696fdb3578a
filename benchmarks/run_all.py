"""The benchmark suite: one entry point, JSON + a Markdown table + a plot in ``benchmarks/results/``.

Topics (each also runs on its own, see its module):
  fwht     ``scale_fwht``    FWHT vs the copy floor, NumPy radix-2 and boofun
  exact    ``scale_exact``   exact spectrum masks/s: ours (incremental, direct) vs PyTorch hooks
  gl       ``scale_gl``      Goldreich–Levin time vs n, planted MLPs up to 4096 neurons
  devices  ``scale_devices`` exact solver on 1, 2, 4 forced host devices (subprocesses)
  memory   ``scale_memory``  peak memory of an exact solve at n = 24 (subprocesses)

Every ratio compares measurements of the same run on the same machine. ``--tiny`` (or the
environment variable ``ACTSPEC_TINY=1``) runs small sizes in seconds (CI, notebooks).
Outputs: ``run_all.json``, ``README_table.md`` (the table for the README, with the machine)
and ``run_all.png``. Usage: ``python benchmarks/run_all.py [--tiny] [--only fwht exact ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import RESULTS, machine, table

TOPICS = ("fwht", "exact", "gl", "devices", "memory")


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_topic(name: str, tiny: bool) -> dict[str, Any]:
    started = time.perf_counter()
    if name == "fwht":
        import scale_fwht

        ns = [10, 12] if tiny else [16, 18, 20, 22, 24]
        out: dict[str, Any] = {"records": scale_fwht.run(ns, repeats=3 if tiny else 5, boofun_max_n=20)}
    elif name == "exact":
        import scale_exact

        n, inputs, torch_masks = (10, 32, 256) if tiny else (20, 256, 4096)
        out = {"record": scale_exact.run(n, inputs, torch_masks, repeats=1 if tiny else 2)}
    elif name == "gl":
        import scale_gl

        out = scale_gl.run(tiny=tiny)
    elif name == "devices":
        import scale_devices

        n, inputs = (10, 16) if tiny else (18, 64)
        out = {"n": n, "inputs": inputs, "records": scale_devices.run(n, inputs, [1, 2, 4])}
    elif name == "memory":
        import scale_memory

        out = {"records": scale_memory.run(14 if tiny else 24)}
    else:
        raise ValueError(f"unknown topic {name!r}; choose from {TOPICS}")
    out["topic_wall_s"] = time.perf_counter() - started
    return out


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def summary_rows(results: dict[str, Any]) -> list[list[Any]]:
    """Headline rows: what, measured, baseline, ratio, target, holds."""
    rows: list[list[Any]] = []
    if "fwht" in results:
        last = results["fwht"]["records"][-1]
        n = last["n"]
        rows.append(
            [
                f"FWHT, n = {n} (float32)",
                f"{last['fwht_s'] * 1e3:.1f} ms",
                f"copy {last['copy_s'] * 1e3:.1f} ms",
                f"{last['fwht_over_copy']:.2f}× copy",
                "≤ 4× copy at n = 24",
                verdict(last["fwht_over_copy"] <= 4.0) if n == 24 else "n/a (tiny)",
            ]
        )
        if last.get("previous_s") is not None:
            rows.append(
                [
                    f"FWHT vs its previous formulation, n = {n}",
                    f"{last['fwht_s'] * 1e3:.1f} ms",
                    f"batched-einsum passes {last['previous_s'] * 1e3:.1f} ms",
                    f"{last['previous_over_fwht']:.2f}× faster",
                    "—",
                    "—",
                ]
            )
        boo = [r for r in results["fwht"]["records"] if r["boofun_s"] is not None]
        if boo:
            r = boo[-1]
            rows.append(
                [
                    f"FWHT vs boofun, n = {r['n']}",
                    f"{r['fwht_s'] * 1e3:.2f} ms",
                    f"boofun {r['boofun_s'] * 1e3:.0f} ms",
                    f"{r['boofun_over_fwht']:.0f}× faster",
                    "—",
                    "—",
                ]
            )
        r = results["fwht"]["records"][-1]
        rows.append(
            [
                f"FWHT vs NumPy radix-2, n = {r['n']}",
                f"{r['fwht_s'] * 1e3:.1f} ms",
                f"NumPy {r['numpy_radix2_s'] * 1e3:.0f} ms",
                f"{r['numpy_over_fwht']:.1f}× faster",
                "—",
                "—",
            ]
        )
    if "exact" in results:
        rec = results["exact"]["record"]
        full = rec["n"] == 20 and rec["inputs"] == 256
        what = f"exact spectrum, MNIST MLP, n = {rec['n']}, {rec['inputs']} inputs"
        ours = f"{rec['ours_incremental_masks_per_s']:.3g} masks/s ({rec['ours_incremental_s']:.2f} s)"
        if "torch_hook_masks_per_s" in rec:
            ok = rec["speedup_vs_torch_hook"] >= 10
            rows.append(
                [
                    what,
                    ours,
                    f"PyTorch hook loop {rec['torch_hook_masks_per_s']:.3g} masks/s",
                    f"{rec['speedup_vs_torch_hook']:.1f}×",
                    "≥ 10×",
                    verdict(ok) if full else "n/a (tiny)",
                ]
            )
            rows.append(
                [
                    what,
                    ours,
                    f"PyTorch, layer cached {rec['torch_cached_masks_per_s']:.3g} masks/s",
                    f"{rec['speedup_vs_torch_cached']:.1f}×",
                    "—",
                    "—",
                ]
            )
        rows.append(
            [
                what,
                ours,
                f"ours, direct {rec['ours_direct_masks_per_s']:.3g} masks/s ({rec['ours_direct_s']:.1f} s)",
                f"{rec['speedup_vs_direct']:.1f}×",
                "≥ 3×",
                verdict(rec["speedup_vs_direct"] >= 3) if full else "n/a (tiny)",
            ]
        )
    if "gl" in results and results["gl"].get("records"):
        big = results["gl"]["records"][-1]
        rows.append(
            [
                f"Goldreich–Levin, planted MLP, n = {big['n']}",
                f"{big['wall_s']:.1f} s",
                f"recovered {big['recovered']}/{big['planted']} planted terms",
                "—",
                "< 60 s at n = 4096",
                verdict(big["wall_s"] < 60 and big["recovered"] == big["planted"])
                if big["n"] == 4096
                else "n/a (tiny)",
            ]
        )
    if "memory" in results:
        for r in results["memory"]["records"]:
            bound = 2 * r["dense_bytes"] + r["chunk_bytes"]
            rows.append(
                [
                    f"exact solver peak memory, n = {r['n']} ({r['kind']}, {r['evaluation']})",
                    f"{r['delta_bytes'] / 2**20:.0f} MiB ({r['delta_over_dense']:.2f}× dense)",
                    f"2× dense + chunk = {bound / 2**20:.0f} MiB",
                    f"{r['delta_bytes'] / bound:.2f}",
                    "≤ 1",
                    verdict(r["delta_bytes"] <= bound) if r["n"] == 24 else "n/a (tiny)",
                ]
            )
    if "devices" in results:
        recs = results["devices"]["records"]
        same = all(r["max_head_diff_vs_1"] <= 1e-6 for r in recs)
        rows.append(
            [
                f"exact solver on forced host devices (n = {results['devices']['n']})",
                ", ".join(f"{r['devices']}: {r['solve_s']:.2f} s" for r in recs),
                "1 device",
                ", ".join(f"{r['speedup_vs_1']:.2f}×" for r in recs),
                "same spectrum",
                verdict(same),
            ]
        )
    return rows


def load_note(results: dict[str, Any]) -> str:
    """A caveat when other work shared the cores (1-minute load above the core count)."""
    cores = results["machine"].get("cores") or 1
    loads = [v[0] for v in (results.get("load_before"), results.get("load_after")) if v]
    return " (the machine was shared: expect noise of ±30 %)" if any(v > cores for v in loads) else ""


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [
        "<!-- written by benchmarks/run_all.py; numbers from one run on one machine -->",
        f"Measured with `python benchmarks/run_all.py{' --tiny' if results['tiny'] else ''}` on "
        f"{info['cpu']} ({info['cores']} cores, backend {info['backend']}, jax {info['jax']}), "
        f"{results['date']}; load average {results['load_before']} before, "
        f"{results['load_after']} after{load_note(results)}.",
        "",
        table(
            ["benchmark", "ours", "baseline (same run)", "ratio", "target", "holds"], summary_rows(results)
        ),
    ]
    if "fwht" in results:
        import scale_fwht

        lines += [
            "",
            "FWHT detail:",
            "",
            table(scale_fwht.HEADERS, scale_fwht.rows(results["fwht"]["records"])),
        ]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0, 0]
    if "fwht" in results:
        recs = results["fwht"]["records"]
        ns = [r["n"] for r in recs]
        for key, label in (
            ("copy_s", "copy (floor)"),
            ("fwht_s", "actspec fwht"),
            ("numpy_radix2_s", "NumPy radix-2"),
            ("boofun_s", "boofun"),
        ):
            pts = [(r["n"], r[key]) for r in recs if r[key] is not None]
            if pts:
                ax.semilogy([p[0] for p in pts], [p[1] * 1e3 for p in pts], "o-", label=label)
        ax.set_xlabel("n (length 2^n)")
        ax.set_ylabel("ms")
        ax.set_xticks(ns)
        ax.legend()
    ax.set_title("Walsh–Hadamard transform")
    ax = axes[0, 1]
    if "exact" in results:
        rec = results["exact"]["record"]
        names = [("ours_incremental", "ours\nincremental"), ("ours_direct", "ours\ndirect")]
        names += [("torch_hook", "PyTorch\nhook loop"), ("torch_cached", "PyTorch\ncached")]
        pairs = [(label, rec[f"{k}_masks_per_s"]) for k, label in names if f"{k}_masks_per_s" in rec]
        ax.bar([p[0] for p in pairs], [p[1] for p in pairs], color=["C0", "C1", "C2", "C3"][: len(pairs)])
        ax.set_yscale("log")
        ax.set_ylabel("masks / s")
        ax.set_title(f"exact spectrum, MNIST MLP, n = {rec['n']}, {rec['inputs']} inputs")
    ax = axes[1, 0]
    if "gl" in results and results["gl"].get("records"):
        recs = results["gl"]["records"]
        ns = [r["n"] for r in recs]
        ax.semilogx(ns, [r["wall_s"] for r in recs], "o-", base=2, label="first call (compiles)")
        ax.semilogx(ns, [r["second_model_s"] for r in recs], "s-", base=2, label="another model, same n")
        ax.axhline(60, color="grey", linestyle=":", label="target at n = 4096: 60 s")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_ylim(0, None)
        ax.set_xlabel("neurons n")
        ax.set_ylabel("s")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Goldreich–Levin on planted MLPs")
    ax = axes[1, 1]
    if "devices" in results:
        recs = results["devices"]["records"]
        ax.bar([str(r["devices"]) for r in recs], [r["solve_s"] for r in recs])
        ax.set_xlabel("forced host devices")
        ax.set_ylabel("exact solve, s")
    ax.set_title("sharded exact solver (CPU: shared cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("ACTSPEC_TINY") == "1")
    parser.add_argument("--only", nargs="+", choices=TOPICS, default=list(TOPICS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "machine": machine(),
        "tiny": args.tiny,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load_before": load_average(),
    }
    for name in args.only:
        print(f"== {name}", flush=True)
        results[name] = run_topic(name, args.tiny)
    results["load_after"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_tiny" if args.tiny else ""
    (args.out / f"run_all{suffix}.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = markdown(results)
    (args.out / f"README_table{suffix}.md").write_text(text)
    plot(results, args.out / f"run_all{suffix}.png")
    print(text)
    print(f"saved {args.out / f'run_all{suffix}.json'}, README_table{suffix}.md, run_all{suffix}.png")
    return results


if __name__ == "__main__":
    main()
