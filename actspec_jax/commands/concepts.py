"""``actspec concepts``: concept bases (CRAFT-style NMF) of the shipped models.

Presets:

* ``contribution`` — the decision-contribution test of Colin et al. (2024) on every
  hidden layer of the deep MNIST MLP (196→256→256→256→10) and every MLP layer of the
  sentiment transformer: fit ``k`` concepts per layer on training inputs, then on held-out
  inputs null the most active unit vs the most active concept (and, as a control, the top
  units with the same removed norm) and report the mean drop of the predicted class's
  logit, the probability drop and the decision flip rate per layer; plus exemplars (most
  and least activating inputs) of the top units and concepts.
* ``mnist`` — ActSpec over concepts: the exact Fourier spectrum of class ``--target``'s
  log-probability as a function of a mask over the ``k`` concepts of the paper MLP's hidden
  layer (the residual is always kept), with image exemplars of each concept.
* ``sentiment`` — the same for the sentiment transformer's last MLP layer and the
  positive − negative logit difference on one-sentence Rotten Tomatoes reviews (short
  inputs keep the ``2^k`` evaluations cheap on a CPU), with text exemplars.

Sizes shrink with ``ACTSPEC_TINY=1`` (for tests and CI).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from actspec_jax.commands import plain_help

__all__ = ["PRESETS", "contribution_experiment", "register", "run_concepts"]

PRESETS = ("contribution", "mnist", "sentiment")


def _tiny() -> bool:
    return os.environ.get("ACTSPEC_TINY", "") not in ("", "0")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "concepts",
        help="concept bases: decision-contribution test and ActSpec over concepts",
        description=plain_help(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=PRESETS, default="contribution", help="(default: %(default)s)")
    parser.add_argument("--out", default=None, help="report folder (default: actspec_concepts_<preset>)")
    parser.add_argument("--concepts", type=int, default=None, help="concepts per layer (default 10; tiny 4)")
    parser.add_argument("--fit-inputs", type=int, default=None, help="training inputs the NMF is fitted on")
    parser.add_argument("--inputs", type=int, default=None, help="held-out inputs analysed")
    parser.add_argument(
        "--models",
        default="mnist,sentiment",
        help="contribution preset: comma-separated models (mnist, sentiment; default both)",
    )
    parser.add_argument("--target", type=int, default=7, help="mnist preset: digit class (default 7)")
    parser.add_argument("--alpha", type=float, default=1e-2, help="NMF regularisation (CRAFT: 1e-2)")
    parser.add_argument("--l1-ratio", type=float, default=0.0, help="NMF share of L1 (sparsity) penalty")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (NMF init, input samples)")
    parser.set_defaults(func=run_concepts)


# --------------------------------------------------------------------------- shared setups


def _mnist_layers(name: str) -> tuple[Any, list[str]]:
    from actspec_jax.models import load_pretrained

    model = load_pretrained(name)
    return model, [f"relu_{i}" for i in range(len(model.module.hidden))]


def _fmt_table(summaries: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "layer",
        "units",
        "k",
        "rel. error",
        "Δlogit unit",
        "Δlogit concept",
        "Δlogit matched",
        "units matched",
        "Δp unit",
        "Δp concept",
        "flip unit",
        "flip concept",
        "flip matched",
        "concept > unit",
        "concept > matched",
        "|removed| unit",
        "|removed| concept",
    ]
    rows = [
        [
            s["layer"],
            s["neurons"],
            s["concepts"],
            s["relative_error"],
            s["drop_logit_unit"],
            s["drop_logit_concept"],
            s["drop_logit_matched"],
            s["units_matched"],
            s["drop_prob_unit"],
            s["drop_prob_concept"],
            s["flip_unit"],
            s["flip_concept"],
            s["flip_matched"],
            s["concept_wins"],
            s["concept_wins_matched"],
            s["removed_norm_unit"],
            s["removed_norm_concept"],
        ]
        for s in summaries
    ]
    return headers, rows


def contribution_experiment(
    model: str, *, num_concepts: int, fit_inputs: int, inputs: int, seed: int, **nmf: Any
) -> dict[str, Any]:
    """Run the decision-contribution test on every layer of one shipped model.

    Returns ``{'model', 'summaries': [per layer], 'per_input': {layer: arrays},
    'exemplar_data': …}`` (the last for the exemplar figures of the deepest layer).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    import actspec_jax as asj
    from actspec_jax.concepts import decision_contribution, fit_basis, pooled_scores

    key = jax.random.key(seed)
    if model == "mnist":
        from actspec_jax.data import load_mnist

        pretrained, layers = _mnist_layers("mnist_mlp_deep")
        train_x, _ = load_mnist("train")
        test_x, test_y = load_mnist("test")
        rng = np.random.default_rng(seed)
        fit_x = jnp.asarray(train_x[np.sort(rng.choice(len(train_x), fit_inputs, replace=False))])
        index = np.sort(rng.choice(len(test_x), inputs, replace=False))
        eval_x = jnp.asarray(test_x[index])
        module, variables, token_mask, fit_mask = pretrained.module, pretrained.variables, None, None
        display: dict[str, Any] = {"images": np.asarray(test_x[index]), "labels": test_y[index]}
        name = "MNIST MLP 196→256→256→256→10 (mnist_mlp_deep)"
    elif model == "sentiment":
        from actspec_jax.commands._sentiment import sentiment_inputs, sentiment_model

        sm = sentiment_model()
        module, variables = sm.module, sm.variables
        layers = [f"block_{i}/mlp/act" for i in range(sm.depth)]
        fit_tokens, fit_mask, _, _ = sentiment_inputs(sm, fit_inputs, seed=seed, split="train")
        eval_tokens, token_mask, labels, texts = sentiment_inputs(sm, inputs, seed=seed + 1, split="test")
        fit_x, eval_x = jnp.asarray(fit_tokens), jnp.asarray(eval_tokens)
        display = {"tokens": eval_tokens, "texts": texts, "labels": labels, "tokenizer": sm.tokenizer}
        name = f"sentiment transformer ({sm.depth} blocks, MLP width {4 * sm.module.width})"
    else:
        raise asj.ActSpecError(f"unknown model {model!r}; use mnist or sentiment.")

    summaries, per_input, bases = [], {}, {}
    for i, layer in enumerate(layers):
        cut = asj.cut_linen(module, variables, layer)
        acts = cut.activations(fit_x)
        basis = fit_basis(acts, num_concepts, key=jax.random.fold_in(key, i), token_mask=fit_mask, **nmf)
        result = decision_contribution(cut, eval_x, basis, token_mask=token_mask, batch_size=128)
        result["summary"]["fit_relative_error"] = float(basis.relative_error)
        summaries.append(result["summary"])
        per_input[layer] = result["per_input"]
        bases[layer] = basis
    last = layers[-1]
    cut = asj.cut_linen(module, variables, last)
    acts = cut.activations(eval_x)
    display["unit_scores"] = np.asarray(pooled_scores(acts, token_mask))
    display["concept_codes"] = np.asarray(bases[last].codes(acts))
    display["concept_scores"] = np.asarray(pooled_scores(display["concept_codes"], token_mask))
    if model == "sentiment":
        display["unit_acts"] = np.asarray(acts)
    return {
        "model": name,
        "key": model,
        "layers": layers,
        "summaries": summaries,
        "per_input": per_input,
        "display": display,
    }


