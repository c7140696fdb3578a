"""Bitwise regression check of GoldreichLevin results between two checkouts.

Runs a fixed set of small GL searches (residual passes, spectral aliasing, checkpoints, a
budget) and saves every result's subsets, coefficients, standard errors and evaluation counts;
``--compare`` loads two such files and reports any difference (exact equality, not a tolerance).
Run it once with ``PYTHONPATH`` pointing at each checkout::

    PYTHONPATH=/path/to/old python benchmarks/experiments/gl_bitwise.py save old.pkl
    PYTHONPATH=$PWD python benchmarks/experiments/gl_bitwise.py save new.pkl
    python benchmarks/experiments/gl_bitwise.py compare old.pkl new.pkl
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np


def cases() -> dict[str, Any]:
    """``name -> (solver, problem, options)`` for every search compared."""
    import actspec_jax as asj
    from actspec_jax.problems import synthetic

    planted = synthetic.random_sparse_polynomial(jax.random.key(3), 64, 12, max_degree=3, min_abs=0.1)
    small = synthetic.sparse_polynomial(6, {(0,): 1.0, (1,): 0.9, (0, 2): 0.6, (1, 2): 0.55, (3,): 0.8})
    sim = np.eye(6)
    sim[0, 1] = sim[1, 0] = 0.9
    fast = dict(tau=0.05, num_samples=64, leaf_samples=2048)
    aliasing = [asj.SpectralAliasing(gamma=0.2, similarity=sim)]
    budget = asj.GoldreichLevin(tau=0.05, passes=2, max_evaluations=60_000)
    keys = [jax.random.key(10 + k) for k in range(3)]
    outputs = [synthetic.random_sparse_polynomial(k, 64, 6, max_degree=3) for k in keys]
    multi = asj.FunctionProblem(
        lambda x: jax.numpy.stack([p.problem.evaluate_unchecked(x) for p in outputs], axis=1), 64
    )
    return {
        "batched_passes3": (asj.GoldreichLevin(passes=3, **fast), multi, {}),
        "n64_passes2": (asj.GoldreichLevin(passes=2, **fast), planted.problem, {}),
        "n64_passes3": (asj.GoldreichLevin(passes=3, **fast), planted.problem, {}),
        "n64_default": (asj.GoldreichLevin(tau=0.05), planted.problem, {}),
        "aliasing_passes2": (
            asj.GoldreichLevin(tau=0.1, passes=2, redundancy=aliasing),
            small.problem,
            {},
        ),
        "checkpoint_passes2": (asj.GoldreichLevin(passes=2, **fast), planted.problem, {"checkpoint": True}),
        "budget_passes2": (budget, planted.problem, {}),
    }


def record(spectrum: Any) -> dict[str, Any]:
    info = spectrum.solver
    return {
        "subsets": np.asarray(spectrum.subsets).copy(),
        "coefficients": np.asarray(spectrum.coefficients).copy(),
        "stderr": None if spectrum.stderr is None else np.asarray(spectrum.stderr).copy(),
        "evaluations": int(info["evaluations"]),
        "evaluations_by_stage": dict(info["evaluations_by_stage"]),
        "passes_run": info.get("passes_run"),
        "redundancy_removed": info.get("redundancy", {}).get("removed_count"),
    }


def save(path: str) -> None:
    import actspec_jax as asj

    out = {}
    for name, (solver, problem, options) in cases().items():
        kwargs = {}
        with tempfile.TemporaryDirectory() as tmp:
            if options.get("checkpoint"):
                kwargs["checkpoint_path"] = Path(tmp) / "gl.npz"
            result = solver(problem, key=jax.random.key(7), **kwargs)
            if isinstance(result, asj.SpectrumBatch):  # one record per output
                for k, spectrum in enumerate(result):
                    out[f"{name}_output{k}"] = record(spectrum)
                continue
            out[name] = record(result)
            if options.get("checkpoint"):  # a rerun resumes from the files: the same result
                out[name + "_resumed"] = record(solver(problem, key=jax.random.key(7), **kwargs))
                out[name + "_files"] = sorted(p.name for p in Path(tmp).iterdir())
        print(name, "terms", out[name]["subsets"].shape[0], "evaluations", out[name]["evaluations"])
    Path(path).write_bytes(pickle.dumps(out))


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            a is not None
            and b is not None
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(np.array_equal(a, b))
        )
    return a == b


def compare(old: str, new: str) -> int:
    a, b = (pickle.loads(Path(p).read_bytes()) for p in (old, new))
    bad = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in one file")
            bad += 1
            continue
        if isinstance(a[name], list):
            diffs = [] if a[name] == b[name] else ["files"]
        else:
            diffs = [k for k in a[name] if not same(a[name][k], b[name].get(k))]
        print(f"{name}: {'identical' if not diffs else 'DIFFERS in ' + ', '.join(diffs)}")
        bad += bool(diffs)
    return 1 if bad else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("save", "compare"))
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    if args.mode == "save":
        save(args.paths[0])
    else:
        sys.exit(compare(*args.paths[:2]))
