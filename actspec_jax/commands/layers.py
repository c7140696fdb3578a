"""``actspec layers``: which layers of a shipped model represent the inputs alike.

Captures every named layer's representation of one fixed input set (test images for the
MNIST MLPs; reviews for the sentiment transformer, token-pooled), builds per-layer cost
matrices, computes the Gromov–Wasserstein distance between every pair of layers
(ott-jax, entropic with ε-annealing; the unregularised objective
Σ (C₁ᵢₖ − C₂ⱼₗ)² PᵢⱼPₖₗ at the returned coupling, no ½, no square root, zero diagonal)
and linear CKA as the classic baseline, groups the layers into sub-networks (hierarchical
clustering and contiguous segmentation) and writes a report folder with heatmaps.

Presets: ``mnist`` (196→256→10: dense_0, relu_0, logits), ``mnist_deep``
(196→256→256→256→10: every dense/relu and the logits), ``sentiment`` (each transformer
block's MLP neurons and residual stream, between the token embedding and the pooled
representation and logits).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from actspec_jax.commands import plain_help

__all__ = ["PRESETS", "capture_preset", "register", "run_layers"]

PRESETS = ("mnist", "mnist_deep", "sentiment")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "layers",
        help="cross-layer similarity (Gromov–Wasserstein, CKA) and sub-networks of a shipped model",
        description=plain_help(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset", choices=PRESETS, default="mnist_deep", help="model (default: %(default)s)"
    )
    parser.add_argument("--out", default=None, help="report folder (default: actspec_layers_<preset>)")
    parser.add_argument("--inputs", type=int, default=None, help="inputs compared (default 200; tiny: 24)")
    parser.add_argument(
        "--metric", default="euclidean", choices=["euclidean", "sqeuclidean", "cosine"], help="cost metric"
    )
    parser.add_argument(
        "--normalize", default="max", choices=["max", "mean", "median"], help="cost normalisation"
    )
    parser.add_argument("--epsilon", type=float, default=1e-3, help="entropic regularisation of GW")
    parser.add_argument("--groups", type=int, default=2, help="number of sub-networks")
    parser.add_argument(
        "--pooling", default="mean", choices=["mean", "cls", "last", "flatten"], help="token pooling"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the input sample")
    parser.set_defaults(func=run_layers)


def _tiny() -> bool:
    return os.environ.get("ACTSPEC_TINY", "") not in ("", "0")


def capture_preset(preset: str, num_inputs: int, *, pooling: str = "mean", seed: int = 0) -> dict[str, Any]:
    """Representations ``{layer: float32[m, d]}`` of a preset's model and a description."""
    import numpy as np

    from actspec_jax.errors import ActSpecError
    from actspec_jax.layers import capture_representations

    rng = np.random.default_rng(seed)
    if preset in ("mnist", "mnist_deep"):
        from actspec_jax.data import load_mnist
        from actspec_jax.models import load_pretrained

        name = "mnist_mlp" if preset == "mnist" else "mnist_mlp_deep"
        model = load_pretrained(name)
        images, labels = load_mnist("test")
        index = np.sort(rng.choice(len(images), size=num_inputs, replace=False))
        hidden = len(model.module.hidden)
        layers = [f"{kind}_{i}" for i in range(hidden) for kind in ("dense", "relu")] + ["logits"]
        reps = capture_representations(model.module, model.variables, images[index], layers)
        return {
            "representations": reps,
            "model": name,
            "inputs": f"{num_inputs} MNIST test images (seeded sample)",
            "labels": labels[index],
            "pooling": "none (2-D layers)",
        }
    if preset == "sentiment":
        from actspec_jax.commands._sentiment import sentiment_inputs, sentiment_model

        model = sentiment_model()
        tokens, token_mask, labels, _ = sentiment_inputs(model, num_inputs, seed=seed, split="test")
        layers = [
            "embed",
            *[f"block_{i}/{part}" for i in range(model.depth) for part in ("mlp/act", "resid")],
            "pooled",
            "classifier",
        ]
        reps = capture_representations(
            model.module,
            model.variables,
            tokens,
            layers,
            pooling=pooling,  # type: ignore[arg-type]
            token_mask=token_mask,
            apply_kwargs=model.apply_kwargs,
        )
        return {
            "representations": reps,
            "model": "sentiment transformer",
            "inputs": f"{num_inputs} held-out reviews (seeded sample)",
            "labels": labels,
            "pooling": f"{pooling} over real tokens",
        }
    raise ActSpecError(f"unknown preset {preset!r}; use one of {PRESETS}.")


