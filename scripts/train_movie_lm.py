"""Reproduce the shipped language model and its sparse autoencoder (``actspec_jax/models/weights/movie_lm*``).

Recipe (CPU minutes):
- **Data**: the fixed IMDB training split of ``actspec_jax.data.load_reviews`` (validation and
  test splits held out), a word-level vocabulary of the ``--vocab`` most frequent training tokens
  (min count 2). Every review's first ``--windows · context`` tokens are cut into windows of
  ``context + 1`` tokens overlapping by one (inputs = the first ``context``, targets = the last);
  windows that start with padding are dropped, padded targets are not scored.
- **Model**: :class:`~actspec_jax.models.language_model.MovieLM` (causal, no dropout); AdamW
  (peak lr ``--lr``, warm-up 5 %, cosine decay to 0, weight decay 0.01 on matrices, clipping at 1),
  ``--epochs`` epochs of batch ``--batch``, next-token cross-entropy.
- **Baselines** on the same held-out windows (same vocabulary, same scored targets): the unigram
  (add-one counts from the training windows) and an interpolated bigram, ``0.9·P(w|prev) + 0.1·P(w)``.
- **SAE** on the residual stream after ``block_0`` (every non-padding position of the training
  windows, up to ``--sae-tokens``): ``--sae-ratio × width`` ReLU latents, loss ``‖a − â‖² /D +
  λ‖codes‖₁`` with unit-norm decoder rows (renormalised after each Adam step), ``b_dec``
  initialised at the mean. Reported on held-out validation tokens: explained variance
  ``1 − Σ‖a − â‖² / Σ‖a − ā‖²``, ``L0`` (mean active latents a token), the dead share (latents
  never active on those tokens), and the LM's loss with the SAE's reconstruction spliced in.

Weights are stored as float16; every figure in the sidecar is measured after that round trip.

Usage (from the repository root)::

    python scripts/train_movie_lm.py                          # the shipped weights
    python scripts/train_movie_lm.py --limit 500 --epochs 1 --out "$(mktemp -d)"   # smoke
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from train_sentiment_transformer import make_optimizer  # scripts/ is on the path when run

from actspec_jax.data import load_reviews, reviews_summary
from actspec_jax.data.text import PAD_ID, Tokenizer
from actspec_jax.models import save_variables
from actspec_jax.models.language_model import (
    LM_WEIGHTS,
    MovieLM,
    SparseAutoencoder,
    load_movie_lm,
    review_windows,
)
from actspec_jax.models.transformer import WEIGHTS_DIR

VOCAB_FILE = "movie_lm_vocab.json"
SAE_LAYER = "block_0/resid"


def token_losses(module: MovieLM, variables, batch: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-target negative log-likelihood ``[B, T]`` and the scored-target mask."""
    logits = module.apply(variables, batch[:, :-1])
    targets = batch[:, 1:]
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], axis=-1)[..., 0]
    return nll, targets != PAD_ID


def mean_loss(module: MovieLM, variables, data: np.ndarray, batch: int = 512) -> float:
    step = jax.jit(
        lambda v, b: tuple(x.sum() for x in (lambda n, s: (n * s, s))(*token_losses(module, v, b)))
    )
    total = count = 0.0
    for i in range(0, len(data), batch):
        nll, scored = step(variables, jnp.asarray(data[i : i + batch]))
        total, count = total + float(nll), count + float(scored)
    return total / count