def _exemplar_sections(report: Any, experiment: dict[str, Any], per_side: int, count: int) -> None:
    import numpy as np

    from actspec_jax.commands._sentiment import token_snippet
    from actspec_jax.concepts import plot_image_exemplars, text_exemplars, top_exemplars

    d = experiment["display"]
    layer = experiment["layers"][-1]
    for kind, scores in (("unit", d["unit_scores"]), ("concept", d["concept_scores"])):
        chosen = np.argsort(-scores.mean(axis=0))[:count]
        most, least = top_exemplars(scores[:, chosen], per_side)
        names = [f"{kind} {j}" for j in chosen]
        if "images" in d:
            fig = plot_image_exemplars(
                d["images"], most, least, names, title=f"{layer}: top {kind}s", scores=scores[:, chosen]
            )
            report.figure(
                fig,
                f"exemplars_{experiment['key']}_{kind}s",
                f"{layer}: the {count} {kind}s with the largest mean activation; left, their {per_side} most "
                f"activating test images; right, their {per_side} least activating.",
            )
        else:
            values = d["unit_acts"] if kind == "unit" else d["concept_codes"]

            def snippet(r: int, i: int, values=values, chosen=chosen) -> str:
                position = int(np.argmax(values[i, :, chosen[r]] * (d["tokens"][i] != 0)))
                return token_snippet(d["tokenizer"], d["tokens"][i], position)

            rows = text_exemplars(snippet, most, least, names, width=120)
            report.table(
                [kind, "most activating reviews (snippet around the peak token)", "least activating reviews"],
                rows,
                caption=f"{layer}: exemplars of the {count} {kind}s with the largest mean activation",
            )