def run_layers(args: argparse.Namespace) -> int:
    """Check and lock the report folder (before any work; a second run on it is refused), then run."""
    from actspec_jax.runs.safety import guarded_outputs

    out = Path(args.out or f"actspec_layers_{args.preset}")
    with guarded_outputs(out, None, False):
        return _run_layers(args, out)


def _run_layers(args: argparse.Namespace, out: Path) -> int:
    import numpy as np

    from actspec_jax.errors import ActSpecError
    from actspec_jax.layers import layer_similarity, plot_layer_matrix
    from actspec_jax.reports.report import Report

    started = time.perf_counter()
    num_inputs = args.inputs if args.inputs is not None else (24 if _tiny() else 200)
    if num_inputs < 4:
        raise ActSpecError(f"--inputs must be at least 4, got {num_inputs}.")
    captured = capture_preset(args.preset, num_inputs, pooling=args.pooling, seed=args.seed)
    reps = captured["representations"]
    print(
        f"actspec layers: {captured['model']}, {len(reps)} layers, {captured['inputs']}; GW with "
        f"ε={args.epsilon}, {args.metric} costs normalised by {args.normalize}"
    )
    result = layer_similarity(
        reps, metric=args.metric, normalize=args.normalize, epsilon=args.epsilon, num_groups=args.groups
    )
    labels = result.labels
    D = result.gw.distances
    widths = {name: int(np.shape(x)[1]) for name, x in reps.items()}

    report = Report(out, f"actspec layers — {captured['model']}")
    report.text(
        f"Representations of {captured['inputs']} at {len(labels)} layers "
        f"(token pooling: {captured['pooling']}). Each layer's {args.metric} cost matrix over the inputs "
        f"is normalised by its {args.normalize}; the Gromov–Wasserstein distance between two layers is "
        "the unregularised objective Σ_ijkl (C1_ik − C2_jl)² P_ij P_kl at the coupling P returned by "
        f"ott-jax's entropic GW solver (ε = {args.epsilon}, annealed from 10ε), rounded onto the exact "
        "uniform marginals — no factor ½, no square root, diagonal 0. Linear CKA is the classic "
        "baseline (1 = same representation up to rotation and scale)."
    )
    report.table(
        ["layer", "width", "cluster", "segment"],
        [[n, widths[n], int(c), int(s)] for n, c, s in zip(labels, result.clusters, result.segments.labels)],
        caption="Layers and their sub-network (hierarchical clustering / contiguous segmentation of GW)",
    )
    report.table(
        ["layer", *labels],
        [[a, *[float(v) for v in row]] for a, row in zip(labels, D)],
        caption="Gromov–Wasserstein distance (unregularised objective; symmetric; diagonal 0)",
    )
    report.table(
        ["layer", *labels],
        [[a, *[float(v) for v in row]] for a, row in zip(labels, result.cka)],
        caption="Linear CKA (biased)",
    )
    report.figure(
        plot_layer_matrix(
            D,
            labels,
            title=f"GW distance between layers — {captured['model']}",
            value_label="GW objective (no ½, no √)",
            groups=result.clusters,
            segments=result.segments.boundaries,
            cmap="magma_r",
        ),
        "gw_heatmap",
        "Gromov–Wasserstein distances; boxes = contiguous sub-networks, tick colours = clusters.",
    )
    report.figure(
        plot_layer_matrix(result.cka, labels, title="Linear CKA between layers", value_label="CKA"),
        "cka_heatmap",
        "Linear CKA between layers (1 on the diagonal).",
    )
    seg_costs = result.segments.cost_by_groups
    report.table(
        ["segments", "within-segment scatter"],
        [[g + 1, float(c)] for g, c in enumerate(seg_costs)],
        caption="Cost of the best contiguous segmentation by number of segments (choose g at the elbow)",
    )
    if not bool(result.gw.converged.all()):
        report.text("Note: the GW outer loop did not converge for some pairs within its iteration limit.")
    settings = {**result.settings, "preset": args.preset, "seed": args.seed, "widths": widths}
    report.save_json(
        "layers.json",
        {
            "labels": list(labels),
            "gw": D.tolist(),
            "gw_converged": result.gw.converged.tolist(),
            "cka_linear": result.cka.tolist(),
            "clusters": result.clusters.tolist(),
            "segments": list(result.segments.boundaries),
            "settings": settings,
        },
    )
    html = report.write()
    print("GW distances (rows/cols: " + ", ".join(labels) + ")")
    print(np.array2string(D, precision=4, suppress_small=True, max_line_width=160))
    print("clusters:", dict(zip(labels, result.clusters.tolist())))
    print("segments start at:", [labels[b] for b in result.segments.boundaries])
    print(f"Done in {time.perf_counter() - started:.1f} s. Report written to {html}")
    print(json.dumps({"gw_seconds": round(result.settings["gw_seconds"], 2)}))
    return 0
