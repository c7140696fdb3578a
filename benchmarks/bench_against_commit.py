"""The same solver workload on two git commits in one run: times, evaluations, bitwise results.

A refactor claims "same figures as before". This script checks it: it checks out ``--old``
(default ``76bb84d``, the last commit before issue 12's refactor) into a temporary
``git worktree`` outside the repository, and runs one workload script — this file, with
``--workload`` — in fresh subprocesses whose ``PYTHONPATH`` is the old worktree or the new
tree (the current working tree, or ``--new COMMIT`` checked out the same way), alternating
old/new for ``--repeats`` rounds with ``OPENBLAS_NUM_THREADS=1``. The worktrees are removed at
the end, also on error.

The workload uses only public APIs present in both commits (``actspec_jax.GoldreichLevin``,
``ExactSolver``, ``CompressiveSolver``, ``actspec_jax.problems.synthetic``, the shipped
``mnist_mlp``), in a fixed order in one process per round, so a case's first call includes
the compilation it does not share with earlier cases — the same in both commits:

* ``gl_defaults``: ``GoldreichLevin(tau=0.1)`` (mask mode, influence order, passes=2) on
  bench_gl's planted MLP at ``n = 256`` (10 parity gadgets, distractor 0.01);
* ``gl_passes1``: the same with ``passes=1``; ``gl_index_passes2``: ``order='index'``,
  ``passes=2`` on a planted MLP with 20 random terms at ``n = 128`` (the residual pass matters);
* ``gl_budget``: ``GoldreichLevin(tau=0.1, max_evaluations=40_000)`` on the first problem;
* ``gl_paper_mnist``: ``GoldreichLevin.paper()`` on ``relu_0`` of the shipped MNIST MLP,
  ``output='indicator:7'``, 10,000 test images (bench_gl's paper-settings run);
* ``exact_16``: ``ExactSolver`` on a planted MLP with 6 random terms at ``n = 16`` (4 inputs);
* ``compressive_100``: ``CompressiveSolver(max_evaluations=5000)`` on 20 random terms at ``n = 100``.

Each case is called twice (key 0, then key 1 on the same problem): wall time of the first call
(compilation included) and of the second, evaluations, number of terms, and a sha256 digest of
``n`` + subsets + coefficients + stderr (bytes, with dtypes) of both calls. Reported per case:
median times old vs new, new/old ratio, whether the old and new time ranges overlap, and
whether evaluations and digests are equal in every round.

Usage: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_against_commit.py [--old 76bb84d]
[--new COMMIT] [--repeats 3] [--quick]``; writes ``benchmarks/results/bench_against_commit.json``
(``bench_against_commit_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# --------------------------------------------------------------------------- workload (subprocess)


def digest(spec: Any) -> str:
    """sha256 of a spectrum's ``n``, subsets ``uint32[K, W]``, coefficients ``[K]`` and stderr ``[K]``."""
    import numpy as np

    h = hashlib.sha256(str(spec.n).encode())
    for arr in (spec.subsets, spec.coefficients, spec.stderr):
        if arr is None:
            h.update(b"none")
            continue
        arr = np.ascontiguousarray(np.asarray(arr))
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _bench_gl_terms(n: int, seed: int) -> dict[tuple[int, ...], float]:
    """bench_gl's planted terms: 10 disjoint subsets of sizes 1–4, ``|c| ∈ [0.7, 1]``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = [1, 1, 2, 2, 2, 3, 3, 3, 4, 4]
    neurons = rng.permutation(n)[: sum(sizes)]
    terms, at = {}, 0
    for size in sizes:
        subset = tuple(sorted(int(i) for i in neurons[at : at + size]))
        terms[subset] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.0))
        at += size
    return terms


def _random_terms(n: int, count: int, seed: int) -> dict[tuple[int, ...], float]:
    """``count`` random subsets of sizes 1–4 with ``|c| ∈ [0.5, 1]`` (bench_gl's sweep terms)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    terms: dict[tuple[int, ...], float] = {}
    while len(terms) < count:
        subset = tuple(sorted(rng.choice(n, int(rng.integers(1, 5)), replace=False).tolist()))
        terms[subset] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0))
    return terms