def ngram_losses(train: np.ndarray, held: np.ndarray, vocab: int) -> dict[str, float]:
    """Held-out mean NLL of the unigram and the interpolated bigram (module docstring)."""
    prev, nxt = train[:, :-1].ravel(), train[:, 1:].ravel()
    scored = nxt != PAD_ID
    uni = np.bincount(nxt[scored], minlength=vocab).astype(np.float64) + 1.0
    uni /= uni.sum()
    pair = np.zeros((vocab, vocab), np.float32)
    np.add.at(pair, (prev[scored], nxt[scored]), 1.0)
    rows = pair.sum(axis=1, keepdims=True)
    hp, hn = held[:, :-1].ravel(), held[:, 1:].ravel()
    keep = hn != PAD_ID
    hp, hn = hp[keep], hn[keep]
    p_uni = uni[hn]
    with np.errstate(invalid="ignore", divide="ignore"):
        p_bi = np.where(rows[hp, 0] > 0, pair[hp, hn] / np.maximum(rows[hp, 0], 1.0), 0.0)
    return {
        "unigram": float(-np.log(p_uni).mean()),
        "bigram": float(-np.log(0.9 * p_bi + 0.1 * p_uni).mean()),
    }


def residuals(module: MovieLM, variables, data: np.ndarray, limit: int) -> np.ndarray:
    """``float32[N, width]``: the residual stream after ``block_0`` at non-padding positions."""
    capture = jax.jit(
        lambda v, b: module.apply(
            v,
            b,
            capture_intermediates=lambda m, name: "/".join(m.path) == SAE_LAYER,
            mutable=["intermediates"],
        )[1]["intermediates"]["block_0"]["resid"]["__call__"][0]
    )
    out, got = [], 0
    for i in range(0, len(data), 256):
        batch = data[i : i + 256, :-1]
        acts = np.asarray(capture(variables, jnp.asarray(batch)))
        rows = acts[batch != PAD_ID]
        out.append(rows)
        got += len(rows)
        if got >= limit:
            break
    return np.concatenate(out)[:limit]


def train_sae(acts: np.ndarray, latents: int, l1: float, steps: int, key: jax.Array) -> SparseAutoencoder:
    d = acts.shape[1]
    k1, k2 = jax.random.split(key)
    w_dec = jax.random.normal(k1, (latents, d))
    w_dec = w_dec / jnp.linalg.norm(w_dec, axis=1, keepdims=True)
    params = {
        "w_enc": w_dec.T * 1.0,
        "b_enc": jnp.zeros(latents),
        "w_dec": w_dec,
        "b_dec": jnp.asarray(acts.mean(0)),
    }
    opt = optax.adam(optax.cosine_decay_schedule(1e-3, steps, 0.1))
    state = opt.init(params)
    scale = float(np.mean(np.sum((acts - acts.mean(0)) ** 2, axis=1)))  # ‖a − ā‖² on average

    def loss(p, a):
        sae = SparseAutoencoder(**p)
        codes = sae.encode(a)
        err = jnp.sum((sae.decode(codes) - a) ** 2, axis=1).mean() / scale
        return err + l1 * jnp.abs(codes).sum(axis=1).mean() / np.sqrt(scale)

    @jax.jit
    def step(p, s, a):
        value, grads = jax.value_and_grad(loss)(p, a)
        updates, s = opt.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        p["w_dec"] = p["w_dec"] / jnp.linalg.norm(p["w_dec"], axis=1, keepdims=True)
        return p, s, value

    order = np.asarray(jax.random.randint(k2, (steps, 1024), 0, len(acts)))
    for i in range(steps):
        params, state, value = step(params, state, jnp.asarray(acts[order[i]]))
        if i % 500 == 0 or i == steps - 1:
            print(f"sae step {i}: loss {float(value):.4f}", flush=True)
    return SparseAutoencoder(**params)


def sae_figures(sae: SparseAutoencoder, acts: np.ndarray) -> dict[str, float]:
    codes = np.asarray(jax.jit(sae.encode)(jnp.asarray(acts)))
    recon = codes @ np.asarray(sae.w_dec) + np.asarray(sae.b_dec)
    resid = np.sum((acts - recon) ** 2)
    total = np.sum((acts - acts.mean(0)) ** 2)
    active = codes > 0
    return {
        "explained_variance": float(1.0 - resid / total),
        "l0": float(active.sum(axis=1).mean()),
        "dead_share": float(np.mean(~active.any(axis=0))),
        "tokens": len(acts),
    }


