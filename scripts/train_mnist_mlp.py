"""Reproduce the shipped MNIST MLP weights (``actspec_jax/models/weights/mnist_mlp*``).

Recipe (the ActSpec paper's): 14×14 images from 2×2 average pooling, Adam (lr 1e-3),
batch 128, 10 epochs, dropout 0.2 after each ReLU during training only, softmax
cross-entropy on the 60,000 training digits; test accuracy on all 10,000 test digits.

Usage (from the repository root)::

    python scripts/train_mnist_mlp.py                 # both models, seed 0
    python scripts/train_mnist_mlp.py --models mnist_mlp --seed 0 --out DIR
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import flax
import jax
import optax

from actspec_jax.data import MNIST_SHA256, load_mnist
from actspec_jax.data.mnist import MNIST_FILE, MNIST_PACKAGE, MNIST_VERSION
from actspec_jax.models import accuracy, save_variables, train_classifier
from actspec_jax.models.zoo import MODEL_SPECS, WEIGHTS_DIR

RECIPE = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 128,
    "epochs": 10,
    "dropout": 0.2,
    "loss": "softmax cross-entropy",
    "preprocessing": "uint8/255, 2x2 average pooling to 14x14, flattened to 196",
    "train_examples": 60000,
}


def train_one(name: str, seed: int, out: Path) -> dict:
    module = MODEL_SPECS[name]()
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    print(f"[{name}] {module}  seed={seed}  backend={jax.default_backend()}", flush=True)
    started = time.perf_counter()
    result = train_classifier(
        module,
        x_train,
        y_train,
        key=jax.random.key(seed),
        epochs=RECIPE["epochs"],
        batch_size=RECIPE["batch_size"],
        optimizer=optax.adam(RECIPE["learning_rate"]),
        log=lambda r: print(f"[{name}] {r}", flush=True),
    )
    seconds = time.perf_counter() - started
    test_acc = accuracy(module, result.variables, x_test, y_test)
    first2000 = accuracy(module, result.variables, x_test[:2000], y_test[:2000])
    print(f"[{name}] test accuracy {test_acc:.4f} (first 2000: {first2000:.4f}), {seconds:.0f} s", flush=True)
    info = {
        "name": name,
        "architecture": {
            "class": "actspec_jax.models.MLP",
            "input": [14, 14],
            "hidden": list(module.hidden),
            "num_classes": module.num_classes,
            "dropout": module.dropout,
            "layers": [f"dense_{i}/relu_{i}" for i in range(len(module.hidden))] + ["logits"],
        },
        "recipe": RECIPE,
        "seed": seed,
        "epochs": RECIPE["epochs"],
        "history": result.history,
        "test_accuracy": test_acc,
        "test_examples": len(y_test),
        "test_accuracy_first_2000": first2000,
        "train_seconds": seconds,
        "data": {
            "package": f"{MNIST_PACKAGE}=={MNIST_VERSION}",
            "file": MNIST_FILE,
            "sha256": MNIST_SHA256,
        },
        "versions": {
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "python": platform.python_version(),
            "backend": jax.default_backend(),
        },
        "script": "scripts/train_mnist_mlp.py",
    }
    path = save_variables(out / name, result.variables, info)
    print(f"[{name}] wrote {path} ({path.stat().st_size} bytes)", flush=True)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=sorted(MODEL_SPECS), choices=sorted(MODEL_SPECS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = parser.parse_args()
    for name in args.models:
        train_one(name, args.seed, args.out)


if __name__ == "__main__":
    main()
