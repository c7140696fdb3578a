"""Our compressive solver alone on bench_vs_spex's planted cases (s = 20), at half and all of SPEX's
smallest full-recall budget as that benchmark measured it (SPEX is not rerun: minutes per case).

Used to re-measure ours after a change to the solver's budget plan without the hours SPEX takes.
Saves ``benchmarks/results/compressive_planted_ours.json``.
Usage: ``python benchmarks/compressive_planted_ours.py``
"""

from __future__ import annotations

import os
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


def main() -> None:
    runs = []
    for n, noise, full in SPEX_SMALLEST:
        problem, truth, _, masks, values = bc.planted(n, 20, noise, 0)
        planted = {k: v for k, v in truth.items() if k}
        for budget in (full // 2, full):
            started = time.perf_counter()
            solver = CompressiveSolver(max_evaluations=budget, max_degree=4, noise_level=noise)
            spectrum = solver(problem, key=jax.random.key(1))
            est = spectrum.to_dict()
            hits = sum(abs(est.get(k, 0.0) - v) <= 0.5 * abs(v) for k, v in planted.items())
            runs.append({
                "n": n, "noise": noise, "budget": budget, "spex_smallest": full,
                "evaluations": int(spectrum.solver["evaluations"]), "plan": spectrum.solver["plan"],
                "recall": hits / len(planted),
                "r2": float(r2_score(values, np.asarray(spectrum.evaluate(masks)))),
                "seconds": time.perf_counter() - started,
            })  # fmt: skip
            print(runs[-1], flush=True)
    path = save("compressive_planted_ours", {"benchmark": "compressive_planted_ours", "runs": runs,
                                             "load_average": os.getloadavg()})  # fmt: skip
    print(f"saved {path}")


if __name__ == "__main__":
    main()