def cases(quick: bool) -> list[tuple[str, Callable[[], tuple[Any, Any]]]]:
    """``(name, build)`` pairs; ``build()`` returns ``(solver, problem)`` (built outside the timing)."""
    import jax
    import jax.numpy as jnp

    import actspec_jax as asj
    from actspec_jax.problems import synthetic

    n_gl = 64 if quick else 256
    n_index = 64 if quick else 128
    images_paper = 2000 if quick else 10_000

    def planted_gl() -> Any:
        model = synthetic.planted_mlp(
            n_gl, _bench_gl_terms(n_gl, 0), distractor=0.01, key=jax.random.key(0), num_inputs=1
        )
        return model.problem()

    def planted_index() -> Any:
        terms = _random_terms(n_index, 20, 1000)
        return synthetic.planted_mlp(
            n_index, terms, distractor=0.01, key=jax.random.key(0), num_inputs=1
        ).problem()

    def mnist() -> Any:
        from actspec_jax.data import load_mnist
        from actspec_jax.models import load_pretrained

        model = load_pretrained("mnist_mlp")
        images, _ = load_mnist("test")
        cut = asj.cut_linen(model.module, model.variables, "relu_0")
        return asj.MaskedProblem.from_cut(cut, jnp.asarray(images[:images_paper]), output="indicator:7")

    def exact() -> Any:
        n = 12 if quick else 16
        model = synthetic.planted_mlp(
            n, _random_terms(n, 6, 2), distractor=0.01, key=jax.random.key(2), num_inputs=4
        )
        return model.problem()

    def sparse() -> Any:
        return synthetic.random_sparse_polynomial(jax.random.key(0), 100, 20).problem

    return [
        ("gl_defaults", lambda: (asj.GoldreichLevin(tau=0.1), planted_gl())),
        ("gl_passes1", lambda: (asj.GoldreichLevin(tau=0.1, passes=1), planted_gl())),
        (
            "gl_index_passes2",
            lambda: (asj.GoldreichLevin(tau=0.1, order="index", passes=2), planted_index()),
        ),
        ("gl_budget", lambda: (asj.GoldreichLevin(tau=0.1, max_evaluations=40_000), planted_gl())),
        ("gl_paper_mnist", lambda: (asj.GoldreichLevin.paper(), mnist())),
        ("exact_16", lambda: (asj.ExactSolver(), exact())),
        (
            "compressive_100",
            lambda: (asj.CompressiveSolver(max_evaluations=2000 if quick else 5000), sparse()),
        ),
    ]


def workload(out: Path, quick: bool, only: list[str] | None) -> None:
    """Run every case twice (keys 0, 1) with whichever ``actspec_jax`` is on the path; write JSON."""
    import jax
    import numpy as np

    import actspec_jax as asj

    results: dict[str, Any] = {"actspec_jax_file": asj.__file__, "cases": {}}
    for name, build in cases(quick):
        if only and name not in only:
            continue
        solver, problem = build()
        row: dict[str, Any] = {}
        for call, seed in (("first", 0), ("second", 1)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                started = time.perf_counter()
                spec = solver(problem, key=jax.random.key(seed))
                np.asarray(spec.coefficients)  # results are host arrays; make sure
                seconds = time.perf_counter() - started
            row[call] = {
                "seconds": seconds,
                "evaluations": int(spec.solver.get("evaluations", -1)),
                "terms": int(spec.num_terms),
                "digest": digest(spec),
                "warnings": sorted({str(w.message)[:120] for w in caught}),
            }
        results["cases"][name] = row
    out.write_text(json.dumps(results, indent=1) + "\n")


# --------------------------------------------------------------------------- driver


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextmanager
def worktree(commit: str, parent: Path) -> Iterator[Path]:
    """A detached ``git worktree`` of ``commit`` under ``parent``, removed afterwards (also on error)."""
    path = parent / f"tree_{commit[:12]}"
    _git("worktree", "add", "--detach", str(path), commit)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)


