"""The shipped language model end to end: heads of all layers, all SAE latents, an MLP layer.

Inputs: the first ``--inputs`` held-out windows (IMDB validation, ``review_windows`` of the LM's
recipe) whose next token is ``--token`` (default ``movie``); output: that token's log-probability
at the last position (``log_prob:<id>@last``, averaged over the windows), zero fill.

Cases (each the compressive solver, the default, under ``--budget`` evaluations):

* ``lm-heads``: the 4 + 4 heads of both blocks in one mask (``MultiLayerProblem.from_model``;
  n = 8, so the exact spectrum is computed too and the compressive one compared with it);
* ``lm-sae``: all 1,024 latents of the SAE on ``block_0/resid`` (``site(basis=W_dec,
  encoder=encode)``; the SAE's error stays in the activations);
* ``lm-mlp``: the 512 MLP units of ``block_1``.

Per case: wall time of one solve (cold: compiling included, what a user's first call costs), the
model's own time for as many uniform masks (the baseline, warm, measured on 4,096 and scaled;
overhead = (solve − eval) / eval), held-out R² on 2,048 uniform masks, terms, the interaction
share and the top joint subsets. Saves ``results/bench_language_model.json``.

    python benchmarks/bench_language_model.py [--budget 20000] [--inputs 8] [--token movie] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table

import actspec_jax as asj
from actspec_jax.data import load_reviews
from actspec_jax.models import load_movie_lm
from actspec_jax.models.language_model import review_windows
from actspec_jax.spectrum import share_percent


def _inputs(lm: Any, token: str, count: int) -> tuple[jax.Array, int]:
    recipe = lm.info["recipe"]["windows"]
    held = review_windows(
        lm.tokenizer, load_reviews("imdb", "validation").texts, recipe["context"], recipe["per_review"]
    )
    target = lm.tokenizer.token_id(token)
    chosen = held[held[:, -1] == target][:count]
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} held-out windows end before {token!r}; ask for fewer inputs.")
    return jnp.asarray(chosen[:, :-1]), target


def _eval_seconds(problem: Any, count: int, measured: int = 4096) -> float:
    """The model's own time for ``count`` uniform masks (warm, chunks of 512), measured on
    ``min(count, measured)`` masks and scaled linearly."""
    chunk = 512
    measured = max(chunk, min(count, measured) // chunk * chunk)
    masks = jax.random.rademacher(jax.random.key(5), (measured, problem.n), dtype=jnp.float32)
    run = jax.jit(problem.evaluate_unchecked)
    jax.block_until_ready(run(masks[:chunk]))
    started = time.perf_counter()
    for i in range(0, measured, chunk):
        jax.block_until_ready(run(masks[i : i + chunk]))
    return (time.perf_counter() - started) * count / measured


def _case(name: str, problem: Any, budget: int, exact: bool) -> dict[str, Any]:
    solver = asj.CompressiveSolver(max_evaluations=budget)
    started = time.perf_counter()
    spectrum = solver(problem, key=jax.random.key(0))  # cold: compiling included, as a user's first call
    solve = time.perf_counter() - started
    evaluations = int(spectrum.solver["evaluations"])
    eval_s = _eval_seconds(problem, evaluations)
    r2 = float(spectrum.r2(problem, key=jax.random.key(99), num_masks=2048))
    pairs = spectrum.select(min_degree=2).top(5)
    labels = spectrum.neuron_labels
    joint = [([labels[i] for i in subset], coef) for subset, coef in pairs.to_dict().items()]
    row: dict[str, Any] = {
        "case": name,
        "n": int(problem.n),
        "evaluations": evaluations,
        "solve_s": solve,
        "eval_s": eval_s,
        "overhead": (solve - eval_s) / eval_s,
        "held_out_r2": r2,
        "terms": int(spectrum.num_terms),
        "interaction_share_percent": share_percent(spectrum.interaction_share()),
        "top_joint": [[names, float(c)] for names, c in joint],
    }
    if exact:
        truth = asj.ExactSolver()(problem)
        row["exact_r2"] = float(truth.r2(problem, key=jax.random.key(99), num_masks=2048))
        row["max_abs_diff_vs_exact"] = float(
            max(abs(truth.to_dict().get(s, 0.0) - spectrum.to_dict().get(s, 0.0)) for s in truth.to_dict())
        )
    print(f"{name}: {row}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=int, default=20_000)
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--token", default="movie")
    parser.add_argument("--quick", action="store_true", help="2,000 evaluations, 4 inputs (smoke)")
    args = parser.parse_args()
    if args.quick:
        args.budget, args.inputs = 2_000, 4
    started = time.perf_counter()
    lm = load_movie_lm()
    tokens, target = _inputs(lm, args.token, args.inputs)
    output = f"log_prob:{target}@last"
    module, variables, sae = lm.module, lm.variables, lm.sae
    heads = asj.MultiLayerProblem.from_model(
        module, variables,
        [asj.site(layer, axis=-1, name=layer.split("/")[0], kind="head") for layer in module.head_layers()],
        tokens, output=output,
    )  # fmt: skip
    sae_site = asj.site(lm.info["sae"]["layer"], basis=sae.w_dec, encoder=sae.encode, kind="latent")
    latents = asj.masked_problem(asj.cut_model(module, variables, sae_site), tokens, output=output)
    mlp = asj.masked_problem(asj.cut_model(module, variables, "block_1/mlp/act"), tokens, output=output)
    rows = [
        _case("lm-heads", heads, args.budget, exact=True),
        _case("lm-sae", latents, args.budget, exact=False),
        _case("lm-mlp", mlp, args.budget, exact=False),
    ]
    keys = [
        "case", "n", "evaluations", "solve_s", "eval_s", "overhead",
        "held_out_r2", "terms", "interaction_share_percent",
    ]  # fmt: skip
    print(table(keys, [[r[k] for k in keys] for r in rows]))
    path = save(
        "bench_language_model",
        {
            "benchmark": "language_model",
            "token": args.token,
            "token_id": int(target),
            "inputs": int(tokens.shape[0]),
            "budget": args.budget,
            "cases": rows,
            "total_s": time.perf_counter() - started,
        },
    )
    print(f"saved {path} (total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