def spliced_loss(module: MovieLM, variables, sae: SparseAutoencoder, data: np.ndarray) -> float:
    """The LM's held-out loss with the residual after ``block_0`` replaced by its reconstruction."""
    from actspec_jax import cut_linen

    cut = cut_linen(module, variables, SAE_LAYER)

    def nll(b):
        acts = cut.features(cut.params, b[:, :-1])
        logits = cut.head(cut.params, sae.decode(sae.encode(acts)), b[:, :-1])
        targets = b[:, 1:]
        per = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], axis=-1)[..., 0]
        scored = targets != PAD_ID
        return (per * scored).sum(), scored.sum()

    step = jax.jit(nll)
    total = count = 0.0
    for i in range(0, len(data), 512):
        a, b = step(jnp.asarray(data[i : i + 512]))
        total, count = total + float(a), count + float(b)
    return total / count


def sae_stage(args, module: MovieLM, variables, train: np.ndarray, held: np.ndarray) -> tuple[dict, dict]:
    """Train the SAE on the residual stream after ``block_0`` and measure it (module docstring)."""
    started = time.perf_counter()
    acts = residuals(module, variables, train, args.sae_tokens)
    key = jax.random.fold_in(jax.random.key(args.seed), 1)
    sae = train_sae(acts, args.sae_ratio * module.width, args.sae_l1, args.sae_steps, key)
    sae_stored = {k: np.asarray(getattr(sae, k), np.float16) for k in ("w_enc", "b_enc", "w_dec", "b_dec")}
    sae = SparseAutoencoder(**{k: jnp.asarray(v, jnp.float32) for k, v in sae_stored.items()})
    figures = sae_figures(sae, residuals(module, variables, held, 50_000))
    figures["lm_perplexity_with_sae"] = float(np.exp(spliced_loss(module, variables, sae, held)))
    first = sae_figures(sae, residuals(module, variables, held[:256], 10**9))
    figures["explained_variance_first_256"] = first["explained_variance"]
    print(f"SAE: {figures}", flush=True)
    info = {
        "layer": SAE_LAYER,
        "latents": sae.num_latents,
        "l1": args.sae_l1,
        "steps": args.sae_steps,
        "train_tokens": len(acts),
        **figures,
        "seconds": time.perf_counter() - started,
    }
    return sae_stored, info


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--windows", type=int, default=4, help="windows taken from each review")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--sae-ratio", type=int, default=8)
    parser.add_argument("--sae-l1", type=float, default=0.1)
    parser.add_argument("--sae-steps", type=int, default=3000)
    parser.add_argument("--sae-tokens", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N reviews only (smoke)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--sae-only", action="store_true", help="retrain the SAE of the LM saved in --out")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.sae_only:
        lm = load_movie_lm(args.out)
        recipe = lm.info["recipe"]["windows"]
        train = review_windows(
            lm.tokenizer, load_reviews("imdb", "train").texts, recipe["context"], recipe["per_review"]
        )
        held = review_windows(
            lm.tokenizer, load_reviews("imdb", "validation").texts, recipe["context"], recipe["per_review"]
        )
        sae_stored, lm.info["sae"] = sae_stage(args, lm.module, lm.variables, train, held)
        save_variables(
            args.out / f"{LM_WEIGHTS}_sae", sae_stored, {"layer": SAE_LAYER, "versions": lm.info["versions"]}
        )
        meta = (args.out / LM_WEIGHTS).with_suffix(".json")
        meta.write_text(json.dumps(lm.info, indent=1, sort_keys=True) + "\n")  # the LM's own checksum kept
        load_movie_lm(args.out)
        print(json.dumps({"sae": lm.info["sae"]}), flush=True)
        return

    train_texts = load_reviews("imdb", "train").texts
    held_texts = load_reviews("imdb", "validation").texts
    if args.limit:
        train_texts, held_texts = train_texts[: args.limit], held_texts[: max(50, args.limit // 10)]
    tokenizer = Tokenizer.build(train_texts, max_size=args.vocab, min_count=2)
    train = review_windows(tokenizer, train_texts, args.context, args.windows)
    held = review_windows(tokenizer, held_texts, args.context, args.windows)
    print(f"vocabulary {tokenizer.vocab_size}; windows train {len(train)} held {len(held)}", flush=True)

    module = MovieLM(tokenizer.vocab_size, args.context, args.width, args.depth, args.heads)
    key = jax.random.key(args.seed)
    variables = module.init(key, jnp.asarray(train[:2, :-1]))
    steps = args.epochs * (len(train) // args.batch)
    opt = make_optimizer(args.lr, steps, warmup=0.05, weight_decay=0.01)  # the sentiment recipe's
    opt_state = opt.init(variables)

    def loss(v, b):
        nll, scored = token_losses(module, v, b)
        return (nll * scored).sum() / jnp.maximum(scored.sum(), 1)

    @jax.jit
    def step(v, s, b):
        value, grads = jax.value_and_grad(loss)(v, b)
        updates, s = opt.update(grads, s, v)
        return optax.apply_updates(v, updates), s, value

    history, t0 = [], time.perf_counter()
    rng = np.random.default_rng(args.seed)
    done = 0
    for _epoch in range(args.epochs):
        order = rng.permutation(len(train))
        for i in range(len(train) // args.batch):
            variables, opt_state, value = step(
                variables, opt_state, jnp.asarray(train[order[i * args.batch : (i + 1) * args.batch]])
            )
            done += 1
            if done % 200 == 0 or done == steps:
                record = {"step": done, "loss": float(value), "seconds": time.perf_counter() - t0}
                history.append(record)
                print(record, flush=True)
    train_seconds = time.perf_counter() - t0

    stored = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float16), variables)
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), stored)
    lm_loss = mean_loss(module, variables, held)
    baselines = ngram_losses(train, held, tokenizer.vocab_size)
    perplexity = {"model": float(np.exp(lm_loss)), **{k: float(np.exp(v)) for k, v in baselines.items()}}
    print(f"held-out perplexity: {perplexity}", flush=True)

    sae_stored, sae_info = sae_stage(args, module, variables, train, held)
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(args.out / VOCAB_FILE)
    versions = {
        "python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
        "optax": optax.__version__, "numpy": np.__version__, "backend": jax.default_backend(),
    }  # fmt: skip
    save_variables(args.out / f"{LM_WEIGHTS}_sae", sae_stored, {"layer": SAE_LAYER, "versions": versions})
    info = {
        "model": "MovieLM",
        "architecture": module.config(),
        "vocabulary_file": VOCAB_FILE,
        "weights_dtype": "float16 (cast to float32 on load)",
        "recipe": {
            "data": "actspec_jax.data.load_reviews('imdb', 'train'), default split; held out: 'validation'",
            "windows": {
                "per_review": args.windows,
                "context": args.context,
                "train": len(train),
                "held": len(held),
            },
            "vocabulary": {"max_size": args.vocab, "min_count": 2, "built_from": "imdb/train"},
            "optimizer": "adamw + warmup_cosine_decay + clip_by_global_norm(1.0)",
            "learning_rate": args.lr,
            "batch_size": args.batch,
            "epochs": args.epochs,
            "steps": steps,
            "loss": "next-token cross-entropy (padded targets not scored)",
        },
        "seed": args.seed,
        "history": history,
        "held_out_loss": lm_loss,
        # re-measured by a fast test: the first 256 held-out windows, and the SAE on their tokens
        "held_out_loss_first_256": mean_loss(module, variables, held[:256]),
        "perplexity": perplexity,
        "sae": sae_info,
        "data": reviews_summary(),
        "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - started,
        "versions": versions,
    }
    path = save_variables(args.out / LM_WEIGHTS, stored, info)
    if args.out == WEIGHTS_DIR:
        load_movie_lm()  # the shipped files load and verify
    print(json.dumps({"weights": str(path), "perplexity": perplexity, "sae": info["sae"]}), flush=True)


if __name__ == "__main__":
    main()
