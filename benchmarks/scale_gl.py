"""Goldreich–Levin wall time vs layer width on planted MLPs (up to 4096 neurons).

A planted MLP (:func:`actspec_jax.problems.synthetic.planted_mlp`) with ``n`` hidden neurons
and 10 planted subsets of sizes 1–4 (coefficients ±0.7…1.0, neurons drawn at random) plus
``n`` small first-order distractors (``distractor=0.01``). ``GoldreichLevin(tau=0.1)`` with
its defaults. Reported per ``n``: wall time of the first call (compilation included) and of a
second call on another planted model of the same width, evaluations, and how many planted
subsets were recovered with the right sign. Target (issue 6): n = 4096 in under 60 s on
2 CPU cores.
Usage: ``python benchmarks/scale_gl.py [--ns 256 1024 4096] [--tiny]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table

import actspec_jax as asj
from actspec_jax.problems import synthetic


def planted_terms(n: int, seed: int) -> dict[tuple[int, ...], float]:
    rng = np.random.default_rng(1000 + seed)
    sizes = [1, 1, 2, 2, 2, 3, 3, 3, 4, 4]
    neurons = rng.permutation(n)[: sum(sizes)]
    terms, at = {}, 0
    for size in sizes:
        subset = tuple(sorted(int(i) for i in neurons[at : at + size]))
        terms[subset] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.0))
        at += size
    return terms


def solve(n: int, seed: int, solver: Any) -> dict[str, Any]:
    terms = planted_terms(n, seed)
    model = synthetic.planted_mlp(n, terms, distractor=0.01, key=jax.random.key(seed), num_inputs=1)
    problem = model.problem()
    started = time.perf_counter()
    spectrum = solver(problem, key=jax.random.key(seed))
    wall = time.perf_counter() - started
    found = spectrum.to_dict()
    recovered = sum(1 for s, c in terms.items() if s in found and np.sign(found[s]) == np.sign(c))
    return {
        "wall_s": wall,
        "recovered": recovered,
        "planted": len(terms),
        "evaluations": spectrum.solver.get("evaluations"),
    }


def run(ns: list[int] | None = None, tiny: bool = False, tau: float = 0.1) -> dict[str, Any]:
    if not hasattr(asj, "GoldreichLevin"):
        return {"available": False, "records": [], "note": "actspec_jax.GoldreichLevin is not in this build"}
    ns = ns or ([64] if tiny else [256, 1024, 4096])
    solver = asj.GoldreichLevin(tau=tau)
    records = []
    for n in ns:
        first = solve(n, 0, solver)
        second = first if tiny else solve(n, 1, solver)
        records.append(
            {
                "n": n,
                "tau": tau,
                "wall_s": first["wall_s"],
                "second_model_s": second["wall_s"],
                "evaluations": first["evaluations"],
                "recovered": first["recovered"],
                "recovered_second": second["recovered"],
                "planted": first["planted"],
            }
        )
    return {"available": True, "records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=None)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    out = run(args.ns, args.tiny)
    if not out["available"]:
        print(out["note"])
        return
    rows = [
        [r["n"], r["wall_s"], r["second_model_s"], r["evaluations"], f"{r['recovered']}/{r['planted']}"]
        for r in out["records"]
    ]
    print(table(["n", "first call s", "second model s", "evaluations", "recovered"], rows))
    print(f"saved {save('scale_gl', out)}")


if __name__ == "__main__":
    main()
