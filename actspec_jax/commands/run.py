"""``actspec run``: analyse a layer of a shipped model and write a report folder.

Examples::

    actspec run --preset mnist-mask --target 3              # GL, mask mode, class 3
    actspec run --preset mnist-paper --target 7             # the paper's estimator
    actspec run --preset sentiment-heads                    # 4 heads of block 0, exact
    actspec run --preset lm-sae                             # 1,024 SAE latents of the language model
    actspec run --model mnist_mlp --layer relu_0 --classes 7 --count 64 \\
        --output log_prob:7 --units top:16 --solver exact --out my_report
    actspec run --model sentiment_transformer --layer block_0/attn/heads \\
        --layer block_1/attn/heads --classes 0,1 --per-class 16 --solver exact
    actspec run --model mnist_mlp --layer relu_0 --classes 7 --count 64 --output log_prob:7 \\
        --solver compressive --max-evaluations 20000 --checkpoint ledger.npz

A preset sets defaults; every option given on the command line overrides it. Runs can be
stopped (Ctrl-C, SIGTERM) and resumed: pass ``--checkpoint FILE`` and rerun the same command
(``--restart`` discards the checkpoint). The compressive solver's checkpoint is a query ledger
of every evaluated mask; it is kept, and a rerun with a larger ``--max-evaluations`` re-uses it.
A run locks its report folder and its checkpoint: a second run on either is refused, naming the
first; a killed run's lock is taken over. The folders are checked writable before any computation.
"""

from __future__ import annotations

import argparse
import dataclasses

from actspec_jax.commands import plain_help

__all__ = ["register", "run_command"]


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _count(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of inputs or 'all', got {text!r}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    from actspec_jax.runs.config import PRESETS, SOLVERS

    presets = "\n".join(f"  {name}: {desc}" for name, (desc, _) in sorted(PRESETS.items()))
    parser = subparsers.add_parser(
        "run",
        help="analyse a layer of a shipped model (presets for the documented experiments)",
        description=plain_help(__doc__) + "\npresets ({target} = --target):\n" + presets,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a documented experiment")
    parser.add_argument("--target", type=int, help="class substituted into a preset's output/classes")
    g = parser.add_argument_group("model and layer")
    g.add_argument("--model", help="zoo model: mnist_mlp, mnist_mlp_deep, sentiment_transformer, movie_lm")
    g.add_argument(
        "--layer",
        action="append",
        dest="layers",
        help="layer to mask (repeat for one mask over several layers, e.g. every block's heads)",
    )
    g = parser.add_argument_group("inputs")
    g.add_argument("--split", help="data split: train/test (MNIST), train/validation/test (reviews)")
    g.add_argument("--classes", type=_int_list, help="keep only inputs of these true classes, e.g. 7 or 0,1")
    g.add_argument("--count", type=_count, help="number of inputs after filtering, or 'all'")
    g.add_argument("--per-class", type=int, help="instead of --count: this many inputs of each listed class")
    g.add_argument("--source", choices=["imdb", "rotten_tomatoes"], help="review source (text models)")
    g.add_argument("--max-review-tokens", type=int, help="keep only reviews of at most this many tokens")
    g.add_argument(
        "--context", type=int, help="tokens per review (≤ the model's context); longer reviews are truncated"
    )
    g.add_argument(
        "--next-token", help="language model: windows followed by this word (default 'movie'), its log-prob"
    )
    g = parser.add_argument_group("function")
    g.add_argument(
        "--output",
        help="logit:c, logit_diff:a-b, log_prob:c, prob:c or indicator:c; for sequence outputs add the "
        "position, e.g. log_prob:21@last",
    )
    g.add_argument("--fill", choices=["zero", "mean", "resample"], help="value of ablated neurons")
    g.add_argument("--units", help="mask only these units: 'top:K' (by attribution) or '3,17,42'")
    g.add_argument(
        "--sae",
        action=argparse.BooleanOptionalAction,
        help="language model: mask the latents of its sparse autoencoder on the layer (error kept)",
    )
    g = parser.add_argument_group("solver")
    g.add_argument(
        "--solver",
        choices=SOLVERS,
        help="exact (all 2^n masks), gl (mask mode), paper, or compressive (under --max-evaluations)",
    )
    g.add_argument("--tau", type=float, help="GL heaviness threshold")
    g.add_argument("--tau-mode", choices=["relative", "centered", "absolute"], help="what tau is relative to")
    g.add_argument("--beam", type=int, help="GL: live buckets kept per level")
    g.add_argument("--samples", type=int, dest="num_samples", help="GL: base draws per level")
    g.add_argument("--draws-per-z", type=int, help="GL: prefix draws per base draw")
    g.add_argument("--block-bits", type=int, dest="block_size", help="GL: neurons split per level")
    g.add_argument("--leaf-samples", type=int, help="GL: masks for the norm pass and the leaf estimates")
    g.add_argument("--influence-samples", type=int, help="GL: points of the influence pre-pass")
    g.add_argument("--max-degree", type=int, help="GL and compressive: largest subset size searched")
    g.add_argument(
        "--max-evaluations", type=int, help="compressive: budget of model evaluations (default 20000)"
    )
    g.add_argument("--checkpoint", help="checkpoint file (any solver); rerun the same command to resume")
    g.add_argument(
        "--checkpoint-every",
        type=_seconds,
        dest="checkpoint_every_s",
        help="exact and compressive: seconds between checkpoint saves (default 60; GL saves every level)",
    )
    g.add_argument(
        "--restart",
        action="store_true",
        default=None,
        help="discard an existing --checkpoint and start afresh",
    )
    g = parser.add_argument_group("report")
    g.add_argument("--seed", type=int, help="seed of every random choice (default 0)")
    g.add_argument("--out", help="report folder (default: actspec_run)")
    g.add_argument("--faithfulness", action=argparse.BooleanOptionalAction, help="ablation curve")
    g.add_argument("--faithfulness-k", type=int, help="largest number of neurons ablated on the curve")
    g.add_argument("--random-orderings", type=int, help="random orderings on the curve")
    g.add_argument("--firing", action=argparse.BooleanOptionalAction, help="tokens where subsets fire")
    g.add_argument("--top", type=int, help="terms shown in tables and figures")
    g.add_argument("--r2-masks", type=int, help="held-out random masks of the R²")
    g.add_argument("--title", help="report title")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from actspec_jax.runs import RunConfig, config_from_preset, run

    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(RunConfig)}
    all_inputs = overrides.get("count") == "all"
    if all_inputs:
        overrides["count"] = None
    if overrides.get("layers") is not None:
        overrides["layers"] = tuple(overrides["layers"])
    cfg = config_from_preset(args.preset, **overrides)
    if all_inputs:
        cfg = dataclasses.replace(cfg, count=None)
    run(cfg, progress=not args.quiet)
    return 0
