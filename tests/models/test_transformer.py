"""The sentiment transformer: training on a tiny config, named cut points, shipped weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import actspec_jax as asj
from actspec_jax.data import Tokenizer, load_reviews
from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.models import accuracy, train_classifier
from actspec_jax.models.transformer import SentimentTransformer, load_sentiment_transformer


@pytest.fixture(scope="module")
def tiny():
    module = SentimentTransformer(vocab_size=30, context=12, width=16, depth=2, num_heads=4)
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 30, (5, 12)).astype(np.int32)
    tokens[1, 7:] = 0  # padded rows
    tokens[3, 4:] = 0
    variables = module.init(jax.random.key(0), jnp.asarray(tokens))
    return module, variables, jnp.asarray(tokens)


@pytest.mark.slow  # suite time; the shipped weights' accuracy test below covers the trained model
def test_tiny_config_trains_and_beats_chance():
    train = load_reviews("imdb", "train", limit=1000)
    held_out = load_reviews("imdb", "validation", limit=500)
    tok = Tokenizer.build(train.texts, max_size=3000)
    x_train = tok.encode(train.texts, 64).tokens
    x_val = tok.encode(held_out.texts, 64).tokens
    module = SentimentTransformer(vocab_size=tok.vocab_size, context=64, width=32, depth=1, num_heads=2)
    result = train_classifier(
        module,
        x_train,
        train.labels,
        key=jax.random.key(0),
        epochs=4,
        batch_size=32,
        optimizer=optax.adamw(3e-3, weight_decay=0.01),
    )
    assert result.history[-1]["train_accuracy"] > 0.9
    # chance is 0.5 ± 0.022 (one standard deviation) on 500 balanced reviews
    assert accuracy(module, result.variables, x_val, held_out.labels) > 0.62


def test_cut_points_exist_with_documented_shapes_and_reproduce_logits(tiny):
    module, variables, tokens = tiny
    logits = module.apply(variables, tokens)
    assert logits.shape == (5, 2)
    layers = asj.list_layers(module, variables, tokens)
    m, t, width = 5, 12, 16
    expected = {
        "block_0/attn/heads": (m, t, 4, 4),
        "block_1/attn/heads": (m, t, 4, 4),
        "block_0/mlp/act": (m, t, 64),
        "block_1/mlp/act": (m, t, 64),
        "block_0/resid": (m, t, width),
        "block_1/resid": (m, t, width),
        "pooled": (m, width),
    }
    assert {k: layers[k] for k in expected} == expected
    assert {k: v[-1] for k, v in expected.items()} == module.cut_points()
    for layer in module.cut_points():
        cut = asj.cut_linen(module, variables, layer)
        acts = cut.activations(tokens)
        np.testing.assert_allclose(cut.outputs(acts, tokens), logits, rtol=1e-6, atol=1e-6)


def test_head_mask_removes_that_heads_output_at_every_position(tiny):
    module, variables, tokens = tiny
    problem = asj.MaskedProblem.from_cut(
        asj.cut_linen(module, variables, "block_0/attn/heads"), tokens, output="logit_diff:1-0"
    )
    assert problem.n == 4
    mask = jnp.asarray([1.0, -1.0, 1.0, 1.0])
    masked = problem.masked_activations(mask)
    assert bool(jnp.all(masked[..., 1] == 0))
    np.testing.assert_array_equal(masked[..., [0, 2, 3]], problem.activations[..., [0, 2, 3]])
    # by hand: drop head 1's slice of the output projection's input
    params = variables["params"]["block_0"]["attn"]["out"]
    heads = problem.activations
    full = jnp.einsum("mtdh,dhw->mtw", heads, params["kernel"])
    without = jnp.einsum("mtdh,dhw->mtw", heads.at[..., 1].set(0.0), params["kernel"])
    assert float(jnp.max(jnp.abs(full - without))) > 1e-4  # the head did contribute


def test_padding_does_not_change_the_logits(tiny):
    module, variables, tokens = tiny
    short = tokens[:, :8].at[1, 7:].set(0)
    padded = jnp.concatenate([short, jnp.zeros((5, 4), jnp.int32)], axis=1)
    np.testing.assert_allclose(
        module.apply(variables, short), module.apply(variables, padded), rtol=1e-5, atol=1e-5
    )
    empty = jnp.zeros((1, 12), jnp.int32)  # a text with no tokens gives finite logits
    assert bool(jnp.all(jnp.isfinite(module.apply(variables, empty))))


def test_bad_input(tiny):
    module, variables, tokens = tiny
    with pytest.raises(UnknownLayerError, match=r"no layer 'block_0/mlp/gelu'.*'block_0/mlp/act"):
        asj.cut_linen(module, variables, "block_0/mlp/gelu").activations(tokens)
    with pytest.raises(UnknownLayerError, match=r"block_5/attn/heads.*block_1/attn/heads"):
        asj.MultiLayerProblem.from_linen(module, variables, ["block_5/attn/heads"], tokens, output="logit:1")
    cut = asj.cut_linen(module, variables, "block_1/mlp/act")
    with pytest.raises(ActSpecError, match="input batch is empty"):
        asj.MaskedProblem.from_cut(cut, tokens[:0], output="logit_diff:1-0")
    with pytest.raises(ActSpecError, match="out of range"):
        asj.MaskedProblem.from_cut(cut, tokens, output="logit:2")
    with pytest.raises(ActSpecError, match="exceed the model's context of 12"):
        module.apply(variables, jnp.ones((2, 13), jnp.int32))
    with pytest.raises(ActSpecError, match="integer ids"):
        module.apply(variables, jnp.ones((2, 12), jnp.float32))
    with pytest.raises(ActSpecError, match="not divisible"):
        SentimentTransformer(vocab_size=30, context=12, width=10, num_heads=4).init(jax.random.key(0), tokens)


def test_shipped_weights_load_and_match_the_recorded_accuracy():
    module, variables, tokenizer, info = load_sentiment_transformer()
    assert info["accuracy"]["imdb/test"] >= 0.85
    assert module.vocab_size == tokenizer.vocab_size
    assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(variables))
    test = load_reviews("imdb", "test", limit=256)
    tokens = tokenizer.encode(test.texts, module.context).tokens
    measured = accuracy(module, variables, tokens, test.labels, batch_size=128)
    # the same 256 reviews were scored when the weights were saved; allow one flipped borderline case
    assert abs(measured - info["accuracy"]["imdb/test[:256]"]) <= 1 / 256 + 1e-9
    assert abs(measured - info["accuracy"]["imdb/test"]) < 0.06


@pytest.mark.slow
def test_shipped_weights_full_test_split():
    module, variables, tokenizer, info = load_sentiment_transformer()
    for key in ("imdb/test", "rotten_tomatoes/test"):
        source, split = key.split("/")
        data = load_reviews(source, split)
        encoded = tokenizer.encode(data.texts, module.context)
        assert encoded.report() == info["truncation"][key]
        measured = accuracy(module, variables, encoded.tokens, data.labels, batch_size=128)
        assert abs(measured - info["accuracy"][key]) <= 2 / len(data.labels)
