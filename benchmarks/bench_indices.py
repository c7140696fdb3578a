"""Exact Shapley values and order-2 SII from scratch: actspec_jax vs shapiq's ExactComputer.

Problem: a small random Flax MLP (16 inputs → ``n`` hidden ReLU units → 32 ReLU → 3
logits), cut at the hidden layer, ``logit:0`` averaged over 8 random inputs, zero fill —
the same :class:`~actspec_jax.MaskedProblem` evaluation any user runs. For each ``n``:

* **ours**: ``ExactSolver()(problem)`` (all ``2^n`` masks + one FWHT), then
  ``shapley_values`` and ``interaction_index(..., "SII", 2)`` (one superset-sum per order);
  *cold* = first call on the problem (includes JAX compilation for this ``n``), *warm* =
  best of five further calls (two for n > 20) on the same problem (building the model is
  not timed);
* **shapiq** 1.4.1 ``ExactComputer`` on the same problem wrapped as a game
  (:class:`actspec_jax.interop.shapiq.ProblemGame`, jitted batched evaluation, compiled
  before timing), computing ``"SV"`` and ``"SII"`` of order 2, in a child process killed
  after ``--timeout`` seconds (default 60); larger ``n`` are skipped once it times out.

Both results are compared (max |Δ| over all values). Targets (issue 5): ``n = 20`` in
under 10 s end to end on a 2-core CPU, and ≥ 100× faster than shapiq at the largest ``n``
both finish. Usage: ``python benchmarks/bench_indices.py [--ns 10 12 … 24] [--timeout 60]``.
Writes ``benchmarks/results/bench_indices.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from _common import save, table  # noqa: E402

NUM_INPUTS = 8


class _MLP(nn.Module):
    n: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(nn.Dense(self.n, name="hidden")(x))
        h = nn.relu(nn.Dense(32, name="fc2")(h))
        return nn.Dense(3, name="logits")(h)


def build_problem(n: int, seed: int = 0) -> Any:
    """The benchmark problem for ``n`` hidden units (deterministic in ``seed``)."""
    from actspec_jax.problems.cut import cut_linen
    from actspec_jax.problems.masked import MaskedProblem

    k_init, k_x = jax.random.split(jax.random.key(seed + n))
    module = _MLP(n=n)
    inputs = jax.random.normal(k_x, (NUM_INPUTS, 16))
    variables = module.init(k_init, inputs)
    # hidden biases +0.5 so most units are active and masking them matters
    params = jax.tree_util.tree_map(lambda a: a, variables["params"])
    params["hidden"]["bias"] = params["hidden"]["bias"] + 0.5
    cut = cut_linen(module, {"params": params}, "hidden")
    return MaskedProblem.from_cut(cut, inputs, output="logit:0", fill="zero")


def ours(n: int) -> tuple[dict[str, float], np.ndarray, dict]:
    """Evaluation + FWHT + Shapley + SII(2) for one ``n``: cold and warm times."""
    from actspec_jax.analysis.indices import interaction_index, shapley_values
    from actspec_jax.solvers.exact.solver import ExactSolver

    problem = build_problem(n)

    def run() -> tuple[np.ndarray, dict, dict[str, float]]:
        t0 = time.perf_counter()
        spec = ExactSolver()(problem)
        t1 = time.perf_counter()
        sv = shapley_values(spec)
        sii = interaction_index(spec, "SII", 2)
        t2 = time.perf_counter()
        return sv, sii, {"total": t2 - t0, "solve": t1 - t0, "indices": t2 - t1}

    sv, sii, cold = run()
    repeats = 5 if n <= 20 else 2
    warm = min((run()[2] for _ in range(repeats)), key=lambda t: t["total"])
    return (
        {
            "cold": cold["total"],
            "warm": warm["total"],
            "warm_solve": warm["solve"],
            "warm_indices": warm["indices"],
        },
        sv,
        sii,
    )


def _shapiq_child(n: int, queue: Any) -> None:
    import shapiq

    from actspec_jax.interop.shapiq import ProblemGame

    game = ProblemGame(build_problem(n))
    game(np.zeros((game.batch_size, n), bool))  # compile our evaluation outside the timing
    game.evaluations = 0
    started = time.perf_counter()
    computer = shapiq.ExactComputer(game, n_players=n)
    sv = computer("SV", 1)
    sii = computer("SII", 2)
    elapsed = time.perf_counter() - started
    queue.put(
        {
            "seconds": elapsed,
            "evaluations": game.evaluations,
            "sv": [float(sv[(i,)]) for i in range(n)],
            "sii": {",".join(map(str, k)): float(v) for k, v in sii.dict_values.items()},
        }
    )


def run_shapiq(n: int, timeout: float) -> dict | None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_shapiq_child, args=(n, queue))
    proc.start()
    deadline = time.monotonic() + timeout + 60  # + start-up (imports, compile) outside its timer
    result = None
    while time.monotonic() < deadline:
        try:
            result = queue.get(timeout=1.0)
            break
        except Exception:
            if not proc.is_alive():
                break
    if proc.is_alive():
        proc.terminate()
    proc.join()
    if result is None or result["seconds"] > timeout:
        return None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[10, 12, 14, 16, 18, 20, 22, 24])
    parser.add_argument("--timeout", type=float, default=60.0, help="shapiq time limit per n (s)")
    args = parser.parse_args()

    rows, records = [], []
    shapiq_alive = True
    for n in args.ns:
        times, sv, sii = ours(n)
        record: dict[str, Any] = {"n": n, "masks": 1 << n, "ours_s": times}
        theirs = run_shapiq(n, args.timeout) if shapiq_alive else None
        if theirs is None and shapiq_alive:
            shapiq_alive = False
            record["shapiq"] = f"did not finish within {args.timeout:.0f} s"
        if theirs is not None:
            their_sii = {tuple(int(i) for i in k.split(",") if k): v for k, v in theirs["sii"].items()}
            d_sv = float(np.max(np.abs(np.asarray(theirs["sv"]) - sv)))
            d_sii = max(abs(their_sii[k] - sii[k]) for k in their_sii)
            record["shapiq"] = {"seconds": theirs["seconds"], "evaluations": theirs["evaluations"]}
            record["max_abs_diff"] = {"sv": d_sv, "sii": d_sii}
            record["speedup_vs_warm"] = theirs["seconds"] / times["warm"]
            record["speedup_vs_cold"] = theirs["seconds"] / times["cold"]
        records.append(record)
        shapiq_cell = f"{theirs['seconds']:.3g}" if theirs else ("—" if not shapiq_alive else "")
        rows.append(
            [
                n,
                f"{times['cold']:.3g}",
                f"{times['warm']:.3g}",
                f"{times['warm_indices']:.3g}",
                shapiq_cell if theirs else (f">{args.timeout:.0f}" if "shapiq" in record else "skipped"),
                f"{record['speedup_vs_warm']:.0f}×" if theirs else "",
                f"{record['max_abs_diff']['sii']:.1e}" if theirs else "",
            ]
        )
        print(
            f"n={n}: ours cold {times['cold']:.2f}s warm {times['warm']:.2f}s; shapiq {shapiq_cell or '-'}",
            flush=True,
        )

    headers = [
        "n",
        "ours cold (s)",
        "ours warm (s)",
        "of which indices (s)",
        "shapiq (s)",
        "speedup (warm)",
        "max|Δ| SII",
    ]
    print("\n" + table(headers, rows))
    finished = [r for r in records if isinstance(r.get("shapiq"), dict)]
    at20 = next((r for r in records if r["n"] == 20), None)
    summary = {
        "n20_cold_s": at20["ours_s"]["cold"] if at20 else None,
        "n20_warm_s": at20["ours_s"]["warm"] if at20 else None,
        "target_n20_under_10s": bool(at20 and at20["ours_s"]["cold"] < 10.0),
        "largest_n_both_finish": finished[-1]["n"] if finished else None,
        "speedup_at_largest_common_n_warm": finished[-1]["speedup_vs_warm"] if finished else None,
        "speedup_at_largest_common_n_cold": finished[-1]["speedup_vs_cold"] if finished else None,
    }
    summary["target_100x_warm"] = bool(finished and summary["speedup_at_largest_common_n_warm"] >= 100)
    summary["target_100x_cold"] = bool(finished and summary["speedup_at_largest_common_n_cold"] >= 100)
    print("\n" + json.dumps(summary, indent=1))
    payload = {
        "benchmark": "bench_indices",
        "problem": f"random MLP 16→n→32→3, logit:0, mean over {NUM_INPUTS} inputs, zero fill",
        "load_average_at_end": os.getloadavg(),
        "note": "2 CPU cores shared with other jobs; times are noisy, ratios are same-run",
        "timeout_s": args.timeout,
        "records": records,
        "summary": summary,
    }
    path = save("bench_indices", payload)
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
