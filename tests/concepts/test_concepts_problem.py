"""ActSpec over concepts: exact reproduction with all concepts kept, brute-force spectrum."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.concepts import ConceptBasis, ConceptProblem, NegativeActivationError, fit_basis
from actspec_jax.errors import ActSpecError


def test_all_kept_reproduces_the_model_exactly(tiny_mlp, digits):
    module, variables = tiny_mlp
    x, _ = digits
    cut = asj.cut_linen(module, variables, "relu_0")
    problem = ConceptProblem.from_cut(
        cut, x[:40], output="logits", aggregate="none", num_concepts=4, key=jax.random.key(0), fit_inputs=x
    )
    assert problem.n == 4 and problem.describe()["relative_error"] > 0.01  # a lossy basis
    values = np.asarray(problem.evaluate(jnp.ones((1, 4))))[0]
    np.testing.assert_allclose(values, np.asarray(module.apply(variables, x[:40])), rtol=1e-6, atol=1e-6)


def test_tokens_with_shift_reproduce_the_model_and_mask_every_position(tiny_tokens):
    module, variables, tokens = tiny_tokens
    cut = asj.cut_linen(module, variables, "act")  # GELU: negative values
    with pytest.raises(NegativeActivationError, match="shift"):
        ConceptProblem.from_cut(cut, tokens, output="logit:1", num_concepts=3, key=jax.random.key(0))
    problem = ConceptProblem.from_cut(
        cut,
        tokens,
        output="logit_diff:1-0",
        aggregate="none",
        num_concepts=3,
        key=jax.random.key(0),
        shift="min",
    )
    logits = np.asarray(module.apply(variables, tokens))
    kept = np.asarray(problem.evaluate(jnp.ones((1, 3))))[0]
    np.testing.assert_allclose(kept, logits[:, 1] - logits[:, 0], rtol=1e-5, atol=1e-6)
    # ablating concept 1 removes u_1 W_1 at every token position, nothing else
    masked = np.asarray(problem.masked_activations(jnp.array([1.0, -1.0, 1.0])))
    A, U, W = (np.asarray(a) for a in (problem.activations, problem.codes, problem.dictionary))
    np.testing.assert_allclose(masked, A - U[..., 1:2] * W[1], rtol=1e-5, atol=1e-6)


def _relu(v):
    return np.maximum(v, 0)


def test_exact_spectrum_matches_float64_brute_force(tiny_mlp, digits):
    module, variables = tiny_mlp
    x, _ = digits
    cut = asj.cut_linen(module, variables, "relu_0")
    basis = fit_basis(cut.activations(x), 4, key=jax.random.key(1))
    inputs = x[:30]
    problem = ConceptProblem.from_cut(cut, inputs, output="logit:2", basis=basis, fill="mean")
    spectrum = asj.ExactSolver()(problem)

    # independent float64 evaluation: rebuild the masked activations and run the head in numpy
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    A = np.asarray(cut.activations(inputs), np.float64)
    U, W = np.asarray(problem.codes, np.float64), np.asarray(basis.dictionary, np.float64)
    fill = U.mean(axis=0)
    k = 4
    table = {}
    for ablated in itertools.product([0, 1], repeat=k):
        off = np.array(ablated, bool)
        acts = A - ((U - fill) * off) @ W
        h = _relu(acts @ p["dense_1"]["kernel"] + p["dense_1"]["bias"])
        table[ablated] = (h @ p["logits"]["kernel"] + p["logits"]["bias"])[:, 2].mean()
    brute = {}
    for S in itertools.chain.from_iterable(itertools.combinations(range(k), r) for r in range(k + 1)):
        total = 0.0
        for ablated, value in table.items():
            signs = np.where(np.array(ablated) == 1, -1.0, 1.0)
            total += value * np.prod(signs[list(S)])
        brute[S] = total / 2**k
    ours = spectrum.to_dict()
    for S, value in brute.items():
        assert ours.get(S, 0.0) == pytest.approx(value, abs=2e-5 * max(1.0, abs(brute[()])))


def test_problem_is_a_pytree_and_jits(tiny_mlp, digits):
    module, variables = tiny_mlp
    x, _ = digits
    cut = asj.cut_linen(module, variables, "relu_0")
    problem = ConceptProblem.from_cut(
        cut, x[:10], output="indicator:1", num_concepts=4, key=jax.random.key(0), fit_inputs=x
    )
    masks = jnp.array([[1.0, -1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]])
    np.testing.assert_allclose(
        np.asarray(jax.jit(lambda p, m: p.evaluate_unchecked(m))(problem, masks)),
        np.asarray(problem.evaluate(masks)),
    )
    assert problem.labels == ("concept 0", "concept 1", "concept 2", "concept 3")


def test_bad_inputs(tiny_mlp, digits):
    module, variables = tiny_mlp
    x, _ = digits
    cut = asj.cut_linen(module, variables, "relu_0")
    with pytest.raises(ActSpecError, match="num_concepts"):
        ConceptProblem.from_cut(cut, x[:5], output="logit:0")
    with pytest.raises(NegativeActivationError, match="relu_0"):
        ConceptProblem.from_cut(
            asj.cut_linen(module, variables, "dense_0"),
            x[:5],
            output="logit:0",
            num_concepts=2,
            key=jax.random.key(0),
        )
    other = ConceptBasis(jnp.ones((2, 10)) / np.sqrt(10), jnp.zeros(10), jnp.float32(0.5), jnp.int32(1))
    with pytest.raises(ActSpecError, match="neurons"):
        ConceptProblem.from_cut(cut, x[:5], output="logit:0", basis=other)
    with pytest.raises(ActSpecError, match="only 5 rows"):
        ConceptProblem.from_cut(cut, x[:5], output="logit:0", num_concepts=6, key=jax.random.key(0))
    with pytest.raises(ActSpecError, match="fill"):
        ConceptProblem.from_cut(cut, x[:5], output="logit:0", basis=other, fill="resample")