def run_once(root: Path, out: Path, quick: bool, only: list[str] | None) -> dict[str, Any]:
    """One workload subprocess with ``root`` first on ``PYTHONPATH``; its JSON."""
    env = dict(os.environ, PYTHONPATH=str(root), OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--workload", str(out)]
    cmd += ["--quick"] if quick else []
    cmd += ["--only", *only] if only else []
    subprocess.run(cmd, check=True, env=env, cwd=str(out.parent))
    data = json.loads(out.read_text())
    imported = Path(data["actspec_jax_file"]).resolve()
    if not imported.is_relative_to(root.resolve()):
        raise RuntimeError(f"workload imported {imported}, not the tree under {root}")
    data["actspec_jax_file"] = imported.relative_to(root.resolve()).as_posix()  # no machine paths saved
    return data


def summarise(rounds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per case: median first/second-call seconds old vs new, ratio, ranges overlap, equality."""
    out = []
    for name in rounds["old"][0]["cases"]:
        per = {side: [r["cases"][name] for r in rounds[side]] for side in ("old", "new")}
        row: dict[str, Any] = {"case": name}
        for call in ("first", "second"):
            t = {side: [c[call]["seconds"] for c in per[side]] for side in per}
            med = {side: statistics.median(v) for side, v in t.items()}
            row[f"{call}_s"] = {
                "old": t["old"],
                "new": t["new"],
                "old_median": med["old"],
                "new_median": med["new"],
            }
            row[f"{call}_ratio_new_over_old"] = med["new"] / med["old"]
            row[f"{call}_ranges_overlap"] = max(min(t["old"]), min(t["new"])) <= min(
                max(t["old"]), max(t["new"])
            )
        keys = ("evaluations", "terms", "digest")
        for key in keys:
            values = {side: {(c["first"][key], c["second"][key]) for c in per[side]} for side in per}
            row[f"{key}_old"] = [list(v) for v in sorted(values["old"])]
            row[f"{key}_new"] = [list(v) for v in sorted(values["new"])]
            row[f"{key}_equal"] = values["old"] == values["new"] and len(values["old"]) == 1
        row["warnings_old"] = sorted(
            {w for c in per["old"] for k in ("first", "second") for w in c[k]["warnings"]}
        )
        row["warnings_new"] = sorted(
            {w for c in per["new"] for k in ("first", "second") for w in c[k]["warnings"]}
        )
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="76bb84d", help="old commit (default 76bb84d, before issue 12)")
    parser.add_argument("--new", default=None, help="new commit (default: the current working tree)")
    parser.add_argument("--repeats", type=int, default=3, help="old/new rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="smaller workload")
    parser.add_argument("--only", nargs="+", default=None, help="run only these cases")
    parser.add_argument("--no-save", action="store_true", help="print only (e.g. while bisecting)")
    parser.add_argument("--workload", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload is not None:
        workload(args.workload, args.quick, args.only)
        return

    # SIGTERM unwinds like an exception: subprocess.run kills the workload, the worktrees go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.path.insert(0, str(HERE))
    from _common import save, table

    old_sha = _git("rev-parse", args.old)
    new_sha = _git("rev-parse", args.new) if args.new else _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--", "actspec_jax")) if not args.new else False
    load = {"before": os.getloadavg()}
    started = time.perf_counter()
    rounds: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="bench_against_commit_") as tmp:
        parent = Path(tmp)
        new_tree = worktree(new_sha, parent) if args.new else _here()
        with worktree(old_sha, parent) as old_root, new_tree as new_root:
            for index in range(args.repeats):
                for side, root in (("old", old_root), ("new", new_root)):
                    print(f"round {index + 1}/{args.repeats}: {side} ({root})", flush=True)
                    out = parent / f"{side}_{index}.json"
                    rounds[side].append(run_once(root, out, args.quick, args.only))
                load[f"after_round_{index + 1}"] = os.getloadavg()
    rows = summarise(rounds)
    headers = ["case", "first s old", "new", "ratio", "second s old", "new", "ratio", "evals =", "digest ="]
    body = [
        [
            r["case"],
            r["first_s"]["old_median"],
            r["first_s"]["new_median"],
            r["first_ratio_new_over_old"],
            r["second_s"]["old_median"],
            r["second_s"]["new_median"],
            r["second_ratio_new_over_old"],
            "yes" if r["evaluations_equal"] else f"NO {r['evaluations_old']} vs {r['evaluations_new']}",
            "yes" if r["digest_equal"] else "NO",
        ]
        for r in rows
    ]
    print(table(headers, body))
    print(f"load average: {load}")
    if args.no_save:
        return
    payload = {
        "benchmark": "bench_against_commit",
        "argv": sys.argv[1:],
        "old_commit": old_sha,
        "new_commit": new_sha,
        "new_is_working_tree": args.new is None,
        "new_tree_dirty_actspec_jax": dirty,
        "repeats": args.repeats,
        "quick": args.quick,
        "openblas_num_threads": "1",
        "load_averages": load,
        "total_s": time.perf_counter() - started,
        "cases": rows,
        "rounds": rounds,
    }
    path = save("bench_against_commit_quick" if args.quick else "bench_against_commit", payload)
    print(f"saved {path}")


@contextmanager
def _here() -> Iterator[Path]:
    """The current tree as the "new" side (no worktree to remove)."""
    yield REPO


if __name__ == "__main__":
    main()
