"""The compressive solver against the model's own evaluation time: overhead, memory, host syncs.

For every case, in a fresh subprocess (so its peak RSS is its own), with ``PYTHONPATH`` set to the
tree under test:

* ``evaluation_s``: the model's time to evaluate as many uniform masks as the solver's budget,
  chunk by chunk with a jitted evaluation, compilation excluded — the floor any solver pays;
* ``solver_s``: ``CompressiveSolver(max_evaluations=B)`` wall time, a second call (another key,
  compilation excluded; ``solver_cold_s`` is the first call's; cases marked ``single`` solve once
  and report the cold call);
* ``overhead = (solver_s − evaluation_s) / evaluation_s``: the solver's own work per unit of model
  work (issue target ≤ 1);
* ``peak_rss_gib`` (the whole process), ``host_syncs`` (from the result's metadata, where the
  tree records them), held-out R² on 1,024 fresh uniform masks and, on planted cases, recall and
  false positives (|ĉ| ≥ 0.15 outside the planted support).

Cases: the shipped MNIST MLP's ``relu_0`` (``log_prob:7``, 64 class-7 images) at 10k / 40k;
the sentiment transformer's block-1 MLP (512 units, ``log_prob:1``, 64 reviews) at 10k / 40k;
planted sparse functions (20 terms of degree ≤ 2, coefficients 0.3–1) at n = 16,384, 262,144 and
1,048,575, with and without a dense tail of 10 % of their energy, at 20k evaluations; a random
GPT-2-small-sized block (width 768, 12 heads, 3,072 GELU MLP units masked, vocabulary 2,048, 16
inputs × 32 tokens, ``log_prob:42@last``) at 20k — one cold solve, so its overhead includes
compilation (opt-in: ``--only gpt2_block_20k``).

``--old COMMIT`` runs every case also on that commit (a temporary ``git worktree``), in the same
run (``--reuse-old FILE`` takes its rows from an earlier run's JSON); the old solver materialised
all masks (``N·n`` floats), so planted cases beyond its field
(n > 65,535) are recorded as not run with that reason. Writes
``benchmarks/results/bench_compressive_engine.json``.

Usage: ``python benchmarks/bench_compressive_engine.py [--old 7d9cff1] [--only mnist_10k ...]
[--quick]`` (``--quick``: MNIST 10k and planted n = 16,384 only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CASES: dict[str, dict[str, Any]] = {
    "mnist_10k": {"problem": "mnist", "budget": 10_000},
    "mnist_40k": {"problem": "mnist", "budget": 40_000},
    "sentiment_10k": {"problem": "sentiment", "budget": 10_000},
    "sentiment_40k": {"problem": "sentiment", "budget": 40_000},
    "planted_16384": {"problem": "planted", "n": 16_384, "budget": 20_000},
    "planted_16384_tail": {"problem": "planted", "n": 16_384, "budget": 20_000, "tail": 0.1},
    "planted_262144": {"problem": "planted", "n": 262_144, "budget": 20_000},
    "planted_262144_tail": {"problem": "planted", "n": 262_144, "budget": 20_000, "tail": 0.1},
    "planted_1048575": {"problem": "planted", "n": 1_048_575, "budget": 20_000},
    # opt-in (--only): one cold solve; its 20k evaluations alone take ~15 min on a 2-core CPU
    "gpt2_block_20k": {"problem": "gpt2_block", "budget": 20_000, "single": True, "optional": True},
}
QUICK = ("mnist_10k", "planted_16384")
#: The old solver's largest n (its BCH field) and what it needed per mask kept (float32).
OLD_MAX_N = 65_535


# ---------------------------------------------------------------------------- child process
def _problem(spec: dict[str, Any]) -> tuple[Any, dict | None, int | None]:
    sys.path.insert(0, str(HERE))
    import _bench_compressive as bc
    import jax

    if spec["problem"] == "mnist":
        return bc.mnist_problem(), None, None
    if spec["problem"] == "sentiment":
        return bc.sentiment_problem(), None, None
    if spec["problem"] == "gpt2_block":
        return _gpt2_block_problem(), None, None
    from actspec_jax.problems.synthetic import random_sparse_polynomial

    poly = random_sparse_polynomial(jax.random.key(7), spec["n"], 20, max_degree=2, min_abs=0.3)
    problem = poly.problem
    if spec.get("tail"):
        energy = sum(v * v for k, v in poly.truth.items() if k)
        problem = bc.noisy(problem, float((spec["tail"] * energy) ** 0.5), jax.random.key(11))
    return problem, poly.truth, 2


def _gpt2_block_problem() -> Any:
    """A random GPT-2-small-sized block (see the module docstring), cut at its MLP's GELU units."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    import actspec_jax as asj
    from actspec_jax.models.transformer import Block

    class TinyLM(nn.Module):
        @nn.compact
        def __call__(self, tokens: jax.Array) -> jax.Array:
            x = nn.Embed(2048, 768, name="embed")(tokens)
            x = x + self.param("pos", nn.initializers.normal(0.02), (tokens.shape[1], 768))
            keep = jnp.ones(tokens.shape, bool)
            x = Block(num_heads=12, hidden=3072, dropout=0.0, activation="gelu", name="block")(x, keep, False)
            return nn.Dense(2048, name="unembed")(nn.LayerNorm(name="ln_f")(x))

    tokens = jax.random.randint(jax.random.key(0), (16, 32), 1, 2048)
    model = TinyLM()
    variables = model.init(jax.random.key(1), tokens)
    cut = asj.cut_linen(model, variables, "block/mlp/act")
    return asj.masked_problem(cut, tokens, output="log_prob:42@last", fill="zero")


