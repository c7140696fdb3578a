"""The paper's MLP: named cut points, training on digits, and the shipped weights."""

from __future__ import annotations

import hashlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.data import load_digits_dataset, load_mnist
from actspec_jax.errors import ActSpecError
from actspec_jax.models import (
    MLP,
    accuracy,
    available_models,
    load_pretrained,
    load_variables,
    train_classifier,
    zoo,
)


def _init(module: MLP, shape=(4, 14, 14)):
    x = jax.random.uniform(jax.random.key(1), shape)
    return x, module.init(jax.random.key(0), x)


def test_named_layers_and_cut_reproduces_logits() -> None:
    module = MLP(hidden=(32, 16))
    x, variables = _init(module)
    layers = asj.list_layers(module, variables, x)
    for name, width in [("dense_0", 32), ("relu_0", 32), ("dense_1", 16), ("relu_1", 16), ("logits", 10)]:
        assert layers[name] == (4, width)
    logits = module.apply(variables, x)
    for layer in ("dense_0", "relu_0", "relu_1"):
        cut = asj.cut_linen(module, variables, layer)
        acts = cut.activations(x)
        np.testing.assert_allclose(cut.outputs(acts, x), logits, rtol=1e-5, atol=1e-6)
    relu0 = asj.cut_linen(module, variables, "relu_0").activations(x)
    dense0 = asj.cut_linen(module, variables, "dense_0").activations(x)
    np.testing.assert_array_equal(relu0, jnp.maximum(dense0, 0))
    # Cutting and changing the activations changes the output (the head really uses them).
    cut = asj.cut_linen(module, variables, "relu_0")
    assert not np.allclose(cut.outputs(jnp.zeros_like(relu0), x), logits)


def test_input_shapes_and_dropout_only_in_training() -> None:
    module = MLP(hidden=(64,), dropout=0.5)
    x, variables = _init(module)
    np.testing.assert_allclose(module.apply(variables, x), module.apply(variables, x.reshape(4, 196)))
    eval_a = module.apply(variables, x, train=False)
    np.testing.assert_array_equal(eval_a, module.apply(variables, x))
    train_a = module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    train_b = module.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(train_a, eval_a) and not np.allclose(train_a, train_b)
    with pytest.raises(ValueError, match=r"inputs \[m, H, W\] or \[m, d\]"):
        module.apply(variables, jnp.zeros((196,)))


def test_tiny_mlp_learns_digits() -> None:
    x, y = load_digits_dataset()
    module = MLP(hidden=(32,), dropout=0.1)
    result = train_classifier(module, x[:1400], y[:1400], key=jax.random.key(0), epochs=8, batch_size=32)
    acc = accuracy(module, result.variables, x[1400:], y[1400:])
    assert acc > 0.8, acc  # chance is 0.1
    again = train_classifier(module, x[:1400], y[:1400], key=jax.random.key(0), epochs=1, batch_size=32)
    same = train_classifier(module, x[:1400], y[:1400], key=jax.random.key(0), epochs=1, batch_size=32)
    jax.tree_util.tree_map(np.testing.assert_array_equal, again.variables, same.variables)


def test_unknown_model_lists_available() -> None:
    assert available_models() == ["mnist_mlp", "mnist_mlp_deep", "movie_lm", "sentiment_transformer"]
    with pytest.raises(ActSpecError, match="Available models: mnist_mlp, mnist_mlp_deep"):
        load_pretrained("resnet50")


@pytest.mark.parametrize(("name", "hidden"), [("mnist_mlp", (256,)), ("mnist_mlp_deep", (256, 256, 256))])
def test_shipped_weights_match_recorded_accuracy(name: str, hidden: tuple[int, ...]) -> None:
    model = load_pretrained(name)
    blob = zoo.weights_path(name).with_suffix(".msgpack").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == model.info["sha256"]
    assert model.module.hidden == hidden and model.info["architecture"]["hidden"] == list(hidden)
    assert model.info["data"]["sha256"] == "3a3617b4fc7c22d0450e6a787bafd4bb7fc478260c98a6c19dd19ffa223d255d"
    assert model.info["test_examples"] == 10000 and len(model.info["history"]) == model.info["epochs"] == 10
    x, y = load_mnist("test", limit=2000)
    acc = accuracy(model.module, model.variables, x, y)
    assert abs(acc - model.info["test_accuracy"]) < 0.01, (acc, model.info["test_accuracy"])
    assert abs(acc - model.info["test_accuracy_first_2000"]) < 0.002
    assert model.info["test_accuracy"] > 0.97
    # The paper's layer is a cut point of the shipped model.
    cut = asj.cut_linen(model.module, model.variables, "relu_0")
    np.testing.assert_allclose(
        cut.outputs(cut.activations(x[:8]), x[:8]), model.module.apply(model.variables, x[:8]), atol=1e-5
    )


def test_corrupt_weights_are_refused(tmp_path) -> None:
    src = zoo.weights_path("mnist_mlp")
    for suffix in (".msgpack", ".json"):
        shutil.copy(src.with_suffix(suffix), tmp_path / f"m{suffix}")
    blob = bytearray((tmp_path / "m.msgpack").read_bytes())
    blob[-1] ^= 0xFF
    (tmp_path / "m.msgpack").write_bytes(bytes(blob))
    with pytest.raises(ActSpecError, match="does not match its recorded checksum"):
        load_variables(tmp_path / "m")
