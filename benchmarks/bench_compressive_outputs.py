"""Many outputs from one compressive design: K outputs decoded from one evaluation of the plan,
against K single-output solves — same key, same budget, same run.

Cases (the shipped MNIST MLP cut at ``relu_0``, 256 units, zero fill, 64 class-7 test images):

* ``classes``: the 10 classes' log-probabilities (``output="log_probs"``, averaged over the
  images) — one call — against one single-output solve per class (``log_prob:c``);
* ``inputs``: ``log_prob:7`` of each of the 64 images (``aggregate="none"``) — one call — against
  single-output solves of the first ``--singles`` images (one image each).

Per case: the batch call's wall time (warm: a first call compiles), evaluations, and per output
its terms and held-out R² (2,048 uniform masks) next to the single solve's; the ratio of the
batch's wall time to one single solve's (mean). Saves ``results/bench_compressive_outputs.json``.

    python benchmarks/bench_compressive_outputs.py [--budget 10000] [--singles 4] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

import actspec_jax as asj
from actspec_jax.data import load_mnist
from actspec_jax.models import load_pretrained


def _timed(solver: Any, problem: Any, key: jax.Array) -> tuple[Any, float]:
    started = time.perf_counter()
    out = solver(problem, key=key)
    return out, time.perf_counter() - started


def _r2(spectrum: Any, problem: Any) -> float:
    return float(spectrum.r2(problem, key=jax.random.key(99), num_masks=2048))


def _case(name: str, batch_problem: Any, singles: list[tuple[int, Any]], budget: int) -> dict[str, Any]:
    solver = asj.CompressiveSolver(max_evaluations=budget)
    key = jax.random.key(0)
    solver(batch_problem, key=key)  # compile
    batch, batch_s = _timed(solver, batch_problem, key)
    rows = []
    single_s = []
    for index, problem in singles:
        if not single_s:
            solver(problem, key=key)  # compile once
        single, seconds = _timed(solver, problem, key)
        single_s.append(seconds)
        got = batch[index]
        a, b = got.to_dict(), single.to_dict()
        rows.append(
            {
                "output": index,
                "terms_batch": int(got.num_terms),
                "terms_single": int(single.num_terms),
                "same_subsets": set(a) == set(b),
                "subsets_in_one_only": len(set(a) ^ set(b)),
                # over the union (a subset missing on one side counts with coefficient 0)
                "max_coefficient_diff": max(abs(a.get(s, 0.0) - b.get(s, 0.0)) for s in set(a) | set(b)),
                "r2_batch": _r2(got, problem),
                "r2_single": _r2(single, problem),
                "single_s": seconds,
            }
        )
    one = float(np.mean(single_s))
    result = {
        "case": name,
        "outputs": len(batch),
        "budget": budget,
        "evaluations": int(batch[0].solver["evaluations"]),
        "batch_s": batch_s,
        "single_s_mean": one,
        "ratio_to_one_single": batch_s / one,
        "ratio_to_all_singles": batch_s / (one * len(batch)),
        "rows": rows,
    }
    print(
        f"{name}: {len(batch)} outputs from {result['evaluations']:,} evaluations in {batch_s:.1f} s; "
        f"one single solve {one:.2f} s → ratio {result['ratio_to_one_single']:.2f} "
        f"({result['ratio_to_all_singles']:.2f} of {len(batch)} singles); "
        f"same subsets {sum(r['same_subsets'] for r in rows)}/{len(rows)}, "
        f"max |ΔR²| {max(abs(r['r2_batch'] - r['r2_single']) for r in rows):.2e}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--singles", type=int, default=4, help="single solves compared in the inputs case")
    parser.add_argument("--quick", action="store_true", help="2,000 evaluations, 2 singles (smoke test)")
    args = parser.parse_args()
    budget, count = (2000, 2) if args.quick else (args.budget, args.singles)
    model = load_pretrained("mnist_mlp")
    images, labels = load_mnist("test")
    cut = asj.cut_linen(model.module, model.variables, "relu_0")
    inputs = jnp.asarray(images[labels == 7][:64])
    classes = asj.masked_problem(cut, inputs, output="log_probs", fill="zero")
    per_class = [(c, asj.masked_problem(cut, inputs, output=f"log_prob:{c}", fill="zero")) for c in range(10)]
    if args.quick:
        per_class = per_class[:count]
    per_input = asj.masked_problem(cut, inputs, output="log_prob:7", fill="zero", aggregate="none")
    one_input = [
        (i, asj.masked_problem(cut, inputs[i : i + 1], output="log_prob:7", fill="zero"))
        for i in range(count)
    ]
    results = [
        _case("classes", classes, per_class, budget),
        _case("inputs", per_input, one_input, budget),
    ]
    path = save("bench_compressive_outputs", {"benchmark": "compressive_outputs", "cases": results})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