def _uniform_chunk(n: int, size: int) -> Any:
    import jax
    import jax.numpy as jnp

    @jax.jit
    def make(key: jax.Array) -> jax.Array:
        return jnp.where(jax.random.bernoulli(key, 0.5, (size, n)), -1.0, 1.0).astype(jnp.float32)

    return make


def _evaluation_seconds(problem: Any, count: int, chunk: int) -> float:
    """The model's time for ``count`` uniform masks, ``chunk`` at a time (compilation excluded)."""
    import jax

    make = _uniform_chunk(problem.n, chunk)
    evaluate = jax.jit(problem.evaluate_unchecked)
    jax.block_until_ready(evaluate(make(jax.random.key(0))))  # compile
    masks = [make(jax.random.key(1 + i)) for i in range(2)]
    jax.block_until_ready(masks)
    started = time.perf_counter()
    outs = [evaluate(masks[i % 2]) for i in range(-(-count // chunk))]
    jax.block_until_ready(outs)
    return (time.perf_counter() - started) * count / (len(outs) * chunk)


def _heldout(problem: Any, spectrum: Any, count: int = 1024, chunk: int = 128) -> float:
    import jax
    import numpy as np

    make = _uniform_chunk(problem.n, chunk)
    truth, fit = [], []
    for i in range(count // chunk):
        masks = make(jax.random.key(10_000 + i))
        truth.append(np.asarray(problem.evaluate(masks), np.float64))
        fit.append(np.asarray(spectrum.evaluate(masks), np.float64))
    truth, fit = np.concatenate(truth), np.concatenate(fit)
    return float(1.0 - ((truth - fit) ** 2).mean() / truth.var())


def child(name: str) -> dict[str, Any]:
    import resource

    import jax

    import actspec_jax as asj

    sys.path.insert(0, str(HERE))
    import _bench_compressive as bc

    spec = CASES[name]
    problem, truth, degree = _problem(spec)
    budget = spec["budget"]
    kwargs = (
        {"max_evaluations": budget} if degree is None else {"max_evaluations": budget, "max_degree": degree}
    )
    solver = asj.CompressiveSolver(**kwargs)
    chunk = min(1024, max(16, (1 << 28) // (4 * problem.n)))
    evaluation = _evaluation_seconds(problem, budget, chunk)
    started = time.perf_counter()
    spectrum = solver(problem, key=jax.random.key(1))
    cold = time.perf_counter() - started
    warm = cold
    if not spec.get("single"):
        started = time.perf_counter()
        spectrum = solver(problem, key=jax.random.key(2))
        warm = time.perf_counter() - started
    row: dict[str, Any] = {
        "case": name,
        "n": int(problem.n),
        "budget": budget,
        "evaluation_s": evaluation,
        "solver_cold_s": cold,
        "solver_s": warm,
        "overhead": (warm - evaluation) / evaluation,
        "heldout_r2": _heldout(problem, spectrum),
        "terms": len(spectrum.to_dict()),
        "host_syncs": spectrum.solver.get("host_syncs"),
        "evaluations": spectrum.solver.get("evaluations"),
    }
    if truth is not None:
        row.update(bc.recovery(spectrum, truth))
    row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return row


# ---------------------------------------------------------------------------- parent
@contextlib.contextmanager
def _worktree(commit: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="actspec-old-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True, capture_output=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)


def _run(name: str, tree: Path, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONWARNINGS="ignore")
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", name],
            env=env, capture_output=True, text=True, timeout=timeout, cwd=tree,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"case": name, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"case": name, "error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--old", default=None, help="also run every case on this commit")
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(CASES))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--reuse-old",
        default=None,
        help="take the old commit's rows from this earlier JSON instead of rerunning",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)), flush=True)
        return
    sys.path.insert(0, str(HERE))
    from _common import save, table

    reused = {}
    if args.reuse_old:
        earlier = json.loads(Path(args.reuse_old).read_text())
        reused = {r["case"]: r for r in earlier["rows"] if r.get("tree") not in (None, "new")}
        for row in reused.values():  # an earlier name of the field
            if "wrong_terms" in row:
                row["false_positives"] = row.pop("wrong_terms")
        args.old = earlier["old"]
    names = args.only or (
        list(QUICK) if args.quick else [k for k, v in CASES.items() if not v.get("optional")]
    )
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(_worktree(args.old)) if args.old and not reused else None
        for name in names:
            if name in reused:
                # the file's name and the commit it was measured at, not this machine's path
                source = f"{Path(args.reuse_old).name} (old commit {earlier.get('old', '?')})"
                rows.append(dict(reused[name], reused_from=source))
            for tree, label in ((ROOT, "new"), (old, args.old)):
                if tree is None:
                    continue
                if label != "new" and CASES[name].get("n", 0) > OLD_MAX_N:
                    row = {"case": name, "not_run": f"n > {OLD_MAX_N:,}: beyond the old solver's BCH field"}
                else:
                    row = _run(name, tree, args.timeout)
                row["tree"] = label
                rows.append(row)
                print(row, flush=True)
    headers = ["case", "tree", "eval s", "solver s", "overhead", "cold s", "RSS GiB", "syncs", "R²", "recall"]
    keys = ("evaluation_s", "solver_s", "overhead", "solver_cold_s", "peak_rss_gib")
    cells = [
        [r["case"], r["tree"], *(r.get(k) for k in keys), (r.get("host_syncs") or {}).get("total"),
         r.get("heldout_r2"), r.get("recall", r.get("not_run", r.get("error")))]
        for r in rows
    ]  # fmt: skip
    print(table(headers, cells))
    save("bench_compressive_engine", {"benchmark": "bench_compressive_engine", "old": args.old, "rows": rows})


if __name__ == "__main__":
    main()