def _run_contribution(args: argparse.Namespace, report: Any) -> None:
    from actspec_jax.concepts import plot_contribution

    tiny = _tiny()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    k = args.concepts or (4 if tiny else 10)
    report.text(
        "Decision-contribution test (Colin et al. 2024, 'Local vs distributed representations'). For "
        f"each layer we fit {k} non-negative concepts (NMF, Frobenius loss, α = {args.alpha}, "
        f"l1_ratio = {args.l1_ratio}; CRAFT's defaults) on training inputs (token rows for the "
        "transformer), then on held-out inputs null, per input, the most active unit (set to 0 at every "
        "position) or the most active concept (subtract u·W; concept directions have unit norm, so u is "
        "comparable with a unit's activation; the residual is kept). Δlogit = drop of the logit of the "
        "model's predicted class; Δp = drop of its probability; flip = share of inputs whose decision "
        "changes. 'matched' nulls the most active units until the removed L2 norm reaches the "
        "concept's — a control for the larger size of a concept. Token layers are scored by the mean "
        "over real tokens."
    )
    results = {}
    for model in models:
        if model == "mnist":
            fit_n, n = (args.fit_inputs or (300 if tiny else 5000)), (args.inputs or (64 if tiny else 2000))
        else:
            fit_n, n = (args.fit_inputs or (16 if tiny else 300)), (args.inputs or (16 if tiny else 500))
        started = time.perf_counter()
        experiment = contribution_experiment(
            model,
            num_concepts=k,
            fit_inputs=fit_n,
            inputs=n,
            seed=args.seed,
            alpha=args.alpha,
            l1_ratio=args.l1_ratio,
        )
        seconds = time.perf_counter() - started
        report.heading(experiment["model"])
        headers, rows = _fmt_table(experiment["summaries"])
        report.table(
            headers, rows, caption=f"Fitted on {fit_n} training inputs, tested on {n} held-out inputs."
        )
        report.figure(
            plot_contribution(experiment["summaries"], title=experiment["model"]),
            f"contribution_{model}",
            "Mean drop of the predicted class's logit when the top unit vs the top concept is nulled.",
        )
        _exemplar_sections(report, experiment, per_side=2 if tiny else 6, count=2 if tiny else 4)
        print(f"\n{experiment['model']}  ({seconds:.1f} s)")
        print(" | ".join(headers[:8] + headers[10:14]))
        for row in rows:
            cells = row[:8] + row[10:14]
            print(" | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in cells))
        results[model] = {
            "summaries": experiment["summaries"],
            "fit_inputs": fit_n,
            "inputs": n,
            "seconds": seconds,
        }
    report.save_json(
        "contribution.json",
        {
            "concepts": k,
            "alpha": args.alpha,
            "l1_ratio": args.l1_ratio,
            "seed": args.seed,
            "results": results,
        },
    )


def _run_spectrum(args: argparse.Namespace, report: Any) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import actspec_jax as asj
    from actspec_jax.concepts import (
        ConceptProblem,
        concept_spectrum,
        fit_basis,
        plot_image_exemplars,
        pooled_scores,
        text_exemplars,
        top_exemplars,
    )
    from actspec_jax.reports.report import add_spectrum_sections

    tiny = _tiny()
    k = args.concepts or (5 if tiny else (12 if args.preset == "mnist" else 10))
    key = jax.random.key(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.preset == "mnist":
        from actspec_jax.data import load_mnist
        from actspec_jax.models import load_pretrained

        model = load_pretrained("mnist_mlp")
        layer, output = "relu_0", f"log_prob:{args.target}"
        train_x, _ = load_mnist("train")
        test_x, test_y = load_mnist("test")
        fit_n, n = args.fit_inputs or (300 if tiny else 5000), args.inputs or (16 if tiny else 64)
        fit_x = jnp.asarray(train_x[np.sort(rng.choice(len(train_x), fit_n, replace=False))])
        inputs = jnp.asarray(test_x[test_y == args.target][:n])
        module, variables, fit_mask, token_mask = model.module, model.variables, None, None
        described = f"class {args.target}'s log-probability on {inputs.shape[0]} test images of that class"
    else:
        from actspec_jax.commands._sentiment import sentiment_inputs, sentiment_model

        sm = sentiment_model()
        module, variables = sm.module, sm.variables
        layer, output = f"block_{sm.depth - 1}/mlp/act", "logit_diff:1-0"
        fit_n, n = args.fit_inputs or (16 if tiny else 300), args.inputs or (8 if tiny else 32)
        # one-sentence Rotten Tomatoes reviews keep the 2^k evaluations of the exact spectrum cheap
        source = "rotten_tomatoes"
        fit_tokens, fit_mask, _, _ = sentiment_inputs(sm, fit_n, seed=args.seed, split="train", source=source)
        tokens, token_mask, labels, _ = sentiment_inputs(
            sm, 4 * n, seed=args.seed + 1, split="test", source=source
        )
        positive = np.flatnonzero(labels == 1)[:n]  # like MNIST: inputs of the explained class
        tokens, token_mask = tokens[positive], token_mask[positive]
        tokens, token_mask = (
            tokens[:, : int(token_mask.sum(1).max())],
            token_mask[:, : int(token_mask.sum(1).max())],
        )
        fit_x, inputs = jnp.asarray(fit_tokens), jnp.asarray(tokens)
        described = (
            f"the positive − negative logit difference averaged over {len(positive)} held-out positive "
            "Rotten Tomatoes reviews"
        )
    cut = asj.cut_linen(module, variables, layer)
    basis = fit_basis(
        cut.activations(fit_x),
        k,
        key=key,
        token_mask=fit_mask,
        alpha=args.alpha,
        l1_ratio=args.l1_ratio,
    )
    problem = ConceptProblem.from_cut(cut, inputs, output=output, basis=basis)
    spectrum = concept_spectrum(problem, key=jax.random.fold_in(key, 1))
    info = problem.describe()
    report.text(
        f"ActSpec over concepts: the Fourier spectrum of {described}, as a function of a ±1 mask over the "
        f"{k} NMF concepts of layer {layer} (+1 = concept kept, −1 = its contribution u·W removed; the "
        f"reconstruction residual is always kept, so the all-kept mask is the real model). Concepts were "
        f"fitted on {fit_n} training inputs; relative reconstruction error on the analysed inputs "
        f"{info['relative_error']:.3f}."
    )
    add_spectrum_sections(report, spectrum)
    report.save_spectrum(spectrum)
    codes = np.asarray(problem.codes)
    scores = np.asarray(pooled_scores(codes, token_mask))
    first = spectrum.to_dict()
    report.table(
        ["concept", "mean code on the analysed inputs", "first-order coefficient f̂({j})"],
        [[f"concept {j}", float(scores[:, j].mean()), float(first.get((j,), 0.0))] for j in range(k)],
        caption="Concepts: mean activation and first-order Fourier coefficient",
    )
    # exemplars over a broader held-out sample
    if args.preset == "mnist":
        pool = jnp.asarray(test_x[np.sort(rng.choice(len(test_x), 64 if tiny else 2000, replace=False))])
        pool_scores = np.asarray(basis.codes(cut.activations(pool)))
        most, least = top_exemplars(pool_scores, 2 if tiny else 6)
        report.figure(
            plot_image_exemplars(
                np.asarray(pool), most, least, [f"concept {j}" for j in range(k)], title=f"{layer} concepts"
            ),
            "concept_exemplars",
            "Each concept's most (left) and least (right) activating test images.",
        )
    else:
        from actspec_jax.commands._sentiment import token_snippet

        pool_tokens, pool_mask, _, _ = sentiment_inputs(
            sm, 16 if tiny else 500, seed=args.seed + 2, source=source
        )
        pool_codes = np.asarray(basis.codes(cut.activations(jnp.asarray(pool_tokens))))
        most, least = top_exemplars(np.asarray(pooled_scores(pool_codes, pool_mask)), 2 if tiny else 3)

        def snippet(r: int, i: int) -> str:
            return token_snippet(
                sm.tokenizer, pool_tokens[i], int(np.argmax(pool_codes[i, :, r] * pool_mask[i]))
            )

        report.table(
            ["concept", "most activating reviews (snippet around the peak token)", "least activating"],
            text_exemplars(snippet, most, least, [f"concept {j}" for j in range(k)], width=120),
            caption="Concept exemplars on held-out reviews",
        )
    print(spectrum.summary(12))


def run_concepts(args: argparse.Namespace) -> int:
    """Check the settings, check and lock the report folder (before any work), then run."""
    from actspec_jax.errors import ActSpecError
    from actspec_jax.runs.safety import guarded_outputs

    started = time.perf_counter()
    if args.concepts is not None and args.concepts < 1:
        raise ActSpecError(f"--concepts must be at least 1, got {args.concepts}.")
    if args.preset == "mnist" and not 0 <= args.target <= 9:
        raise ActSpecError(f"--target must be a digit class 0..9, got {args.target}.")
    for flag, value in (("--fit-inputs", args.fit_inputs), ("--inputs", args.inputs)):
        if value is not None and value < 1:
            raise ActSpecError(f"{flag} must be at least 1, got {value}.")
    unknown = {m.strip() for m in args.models.split(",") if m.strip()} - {"mnist", "sentiment"}
    if unknown:
        raise ActSpecError(f"--models takes mnist and/or sentiment, got {sorted(unknown)}.")
    out = Path(args.out or f"actspec_concepts_{args.preset}")
    with guarded_outputs(out, None, False):
        return _run_concepts(args, out, started)


def _run_concepts(args: argparse.Namespace, out: Path, started: float) -> int:
    from actspec_jax.reports.report import Report

    titles = {
        "contribution": "actspec concepts — decision-contribution test (units vs concepts)",
        "mnist": f"actspec concepts — ActSpec over concepts, MNIST MLP class {args.target}",
        "sentiment": "actspec concepts — ActSpec over concepts, sentiment transformer",
    }
    report = Report(out, titles[args.preset])
    if args.preset == "contribution":
        _run_contribution(args, report)
    else:
        _run_spectrum(args, report)
    html = report.write()
    print(f"Done in {time.perf_counter() - started:.1f} s. Report written to {html}")
    return 0
