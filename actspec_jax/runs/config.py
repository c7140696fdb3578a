"""The configuration of one ``actspec run``: :class:`RunConfig`, the solvers and the presets.

:data:`PRESETS` hold the experiments of ``benchmarks/experiments/`` (``{target}`` in a preset
is replaced by the run's target class); :func:`config_from_preset` builds a :class:`RunConfig`
from one, with overrides.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from actspec_jax.errors import ActSpecError

__all__ = ["GL_FIELDS", "PRESETS", "SOLVERS", "RunConfig", "config_from_preset"]

#: The solvers ``actspec run --solver`` accepts.
SOLVERS = ("exact", "gl", "paper", "compressive")
#: The :class:`RunConfig` fields that are Goldreich–Levin settings.
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
    "max_evaluations",
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

_LM = {
    "model": "movie_lm",
    "source": "imdb",
    "split": "test",
    "next_token": "movie",
    "count": 8,
    "fill": "zero",
    "solver": "compressive",
    "max_evaluations": 20_000,
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
    "lm-heads": (
        "Language model (movie_lm), the 4 + 4 heads of both blocks in one mask, log-prob of the next "
        "token 'movie' at the last position of 8 IMDB test windows followed by it, compressive solver "
        "under 20,000 evaluations",
        {**_LM, "layers": ("block_0/attn/heads", "block_1/attn/heads")},
    ),
    "lm-sae": (
        "Language model (movie_lm), all 1,024 latents of its sparse autoencoder on block_0/resid (the "
        "SAE's error kept), log-prob of 'movie' at the last position of 8 IMDB test windows, compressive "
        "solver under 20,000 evaluations",
        {**_LM, "layers": ("block_0/resid",), "sae": True},
    ),
    "lm-mlp": (
        "Language model (movie_lm), the 512 MLP units of block 1, log-prob of 'movie' at the last "
        "position of 8 IMDB test windows, compressive solver under 20,000 evaluations",
        {**_LM, "layers": ("block_1/mlp/act",)},
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
      next_token: language model: the inputs are windows of reviews (the model's training recipe)
        followed by this token, and the default output is its log-probability at the last position.
      sae: language model: mask the latents of its sparse autoencoder on the layer (the SAE's
        error kept) instead of the layer's units.
      output: what to explain, e.g. ``'log_prob:7'``, ``'logit_diff:1-0'``, ``'indicator:7'``
        (default: ``log_prob:7`` for MNIST, ``logit_diff:1-0`` for sentiment).
      fill: value of ablated neurons: ``'zero'``, ``'mean'`` or ``'resample'``.
      units: mask only these neuron indices, or ``'top:K'`` = the ``K`` with the largest
        gradient × activation attribution (single layer only).
      solver: ``'exact'`` (all ``2^n`` masks), ``'gl'`` (Goldreich–Levin, mask mode),
        ``'paper'`` (GL with the paper's data-hybrid estimator) or ``'compressive'``
        (:class:`~actspec_jax.solvers.CompressiveSolver` under ``max_evaluations``).
      tau … max_degree: GL settings (``None``: the estimator's default); ``max_degree`` is also the
        compressive solver's degree bound (default 4).
      max_evaluations: the compressive solver's budget of model evaluations (default 20,000).
      seed: seed of every random choice (GL, R² masks, random orderings).
      out: report folder.
      checkpoint: checkpoint file (GL search state, the exact solver's partly filled table, or the
        compressive solver's query ledger, kept after the run: a larger ``max_evaluations`` re-uses it);
        rerunning with the same file resumes. Locked while the run lasts (a second run on it is
        refused); the exact solver's is removed only once the report is written.
      checkpoint_every_s: exact and compressive solvers: seconds between checkpoint saves (GL saves
        every level; all save when interrupted).
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
    next_token: str | None = None
    sae: bool = False
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
    max_evaluations: int | None = None
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
