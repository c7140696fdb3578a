"""Decision-contribution test and exemplars, checked against a direct numpy computation."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from matplotlib.figure import Figure

import actspec_jax as asj
from actspec_jax.concepts import (
    decision_contribution,
    fit_basis,
    plot_contribution,
    plot_image_exemplars,
    pooled_scores,
    text_exemplars,
    top_exemplars,
)
from actspec_jax.errors import ActSpecError


def test_contribution_matches_manual_nulling(tiny_mlp, digits):
    module, variables = tiny_mlp
    x, _ = digits
    cut = asj.cut_linen(module, variables, "relu_0")
    basis = fit_basis(cut.activations(x), 4, key=jax.random.key(0))
    inputs = x[200:260]
    result = decision_contribution(cut, inputs, basis, batch_size=30)  # two batches
    per = result["per_input"]
    A = np.asarray(cut.activations(inputs))
    U = np.asarray(basis.codes(A))
    W = np.asarray(basis.dictionary)
    logits = np.asarray(module.apply(variables, inputs))
    rows = np.arange(len(inputs))
    t, i, c = logits.argmax(1), A.argmax(1), U.argmax(1)
    assert np.array_equal(per["target"], t) and np.array_equal(per["unit"], i)
    assert np.array_equal(per["concept"], c)
    a_unit = A.copy()
    a_unit[rows, i] = 0.0
    a_concept = A - U[rows, c][:, None] * W[c]
    z_unit = np.asarray(cut.outputs(a_unit, inputs))
    z_concept = np.asarray(cut.outputs(a_concept, inputs))
    np.testing.assert_allclose(per["drop_logit_unit"], logits[rows, t] - z_unit[rows, t], atol=1e-4)
    np.testing.assert_allclose(per["drop_logit_concept"], logits[rows, t] - z_concept[rows, t], atol=1e-4)
    np.testing.assert_allclose(per["removed_norm_unit"], A[rows, i], rtol=1e-5)
    np.testing.assert_allclose(per["removed_norm_concept"], U[rows, c], rtol=1e-4)  # unit-norm concepts
    assert np.array_equal(per["flip_concept"], z_concept.argmax(1) != t)
    # norm-matched arm: the fewest top units whose removed norm reaches the concept's
    for j in (0, 13, 59):
        order = np.argsort(-A[j], kind="stable")
        cumulative = np.sqrt(np.cumsum(A[j, order] ** 2))
        n = max(1, int(np.sum(cumulative < U[j, c[j]] - 1e-6)) + 1)
        assert per["units_matched"][j] in (min(n, 12), min(n, 12) - 1, min(n, 12) + 1)  # float ties
        a = A[j].copy()
        a[order[: per["units_matched"][j]]] = 0.0
        z = np.asarray(cut.outputs(a[None], inputs[j : j + 1]))[0]
        assert per["drop_logit_matched"][j] == pytest.approx(logits[j, t[j]] - z[t[j]], abs=1e-4)
        assert per["removed_norm_matched"][j] >= per["removed_norm_concept"][j] * (1 - 1e-5) or n > 12
    s = result["summary"]
    assert s["inputs"] == 60 and s["concepts"] == 4 and s["neurons"] == 12
    assert s["drop_logit_concept"] == pytest.approx(per["drop_logit_concept"].mean())
    assert 0.0 <= s["concept_wins"] <= 1.0
    assert isinstance(plot_contribution([s, s], title="t"), Figure)


def test_token_layers_pool_over_real_tokens(tiny_tokens):
    module, variables, tokens = tiny_tokens
    cut = asj.cut_linen(module, variables, "relu")
    mask = np.ones(tokens.shape, np.float32)
    mask[:, 4:] = 0.0
    A = np.asarray(cut.activations(tokens))
    np.testing.assert_allclose(np.asarray(pooled_scores(A, mask)), A[:, :4].mean(axis=1), rtol=1e-5)
    basis = fit_basis(A, 3, key=jax.random.key(0))
    result = decision_contribution(cut, tokens, basis, token_mask=mask, targets=np.zeros(len(tokens), int))
    assert np.array_equal(result["per_input"]["unit"], np.argmax(A[:, :4].mean(axis=1), axis=1))
    assert np.all(result["per_input"]["target"] == 0)
    with pytest.raises(ActSpecError, match="targets"):
        decision_contribution(cut, tokens, basis, targets=[0, 1])


def test_exemplars():
    scores = np.array([[0.1, 3.0], [2.0, 1.0], [0.5, -1.0], [4.0, 0.0]])
    most, least = top_exemplars(scores, k=2)
    assert most.tolist() == [[3, 1], [0, 1]]
    assert least.tolist() == [[0, 2], [2, 3]]
    images = np.random.default_rng(0).uniform(size=(4, 8, 8))
    assert isinstance(
        plot_image_exemplars(images, most, least, ["u0", "u1"], title="t", scores=scores), Figure
    )
    rows = text_exemplars(["good film", "bad", "meh " * 40, "great"], most, least, ["c0", "c1"], width=20)
    assert rows[0][0] == "c0" and "great" in rows[0][1] and rows[1][1].startswith("good film")
    assert all(len(part) <= 20 for part in rows[1][2].split(" ‖ "))
