"""Where subsets fire: per-input coefficients (vs per-input exact spectra), co-activation, snippets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.analysis.firing import activity, coactivation, per_input_coefficients, snippet


def _per_input_problem(rng, m=3, n=5):
    acts = jnp.asarray(rng.uniform(0.0, 1.0, size=(m, n)), jnp.float32)

    def head(p, a):  # a nonlinear head: pairwise products appear in the spectrum
        return jnp.stack([jnp.tanh(a @ p[0]), (a[:, 0] * a[:, 1])[..., None] + a @ p[1]], axis=-1)[..., 0, :]

    params = (
        jnp.asarray(rng.normal(size=(n, 1)), jnp.float32),
        jnp.asarray(rng.normal(size=(n, 1)), jnp.float32),
    )
    cut = asj.cut_functions(lambda p, x: x, head, params)
    return asj.masked_problem(cut, acts, output="logit:1", aggregate="none")


def test_exact_per_input_coefficients_match_the_per_input_spectra(rng):
    problem = _per_input_problem(rng)
    subsets = [(0,), (0, 1), (2, 4), (1, 2, 3)]
    coef, err = per_input_coefficients(problem, subsets)
    batch = asj.ExactSolver()(problem)
    for j in range(problem.output_shape[0]):
        truth = batch[j].to_dict()
        for k, s in enumerate(subsets):
            assert coef[j, k] == pytest.approx(truth.get(s, 0.0), abs=1e-5)
    assert np.all(err == 0)
    assert abs(coef[:, 1]).max() > 1e-3  # the product term is really there


def test_sampled_per_input_coefficients_are_within_their_errors(rng):
    problem = _per_input_problem(rng)
    subsets = [(0,), (0, 1)]
    exact, _ = per_input_coefficients(problem, subsets)
    coef, err = per_input_coefficients(problem, subsets, key=jax.random.key(1), num_masks=4000, exact_max_n=2)
    assert np.all(err > 0)
    assert np.all(np.abs(coef - exact) <= 5 * err + 1e-6)
    with pytest.raises(asj.ActSpecError, match="pass key"):
        per_input_coefficients(problem, subsets, exact_max_n=2)
    mean_problem = asj.FunctionProblem(lambda x: x[:, 0], 3)
    with pytest.raises(asj.ActSpecError, match="one scalar output per input"):
        per_input_coefficients(mean_problem, subsets)


def test_coactivation_finds_positions_where_all_members_are_high():
    acts = np.zeros((2, 6, 3))
    acts[..., 0] = np.linspace(0, 1, 12).reshape(2, 6)
    acts[..., 1] = 0.1
    acts[0, 2, :2] = 5.0  # both members high at input 0, position 2
    acts[1, 4, :2] = 4.0  # and at input 1, position 4 (padding beyond length 4 -> ignored)
    acts[1, 1, 0] = 9.0  # only one member high
    fire = coactivation(acts, lengths=[6, 4], subset=[0, 1], quantile=0.8)
    assert (int(fire.input[0]), int(fire.position[0])) == (0, 2)
    assert all(not (i == 1 and p >= 4) for i, p in zip(fire.input, fire.position))
    assert fire.score[0] >= 1.0 and np.all(np.diff(fire.score) <= 0)
    only_1 = coactivation(acts, lengths=[6, 4], subset=[0, 1], inputs=[1])
    assert set(only_1.input.tolist()) == {1}
    heads = np.zeros((1, 2, 3, 2))
    heads[0, 1, :, 1] = [3.0, 4.0, 0.0]
    assert activity(heads)[0, 1, 1] == pytest.approx(5.0)
    with pytest.raises(asj.ActSpecError, match="non-empty"):
        coactivation(acts, [6, 4], [])
    with pytest.raises(asj.ActSpecError, match="token activity"):
        activity(np.zeros((2, 3)))


def test_snippet_marks_and_escapes_tokens():
    tokens = ["a", "<b>", "great", "*", "film", "x", "y", "z"]
    md, page = snippet(tokens, [2], window=1)
    assert md == "… &lt;b> **great** \\* …"
    assert "<mark>great</mark>" in page and "&lt;b&gt;" in page
    md_none, _ = snippet(tokens, [], window=1)
    assert "**" not in md_none and md_none.startswith("a")
