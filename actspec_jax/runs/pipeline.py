"""One analysis run of a shipped model, end to end: the engine behind ``actspec run``.

:func:`run` takes a :class:`~actspec_jax.runs.config.RunConfig`, loads the model and its inputs
and builds the problem (:mod:`actspec_jax.runs.inputs`), solves it, measures the faithfulness
R², optionally the ablation (faithfulness) curve and, for text models, where the top subsets
fire, and writes a report folder (:mod:`actspec_jax.runs.report_writer`):

``spectrum.json`` (the :class:`~actspec_jax.Spectrum`), ``run.json`` (configuration, inputs,
truncation counts, accuracies, timings, metrics), ``summary.md``, ``report.html`` (self-contained)
and PNG figures (energy by degree, top coefficients, participation heatmap, subset sizes,
faithfulness curve).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.runs.config import SOLVERS, RunConfig
from actspec_jax.runs.inputs import Inputs, _build, build_problem, load_inputs
from actspec_jax.runs.report_writer import _write_report
from actspec_jax.runs.safety import guarded_outputs, rescued_write, resumable

#: The compressive solver's budget when ``max_evaluations`` is not given.
DEFAULT_EVALUATIONS = 20_000

__all__ = ["RunResult", "deletion_curve", "exact_top_r2", "paper_data_r2", "run"]


# ---------------------------------------------------------------------------- solving
def _solve(problem: Any, cfg: RunConfig, progress: bool) -> Any:
    from actspec_jax.solvers import ExactSolver, GoldreichLevin

    if cfg.solver not in SOLVERS:
        raise ActSpecError(f"solver must be one of {SOLVERS}, got {cfg.solver!r}.")
    bar = None
    if cfg.solver == "compressive":
        from actspec_jax.runs.progress import StageBars
        from actspec_jax.solvers import CompressiveSolver

        solver = CompressiveSolver(
            max_degree=4 if cfg.max_degree is None else cfg.max_degree,
            max_evaluations=DEFAULT_EVALUATIONS if cfg.max_evaluations is None else cfg.max_evaluations,
            checkpoint_every_s=cfg.checkpoint_every_s,
        )
        solver.plan(problem.n)  # validate before any work
        bars = StageBars(enabled=progress, label="compressive")
        try:
            with resumable(cfg.checkpoint):
                return solver(
                    problem, key=jax.random.key(cfg.seed), progress=bars, checkpoint_path=cfg.checkpoint
                )
        finally:
            bars.close()
    if cfg.solver == "exact":
        if cfg.max_evaluations is not None:
            raise ActSpecError(
                "max_evaluations does not apply to the exact solver, which evaluates all 2^n masks; "
                "use --solver compressive or gl for a budget."
            )
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=1 << min(problem.n, 62), unit="mask", unit_scale=True, leave=False)

        def tick(done: int, total: int) -> None:
            if bar is not None:
                bar.update(done - bar.n)

        solver = ExactSolver(checkpoint_every_s=cfg.checkpoint_every_s, keep_checkpoint=True)
        try:
            with resumable(cfg.checkpoint):
                return solver(problem, progress=tick, checkpoint_path=cfg.checkpoint)
        finally:
            if bar is not None:
                bar.close()
    settings = cfg.gl_settings()
    solver = GoldreichLevin.paper(**settings) if cfg.solver == "paper" else GoldreichLevin(**settings)
    solver.settings()  # validate before any work
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="level", leave=False, desc="GL levels")

    def level(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        with resumable(cfg.checkpoint):
            return solver(
                problem, key=jax.random.key(cfg.seed), progress=level, checkpoint_path=cfg.checkpoint
            )
    finally:
        if bar is not None:
            bar.close()


def _accuracy(model: Any, inputs: Inputs) -> float:
    """Top-1 accuracy on the inputs (a language model: of the next token at the last position)."""
    logits = jax.jit(model.module.apply)(model.variables, inputs.data)
    if logits.ndim == 3:
        logits = logits[:, -1]
    return float(np.mean(np.asarray(jnp.argmax(logits, axis=-1)) == inputs.labels))


def _characters(patterns: np.ndarray, subsets: list[tuple[int, ...]]) -> np.ndarray:
    out = np.ones((patterns.shape[0], len(subsets)))
    for j, s in enumerate(subsets):
        if s:
            out[:, j] = np.prod(patterns[:, list(s)], axis=1)
    return out


def paper_data_r2(spectrum: Any, fit_problem: Any, heldout_problem: Any) -> dict[str, float]:
    """R² of a paper-mode spectrum on held-out data rows (its own domain: binarised activations).

    ``listed``: ``Σ_S f̂(S) χ_S(x(a))`` with the coefficients as reported; ``refit``: least
    squares on the same characters fitted on ``fit_problem``'s rows. Both against the row
    outputs ``f(a)`` of ``heldout_problem``.
    """
    from actspec_jax.analysis.metrics import r2_score
    from actspec_jax.solvers.gl.paper import paper_rows
    from actspec_jax.solvers.gl.redundancy import patterns_from_problem

    threshold = float(spectrum.solver.get("binarize_threshold", 0.0))
    subsets = spectrum.subset_tuples()

    def rows(problem: Any) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(
            jax.jit(paper_rows)(problem, jnp.arange(problem.activations.shape[0])), np.float64
        )
        return _characters(patterns_from_problem(problem, threshold).astype(np.float64), subsets), values

    x_fit, y_fit = rows(fit_problem)
    x_out, y_out = rows(heldout_problem)
    listed = r2_score(y_out, x_out @ np.asarray(spectrum.coefficients, np.float64))
    beta, *_ = np.linalg.lstsq(x_fit, y_fit, rcond=None)
    return {"listed": float(listed), "refit": float(r2_score(y_out, x_out @ beta))}


def exact_top_r2(spectrum: Any, k: int) -> float:
    """R² over *all* uniform masks of the constant plus the ``k`` largest non-constant terms of
    an exact spectrum, by Parseval: ``1 − Σ_{S∉top, S≠∅} f̂(S)² / Σ_{S≠∅} f̂(S)²`` (no evaluations).
    """
    if spectrum.dense is None:
        raise ActSpecError("exact_top_r2 needs the dense spectrum of the exact solver.")
    dense = np.asarray(spectrum.dense, np.float64)
    variance = float((dense[1:] ** 2).sum())
    if variance == 0.0:
        return 1.0
    top = np.argsort(-np.abs(dense[1:]), kind="stable")[:k] + 1
    return float((dense[top] ** 2).sum() / variance)


# ---------------------------------------------------------------------------- the run
class RunResult(NamedTuple):
    """What :func:`run` produced: the spectrum, the problem, the run record and the report path."""

    spectrum: Any
    problem: Any
    record: dict[str, Any]
    report: Path
    curve: Any = None
    firing: list[dict[str, Any]] | None = None


def run(cfg: RunConfig, *, progress: bool = True, echo: Callable[[str], None] | None = print) -> RunResult:
    """Run one analysis and write its report folder (see the module docstring).

    Before any work the report folder and the checkpoint's folder are checked writable and
    locked against a second run (:mod:`actspec_jax.runs.safety`); if the report cannot be
    written, the spectrum is saved elsewhere and the error says where.
    """
    with guarded_outputs(cfg.out, cfg.checkpoint, cfg.restart):
        return _run(cfg, progress=progress, echo=echo)


def _run(cfg: RunConfig, *, progress: bool, echo: Callable[[str], None] | None) -> RunResult:
    from actspec_jax.models import load_pretrained

    say = echo or (lambda _: None)
    started = time.perf_counter()
    model = load_pretrained(cfg.model)
    if model.tokenizer is None and cfg.max_review_tokens is not None:
        raise ActSpecError("max_review_tokens applies to text models only.")
    inputs = load_inputs(model, cfg)
    if inputs.texts is not None:
        info = inputs.info
        say(
            f"inputs: {info['count']} {cfg.source} {info['split']} reviews, encoded to "
            f"{info['encoded_length']} tokens (model context {info['model_context']}); truncated "
            f"{info['truncated']} review(s), {info['tokens_dropped']} token(s) dropped"
        )
    elif "next_token" in inputs.info:
        info = inputs.info
        say(
            f"inputs: {info['count']} {cfg.source} {info['split']} windows of {info['window_tokens']} tokens "
            f"followed by {info['next_token']!r}"
        )
    else:
        say(f"inputs: {inputs.info['count']} MNIST {inputs.info['split']} images")
    problem, built, full = _build(model, inputs, cfg)
    what = "SAE latents" if cfg.sae else "neurons"
    say(
        f"problem: n = {problem.n} {what} of {' + '.join(cfg.layers)}, output {built['output']}, "
        f"fill {cfg.fill}, solver {cfg.solver}"
    )
    spectrum = _solve(problem, cfg, progress)
    key = jax.random.key(cfg.seed)
    metrics: dict[str, Any] = {}
    if cfg.solver == "paper":
        other = "train" if cfg.split != "train" else "test"
        held = load_inputs(model, dataclasses.replace(cfg, count=int(inputs.labels.shape[0])), split=other)
        held_problem, _ = build_problem(model, held, cfg, units=built.get("units"))
        metrics["data_r2_heldout"] = paper_data_r2(spectrum, problem, held_problem)
        metrics["heldout_split"] = other
    elif cfg.solver == "exact":
        metrics["r2_top64_exact"] = exact_top_r2(spectrum, 64)
        metrics["r2_terms"] = min(64, int(spectrum.num_terms))
    else:
        metrics["r2_heldout_masks"] = float(
            spectrum.r2(problem, key=jax.random.fold_in(key, 1), num_masks=cfg.r2_masks)
        )
        metrics["r2_terms"] = int(spectrum.num_terms)
    metrics.update(spectrum.distributedness())
    record: dict[str, Any] = {
        "config": cfg.to_dict(),
        "model": {
            "name": cfg.model,
            "test_accuracy": model.info.get("test_accuracy"),
            "accuracy_on_these_inputs": _accuracy(model, inputs),
        },
        "inputs": inputs.info,
        "problem": {**built, **problem.describe()},
        "metrics": metrics,
    }
    curve = None
    if cfg.faithfulness:
        curve = deletion_curve(model, inputs, cfg, problem, spectrum, built, full)
        record["faithfulness"] = curve.to_dict()
    firing = None
    if cfg.firing and inputs.texts is not None:
        firing = _firing(model, inputs, cfg, problem, spectrum, built)
        record["firing"] = firing
    record["wall_time_s"] = time.perf_counter() - started
    report = rescued_write(
        lambda: _write_report(cfg, model, inputs, problem, spectrum, record, curve, firing),
        spectrum,
        cfg.out,
        cfg.checkpoint,
        say,
    )
    if cfg.solver == "exact" and cfg.checkpoint is not None and os.path.exists(cfg.checkpoint):
        os.unlink(cfg.checkpoint)  # the report, spectrum included, is safely on disk
    say(spectrum.summary(min(cfg.top, 12)))
    if "r2_top64_exact" in metrics:
        say(
            f"R² of the constant + top {metrics['r2_terms']} terms over all masks (exact): "
            f"{metrics['r2_top64_exact']:.4f}"
        )
    elif "r2_heldout_masks" in metrics:
        say(
            f"R² of the {metrics['r2_terms']} listed terms on {cfg.r2_masks} held-out random masks: "
            f"{metrics['r2_heldout_masks']:.4f}"
        )
    else:
        r2 = metrics["data_r2_heldout"]
        say(
            f"R² on held-out {metrics['heldout_split']} rows: listed {r2['listed']:.4f}, "
            f"refit {r2['refit']:.4f}"
        )
    if inputs.texts is not None and inputs.info["truncated"]:
        say(
            f"note: {inputs.info['truncated']} of {inputs.info['count']} reviews were longer than the "
            f"context of {inputs.info['context']} tokens and were truncated "
            f"({inputs.info['tokens_dropped']} tokens dropped)."
        )
    say(f"Report written to {report} ({time.perf_counter() - started:.1f} s)")
    return RunResult(spectrum, problem, record, report, curve, firing)


def deletion_curve(
    model: Any,
    inputs: Inputs,
    cfg: RunConfig,
    problem: Any,
    spectrum: Any,
    built: Mapping[str, Any],
    full: Any = None,
) -> Any:
    """The deletion curve of a run on the whole layer(s) (:mod:`actspec_jax.analysis.ablation`).

    Orderings: the spectrum's top subsets and its greedy predicted-drop order, gradient ×
    activation attribution (single layers, differentiable outputs), measured leave-one-out
    drops, and ``cfg.random_orderings`` random orderings; ``k = 0 … cfg.faithfulness_k``.
    ``full`` is the whole-layer problem if already built.
    """
    from actspec_jax.analysis.ablation import (
        attribution_scores,
        faithfulness_curve,
        greedy_spectral_order,
        ranking_order,
        single_ablation_drops,
        spectral_order,
    )

    if full is None:
        full = problem if built.get("units") is None else build_problem(model, inputs, cfg, units=None)[0]
    if full.output_shape != ():
        raise ActSpecError("the faithfulness curve needs a single output; choose one with --output.")
    k_max = min(cfg.faithfulness_k, full.n)
    units = built.get("units")
    order, bounds = spectral_order(spectrum, units=units)
    orders: dict[str, list[int]] = {
        "spectral: top subsets": order,
        "spectral: greedy": greedy_spectral_order(spectrum, k_max, units=units),
    }
    if hasattr(full, "activations") and not str(built["output"]).startswith("indicator"):
        orders["attribution (grad×act)"] = ranking_order(attribution_scores(full))
    orders["leave-one-out"] = ranking_order(single_ablation_drops(full))
    return faithfulness_curve(
        full,
        orders,
        ks=range(0, k_max + 1),
        key=jax.random.fold_in(jax.random.key(cfg.seed), 2),
        num_random=cfg.random_orderings,
        boundaries={"spectral: top subsets": bounds},
    )


def _firing(
    model: Any, inputs: Inputs, cfg: RunConfig, problem: Any, spectrum: Any, built: dict
) -> list[dict[str, Any]]:
    """For the top subsets: the reviews that carry them and the tokens where they fire."""
    from actspec_jax.analysis.firing import coactivation, per_input_coefficients, snippet

    terms = [(s, float(c)) for s, c in zip(spectrum.subset_tuples(), spectrum.coefficients) if s]
    chosen = terms[:3]
    joint = next(((s, c) for s, c in terms if len(s) >= 2), None)
    if joint is not None and joint not in chosen:
        chosen.append(joint)
    if not chosen:
        return []
    per_input, _ = build_problem(model, inputs, cfg, aggregate="none", units=built.get("units"))
    coef, err = per_input_coefficients(
        per_input, [s for s, _ in chosen], key=jax.random.fold_in(jax.random.key(cfg.seed), 3)
    )
    layer_acts = None
    if len(cfg.layers) == 1:
        layer_acts = np.asarray(problem.activations)
    units = built.get("units")
    labels = spectrum.neuron_labels
    out = []
    for column, (subset, value) in enumerate(chosen):
        sign = 1.0 if value >= 0 else -1.0
        ranked = np.argsort(-sign * coef[:, column], kind="stable")[:3]
        examples = []
        for j in ranked:
            tokens = model.tokenizer.decode(np.asarray(inputs.data[j]))
            marked: list[int] = []
            scores: list[float] = []
            if layer_acts is not None:
                neurons = [units[i] for i in subset] if units is not None else list(subset)
                fire = coactivation(layer_acts, inputs.lengths, neurons, inputs=[int(j)])
                top = [(int(p), float(s)) for p, s in zip(fire.position[:5], fire.score[:5])]
                marked = [p for p, s in top if s >= 1.0] or [p for p, _ in top[:1]]
                scores = [s for _, s in top]
            md, page = snippet(tokens, marked)
            examples.append(
                {
                    "input": int(j),
                    "dataset_index": int(inputs.info["indices"][j]),
                    "label": int(inputs.labels[j]),
                    "per_input_coefficient": float(coef[j, column]),
                    "stderr": float(err[j, column]),
                    "marked_positions": marked,
                    "coactivation_scores": scores,
                    "markdown": md,
                    "html": page,
                }
            )
        out.append(
            {
                "subset": list(subset),
                "neurons": [labels[i] for i in subset],
                "coefficient": value,
                "inputs_with_same_sign": int((sign * coef[:, column] > 0).sum()),
                "examples": examples,
            }
        )
    return out
