"""Peak memory of one exact solve at n = 24 against "2× the dense spectrum + one chunk".

XLA buffers are invisible to ``tracemalloc``; on CPU they live in the process's RSS, so the
peak is read from ``/proc/self/status`` (``VmHWM``, Linux) after resetting it
(``clear_refs`` = 5) once everything is compiled: ``delta = peak − RSS before the solve``.
Each measurement runs in a fresh process (``--child N KIND``) with KIND ``function`` (a
cheap jitted function of the mask, direct path) or ``mnist`` (the shipped MNIST MLP, its
first ``N`` units of ``relu_0``, 16 inputs, incremental path). On accelerators use
``jax.local_devices()[0].memory_stats()['peak_bytes_in_use']`` instead.
Usage: ``python benchmarks/scale_memory.py [--n 24] [--tiny]``
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import actspec_jax as asj
from actspec_jax.solvers.exact.solver import evaluation_plan


def status(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def make_problem(n: int, kind: str) -> asj.Problem:
    if kind == "function":
        w = jnp.asarray(np.random.default_rng(0).standard_normal(n), jnp.float32)
        return asj.FunctionProblem(lambda x: jnp.tanh(x @ w), n)
    from actspec_jax.data import load_mnist
    from actspec_jax.models import load_pretrained

    model = load_pretrained("mnist_mlp")
    images, _ = load_mnist("test")
    cut = asj.cut_linen(model.module, model.variables, "relu_0")
    return asj.masked_problem(cut, jnp.asarray(images[:16]), output="log_prob:7", units=list(range(n)))


def child(n: int, kind: str) -> None:
    problem = make_problem(n, kind)
    solver = asj.ExactSolver(top_k=256)
    plan = evaluation_plan(problem)
    solver(problem)  # compile every kernel first
    gc.collect()
    base = status("VmRSS:")
    reset_peak()
    spectrum = solver(problem)
    peak = status("VmHWM:")
    dense = 4 << n
    block = plan["block"] or plan["chunk"]
    print(
        json.dumps(
            {
                "n": n,
                "kind": kind,
                "evaluation": plan["evaluation"],
                "delta_bytes": peak - base,
                "dense_bytes": dense,
                "block_bytes": block * plan["bytes_per_mask"],
                "chunk_bytes": plan["chunk"] * plan["bytes_per_mask"],
                "delta_over_dense": (peak - base) / dense,
                "terms": int(spectrum.num_terms),
            }
        )
    )


def run(n: int) -> list[dict]:
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    records = []
    for kind in ("function", "mnist"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), kind]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child failed:\n{proc.stderr[-3000:]}")
        records.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return records


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3])
        return
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import save, table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    n = 14 if args.tiny else args.n
    records = run(n)
    rows = [
        [
            r["kind"],
            r["evaluation"],
            r["n"],
            r["dense_bytes"] / 2**20,
            r["delta_bytes"] / 2**20,
            r["delta_over_dense"],
            r["block_bytes"] / 2**20,
            r["chunk_bytes"] / 2**20,
        ]
        for r in records
    ]
    headers = [
        "problem",
        "path",
        "n",
        "dense MiB",
        "peak − base MiB",
        "peak / dense",
        "block MiB",
        "chunk MiB",
    ]
    print(table(headers, rows))
    print(f"saved {save('scale_memory', {'records': records})}")


if __name__ == "__main__":
    main()
