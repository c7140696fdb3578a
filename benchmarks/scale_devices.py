"""Exact-solver scaling over forced host devices (1, 2, 4) on CPU, each in its own process.

``XLA_FLAGS=--xla_force_host_platform_device_count=d`` must be set before jax starts, so
every device count runs in a fresh interpreter (this script re-invokes itself with
``--child``). The child solves the MNIST problem of :mod:`scale_exact` with
``ExactSolver(devices=d)`` and reports the wall time and a checksum of the spectrum; the
parent checks that all device counts agree.

On a CPU host the forced devices share the same cores, so this measures the overhead and
correctness of the sharded path, not a speed-up; on a multi-GPU/TPU host run the child
directly (``--child --devices d``) to measure real scaling.
Usage: ``python benchmarks/scale_devices.py [--n 16] [--inputs 64] [--tiny]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def child(n: int, inputs: int, devices: int, repeats: int) -> dict[str, Any]:
    import jax
    import numpy as np
    from scale_exact import mnist_problem

    import actspec_jax as asj

    problem, *_ = mnist_problem(n, inputs)
    solver = asj.ExactSolver(devices=devices)
    spectrum = solver(problem)  # compile
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        spectrum = solver(problem)
        best = min(best, time.perf_counter() - started)
    return {
        "devices": devices,
        "visible_devices": len(jax.devices()),
        "solver_devices": spectrum.solver["devices"],
        "solve_s": best,
        "masks_per_s": (1 << n) / best,
        "dense_checksum": float(np.sum(np.abs(spectrum.dense))),
        "dense_head": [float(v) for v in spectrum.dense[:8]],
    }


def run(n: int, inputs: int, counts: list[int], repeats: int = 2) -> list[dict[str, Any]]:
    records = []
    root = HERE.parent
    for d in counts:
        env = dict(os.environ)
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={d}".strip()
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--devices", str(d)]
        cmd += ["--n", str(n), "--inputs", str(inputs), "--repeats", str(repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"device count {d} failed:\n{proc.stderr[-3000:]}")
        records.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = records[0]
    for r in records:
        r["speedup_vs_1"] = base["solve_s"] / r["solve_s"]
        r["max_head_diff_vs_1"] = max(abs(a - b) for a, b in zip(r["dense_head"], base["dense_head"]))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    if args.tiny:
        args.n, args.inputs = 10, 16
    if args.child:
        print(json.dumps(child(args.n, args.inputs, args.devices, args.repeats)))
        return
    from _common import save, table

    records = run(args.n, args.inputs, args.counts, args.repeats)
    rows = [[r["devices"], r["solve_s"], r["masks_per_s"], r["speedup_vs_1"]] for r in records]
    print(table(["devices", "solve s", "masks/s", "speed-up vs 1"], rows))
    print(f"saved {save('scale_devices', {'n': args.n, 'inputs': args.inputs, 'records': records})}")


if __name__ == "__main__":
    main()
