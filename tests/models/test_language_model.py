"""The shipped language model and its sparse autoencoder: causality, cut points, the recorded
figures re-measured, and the SAE latents as a site with the SAE's error kept."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.data import load_reviews
from actspec_jax.data.text import PAD_ID
from actspec_jax.models import MovieLM, load_movie_lm
from actspec_jax.models.language_model import review_windows


@pytest.fixture(scope="module")
def shipped():
    return load_movie_lm()


@pytest.fixture(scope="module")
def held(shipped):
    recipe = shipped.info["recipe"]["windows"]
    texts = load_reviews("imdb", "validation").texts
    return review_windows(shipped.tokenizer, texts, recipe["context"], recipe["per_review"])


def test_a_position_reads_only_earlier_non_padding_tokens():
    module = MovieLM(vocab_size=20, context=8, width=16, depth=2, num_heads=4)
    tokens = jnp.asarray(np.random.default_rng(0).integers(2, 20, (3, 8)), jnp.int32)
    variables = module.init(jax.random.key(0), tokens)
    logits = module.apply(variables, tokens)
    changed = module.apply(variables, tokens.at[:, 5].set(3))
    np.testing.assert_array_equal(logits[:, :5], changed[:, :5])
    assert float(jnp.abs(logits[:, 5:] - changed[:, 5:]).max()) > 0
    padded = module.apply(variables, tokens.at[:, 6:].set(PAD_ID))
    np.testing.assert_allclose(padded[:, :6], logits[:, :6], atol=1e-6)
    cut_points = module.cut_points()
    layers = asj.list_layers(module, variables, tokens)
    assert {k: layers[k][-1] for k in cut_points} == cut_points


def test_the_recorded_figures_are_re_measured(shipped, held):
    """The held-out loss of the first 256 windows and the SAE's explained variance on their
    tokens, as the training script recorded them after the float16 round trip; the model beats
    its unigram and bigram baselines."""
    module, variables, info = shipped.module, shipped.variables, shipped.info
    batch = jnp.asarray(held[:256])
    logits = module.apply(variables, batch[:, :-1])
    targets = batch[:, 1:]
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], axis=-1)[..., 0]
    scored = targets != PAD_ID
    loss = float((nll * scored).sum() / scored.sum())
    np.testing.assert_allclose(loss, info["held_out_loss_first_256"], rtol=1e-4)
    perplexity = info["perplexity"]
    assert perplexity["model"] < perplexity["bigram"] < perplexity["unigram"]

    cut = asj.cut_model(module, variables, info["sae"]["layer"])
    acts = np.asarray(cut.activations(batch[:, :-1]))[np.asarray(batch[:, :-1]) != PAD_ID]
    sae = shipped.sae
    recon = np.asarray(sae.decode(sae.encode(jnp.asarray(acts))))
    explained = 1.0 - np.sum((acts - recon) ** 2) / np.sum((acts - acts.mean(0)) ** 2)
    np.testing.assert_allclose(explained, info["sae"]["explained_variance_first_256"], rtol=1e-3)
    assert sae.num_latents == info["sae"]["latents"] >= 512


def test_sae_latents_as_a_site_keep_the_error_term(shipped, held):
    """Every latent is a variable of ``site(basis=W_dec, encoder=encode)``; with all kept the
    problem is the model itself (the SAE's reconstruction error stays in the activations), and
    ablating a latent moves the output by its code along its direction only."""
    module, variables, sae = shipped.module, shipped.variables, shipped.sae
    tokens = jnp.asarray(held[:4, :-1])
    target = int(held[0, -1])
    layer = shipped.info["sae"]["layer"]
    cut = asj.cut_model(
        module, variables, asj.site(layer, basis=sae.w_dec, encoder=sae.encode, kind="latent")
    )
    problem = asj.masked_problem(cut, tokens, output=f"log_prob:{target}@last")
    assert problem.n == sae.num_latents and problem.labels[3].endswith("latent[3]")
    real = jax.nn.log_softmax(module.apply(variables, tokens)[:, -1])[:, target].mean()
    np.testing.assert_allclose(problem.evaluate(jnp.ones((1, problem.n)))[0], real, rtol=1e-5, atol=1e-5)
