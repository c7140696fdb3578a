"""Reproduce the shipped sentiment transformer (``actspec_jax/models/weights/sentiment_transformer*``).

Recipe: the fixed IMDB training split of ``actspec_jax.data.load_reviews`` (80 % of the
unique reviews, seed 0), a word-level vocabulary of the 10,000 most frequent training
tokens (min count 2), the first 256 tokens of every review, a 2-block width-128 4-head
:class:`~actspec_jax.models.transformer.SentimentTransformer` (mean pooling, ReLU MLP,
dropout 0.1), AdamW (peak lr 1e-3, linear warm-up over 5 % of the steps then cosine
decay to 0, weight decay 0.01 on matrices only, global-norm clipping at 1), batch 32,
3 epochs, softmax cross-entropy. The weights are stored as float16 (half the file size)
and every accuracy in the sidecar is measured *after* the float16 round trip, on the
held-out IMDB test split and on the Rotten Tomatoes test split (a shift of domain: short
snippets, never trained on).

Usage (from the repository root)::

    python scripts/train_sentiment_transformer.py                     # the shipped weights
    python scripts/train_sentiment_transformer.py --epochs 1 --limit 2000 --out "$(mktemp -d)"   # smoke
    python scripts/train_sentiment_transformer.py --rescore    # re-measure the shipped weights
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from actspec_jax.data import load_reviews, reviews_summary
from actspec_jax.data.text import Tokenizer
from actspec_jax.models import accuracy, save_variables, train_classifier
from actspec_jax.models.transformer import (
    SENTIMENT_WEIGHTS,
    WEIGHTS_DIR,
    SentimentTransformer,
    load_sentiment_transformer,
)

VOCAB_FILE = "sentiment_vocab.json"
SLICE = 256


def make_optimizer(lr: float, steps: int, warmup: float, weight_decay: float) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=max(1, int(warmup * steps)), decay_steps=steps, end_value=0.0
    )

    def decay_mask(params):  # decay weight matrices and embeddings, not biases or LayerNorm scales
        return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)

    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(schedule, weight_decay=weight_decay, mask=decay_mask),
    )


def score(module, variables, data: dict, encoded: dict) -> dict[str, float]:
    """Accuracy on every validation and test split, plus an exact figure on a small slice
    (the first SLICE IMDB test reviews) that a fast test re-measures."""
    accuracies = {
        f"{s}/{p}": accuracy(module, variables, encoded[(s, p)].tokens, data[(s, p)].labels, batch_size=256)
        for (s, p) in data
        if p != "train"
    }
    test_tokens, test_labels = encoded[("imdb", "test")].tokens, data[("imdb", "test")].labels
    accuracies[f"imdb/test[:{SLICE}]"] = accuracy(module, variables, test_tokens[:SLICE], test_labels[:SLICE])
    return accuracies


def load_all() -> dict:
    return {
        (source, split): load_reviews(source, split)
        for source in ("imdb", "rotten_tomatoes")
        for split in ("train", "validation", "test")
    }


def rescore(out: Path) -> None:
    """Re-measure saved weights (no training): rewrite accuracies and truncation counts in
    the sidecar; the weight file and its checksum are left untouched."""
    module, variables, tokenizer, info = load_sentiment_transformer(out)
    data = load_all()
    encoded = {key: tokenizer.encode(texts, module.context) for key, (texts, _) in data.items()}
    info["accuracy"] = score(module, variables, data, encoded)
    info["test_accuracy"] = info["accuracy"]["imdb/test"]
    truncation = {f"{s}/{p}": e.report() for (s, p), e in encoded.items()}
    info["truncation"] = {**truncation, "imdb/train": info["truncation"]["imdb/train"]}
    info["rescored_with"] = {
        "jax": jax.__version__,
        "flax": flax.__version__,
        "backend": jax.default_backend(),
    }
    path = (out / SENTIMENT_WEIGHTS).with_suffix(".json")
    path.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    print(json.dumps({"sidecar": str(path), "accuracy": info["accuracy"]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=10_000)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N reviews only (smoke)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--rescore", action="store_true", help="re-measure the weights in --out; no training")
    args = parser.parse_args()
    if args.rescore:
        rescore(args.out)
        return
    started = time.perf_counter()

    data = load_all()
    train_texts, train_labels = data[("imdb", "train")]
    if args.limit:
        train_texts, train_labels = train_texts[: args.limit], train_labels[: args.limit]
    tokenizer = Tokenizer.build(train_texts, max_size=args.vocab, min_count=args.min_count)
    encoded = {key: tokenizer.encode(texts, args.context) for key, (texts, _) in data.items()}
    encoded[("imdb", "train")] = tokenizer.encode(train_texts, args.context)
    truncation = {f"{s}/{p}": e.report() for (s, p), e in encoded.items()}
    print(f"vocabulary {tokenizer.vocab_size} tokens; truncation at {args.context}: {truncation}", flush=True)

    module = SentimentTransformer(
        vocab_size=tokenizer.vocab_size,
        context=args.context,
        width=args.width,
        depth=args.depth,
        num_heads=args.heads,
        dropout=args.dropout,
    )
    steps = args.epochs * (len(train_texts) // args.batch)
    optimizer = make_optimizer(args.lr, steps, args.warmup, args.weight_decay)
    x_val, y_val = encoded[("imdb", "validation")].tokens, data[("imdb", "validation")].labels
    print(f"{module}  backend={jax.default_backend()}  steps={steps}", flush=True)
    train_started, cpu_started = time.perf_counter(), time.process_time()
    result = train_classifier(
        module,
        encoded[("imdb", "train")].tokens,
        np.asarray(train_labels),
        key=jax.random.key(args.seed),
        epochs=args.epochs,
        batch_size=args.batch,
        optimizer=optimizer,
        eval_data=(x_val, y_val),
        log=lambda r: print(r, flush=True),
    )
    train_seconds = time.perf_counter() - train_started

    stored = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float16), result.variables)
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), stored)
    accuracies = score(module, variables, data, encoded)
    print(f"accuracies (float16 weights): {accuracies}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(args.out / VOCAB_FILE)
    info = {
        "model": "SentimentTransformer",
        "architecture": module.config(),
        "vocabulary_file": VOCAB_FILE,
        "weights_dtype": "float16 (cast to float32 on load)",
        "recipe": {
            "data": "actspec_jax.data.load_reviews('imdb', 'train'), default split",
            "train_examples": len(train_texts),
            "vocabulary": {"max_size": args.vocab, "min_count": args.min_count, "built_from": "imdb/train"},
            "truncation": "first tokens kept",
            "optimizer": "adamw + warmup_cosine_decay + clip_by_global_norm(1.0)",
            "learning_rate": args.lr,
            "warmup_fraction": args.warmup,
            "weight_decay": args.weight_decay,
            "batch_size": args.batch,
            "epochs": args.epochs,
            "steps": steps,
            "loss": "softmax cross-entropy",
            "selection": "final epoch (validation accuracy logged, not used for selection)",
        },
        "seed": args.seed,
        "history": result.history,
        "accuracy": accuracies,
        "test_accuracy": accuracies["imdb/test"],
        "truncation": truncation,
        "data": reviews_summary(),
        "train_seconds": train_seconds,
        "train_cpu_seconds": time.process_time() - cpu_started,
        "cpu_count": os.cpu_count(),
        "total_seconds": time.perf_counter() - started,
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "numpy": np.__version__,
            "backend": jax.default_backend(),
        },
    }
    path = save_variables(args.out / SENTIMENT_WEIGHTS, stored, info)
    print(
        json.dumps({"weights": str(path), "bytes": path.stat().st_size, "accuracy": accuracies}), flush=True
    )
    print(f"done in {time.perf_counter() - started:.0f} s (training {train_seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
