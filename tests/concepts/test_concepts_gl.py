"""Exact and Goldreich–Levin agree on a small concept basis of the shipped MNIST MLP."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import actspec_jax as asj
from actspec_jax.concepts import ConceptProblem, concept_spectrum, fit_basis
from actspec_jax.data import load_mnist
from actspec_jax.models import load_pretrained

TAU = 0.1


def test_exact_and_goldreich_levin_agree_on_concepts():
    model = load_pretrained("mnist_mlp")
    train_x, _ = load_mnist("train")
    test_x, test_y = load_mnist("test")
    cut = asj.cut_linen(model.module, model.variables, "relu_0")
    basis = fit_basis(cut.activations(jnp.asarray(train_x[:1000])), 12, key=jax.random.key(0))
    problem = ConceptProblem.from_cut(
        cut, jnp.asarray(test_x[test_y == 7][:8]), output="log_prob:7", basis=basis
    )

    exact = concept_spectrum(problem)  # k = 12 ≤ 24: exact
    assert exact.solver["name"] == "exact"
    gl = concept_spectrum(
        problem, exact_max=4, key=jax.random.key(1), solver=asj.GoldreichLevin(tau=TAU, tau_mode="centered")
    )  # forced above the limit
    assert gl.solver["name"] != "exact"

    norm = np.sqrt(exact.norm_sq - exact.constant**2)  # std of f: tau_mode="centered"
    reference = exact.to_dict()
    found = gl.to_dict()
    stderr = dict(zip(gl.subset_tuples(), gl.stderr))
    heavy = {S for S, c in reference.items() if S and abs(c) >= 2 * TAU * norm}
    assert len(heavy) >= 3  # a non-trivial spectrum: several heavy concepts / combinations
    assert any(len(S) >= 2 for S in heavy)
    for S in heavy:  # every heavy coefficient found, same sign, within 4 standard errors
        assert S in found, (S, reference[S])
        assert np.sign(found[S]) == np.sign(reference[S])
        assert abs(found[S] - reference[S]) <= 4 * stderr[S] + 2e-5 * norm
    for S, value in found.items():  # nothing spurious
        assert abs(value - reference.get(S, 0.0)) <= 4 * stderr[S] + 2e-5 * norm
    assert {S for S, c in found.items() if S and abs(c) >= 2 * TAU * norm} == heavy
