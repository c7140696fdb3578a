"""Our compressive solver alone on bench_vs_spex's planted cases (s = 20), at half and all of SPEX's
smallest full-recall budget as that benchmark measured it (SPEX is not rerun: minutes per case).

Used to re-measure ours after a change to the solver's budget plan or decoder without the hours
SPEX takes. ``--s50`` adds s = 50 planted terms at n = 100 and 500, ours only, at SPEX's
``(t = 4, b)`` budgets for b = 4, 5, 6 (SPEX's smallest full-recall budget for s = 50 was not
measured). Saves ``benchmarks/results/compressive_planted_ours.json``.
Usage: ``python benchmarks/compressive_planted_ours.py [--s50]``
"""

from __future__ import annotations

import os
import sys
import time

import _bench_compressive as bc
import jax
import numpy as np
from _common import save

from actspec_jax import CompressiveSolver
from actspec_jax.analysis.metrics import r2_score

#: (n, noise, SPEX's smallest budget with full recall) from bench_vs_spex.json (2026-12-02).
SPEX_SMALLEST = [(100, 0.0, 792), (100, 0.1, 1584), (500, 0.0, 984), (500, 0.1, 1968), (1000, 0.0, 1080),
                 (1000, 0.1, 2160)]  # fmt: skip


def run(n: int, s: int, noise: float, budget: int, **extra) -> dict:
    """Ours on the planted case ``(n, s, noise)`` at ``budget``: recall, R², decoder counters."""
    problem, truth, _, masks, values = bc.planted(n, s, noise, 0)
    planted = {k: v for k, v in truth.items() if k}
    started = time.perf_counter()
    solver = CompressiveSolver(max_evaluations=budget, max_degree=4, noise_level=noise)
    spectrum = solver(problem, key=jax.random.key(1))
    seconds = time.perf_counter() - started
    est = spectrum.to_dict()
    hits = sum(abs(est.get(k, 0.0) - v) <= 0.5 * abs(v) for k, v in planted.items())
    decoder = {
        k: sum(r[k] for r in spectrum.solver["rounds_run"])
        for k in ("accepted", "exact", "multi", "joint", "combined", "search")
    }
    row = {
        "n": n, "s": s, "noise": noise, "budget": budget, **extra,
        "evaluations": int(spectrum.solver["evaluations"]), "plan": spectrum.solver["plan"],
        "recall": hits / len(planted),
        "false_positives": sum(1 for k, v in est.items() if k and k not in planted and abs(v) >= 0.15),
        "r2": float(r2_score(values, np.asarray(spectrum.evaluate(masks)))),
        "seconds": seconds, "decoder": decoder,
    }  # fmt: skip
    print(row, flush=True)
    return row


def main() -> None:
    runs = [
        run(n, 20, noise, budget, spex_smallest=full)
        for n, noise, full in SPEX_SMALLEST
        for budget in (full // 2, full)
    ]
    out = {"benchmark": "compressive_planted_ours", "runs": runs}
    if "--s50" in sys.argv:
        out["runs_s50"] = [
            run(n, 50, noise, bc.spex_budget(n, b, 4), spex_b=b)
            for n in (100, 500)
            for noise in (0.0, 0.1)
            for b in (4, 5, 6)
        ]
    out["load_average"] = os.getloadavg()
    print(f"saved {save('compressive_planted_ours', out)}")


if __name__ == "__main__":
    main()
