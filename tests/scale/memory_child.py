"""Peak resident memory of one exact solve, measured in a fresh process (prints JSON).

XLA buffers are invisible to ``tracemalloc``; on CPU they live in the process's RSS, so the
peak is read from ``/proc/self/status`` (``VmHWM``) after resetting it (``clear_refs`` = 5)
once everything is compiled: ``delta = peak − RSS before the solve``.

Usage: ``python memory_child.py N KIND`` with KIND ``function`` (a cheap jitted function of
the mask) or ``mnist`` (the shipped MNIST MLP, its first ``N`` units, 16 inputs).
"""

from __future__ import annotations

import gc
import json
import sys

import jax.numpy as jnp
import numpy as np

import actspec_jax as asj
from actspec_jax.solvers.exact import evaluation_plan


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


def main() -> None:
    n, kind = int(sys.argv[1]), sys.argv[2]
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


if __name__ == "__main__":
    main()
