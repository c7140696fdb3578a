"""Outputs: callables, positions of sequence outputs, one shape check with a clear error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj

M, T, N, V = 3, 5, 4, 7


@pytest.fixture(scope="module")
def lm():
    """A toy language model cut at its hidden units: acts [m, T, N] -> logits [m, T, V]."""
    w = jax.random.normal(jax.random.key(0), (N, V))
    acts = jax.random.normal(jax.random.key(1), (M, T, N))
    cut = asj.cut_functions(lambda p, x: x, lambda p, a: jnp.tanh(a) @ p, w, layer="mlp")
    return cut, acts, cut.outputs(acts, acts)


def _value(cut, acts, **kw):
    return asj.masked_problem(cut, acts, **kw).evaluate(jnp.ones((1, N)))


def test_sequence_logits_need_a_position(lm):
    cut, acts, _ = lm
    with pytest.raises(asj.ActSpecError, match=r"\[3, 5, 7\].*'logit:3@last'"):
        asj.masked_problem(cut, acts, output="logit:3")
    with pytest.raises(asj.ActSpecError, match="separate functions"):
        asj.masked_problem(cut, acts, output="logits")


def test_positions_and_log_probs(lm):
    cut, acts, logits = lm
    np.testing.assert_allclose(
        _value(cut, acts, output="logit:3@last")[0], logits[:, -1, 3].mean(), rtol=1e-5
    )
    np.testing.assert_allclose(_value(cut, acts, output="logit:3@1")[0], logits[:, 1, 3].mean(), rtol=1e-5)
    lp = jax.nn.log_softmax(logits, axis=-1)
    np.testing.assert_allclose(_value(cut, acts, output="log_prob:4@-1")[0], lp[:, -1, 4].mean(), rtol=1e-5)
    np.testing.assert_allclose(_value(cut, acts, output="log_prob:4@mean")[0], lp[..., 4].mean(), rtol=1e-5)
    every = asj.masked_problem(cut, acts, output="logits@last")
    assert every.output_shape == (V,) and every.output_labels[2] == "logit:2@last"
    with pytest.raises(asj.ActSpecError, match="outside the T = 5"):
        asj.masked_problem(cut, acts, output="logit:3@5")
    with pytest.raises(asj.ActSpecError, match="class 9 is out of range"):
        asj.masked_problem(cut, acts, output="logit:9@last")
    with pytest.raises(asj.ActSpecError, match="@last"):
        asj.problems.parse_output("logit:3@first")


def test_callable_outputs(lm):
    cut, acts, logits = lm
    diff = lambda z: z[:, -1, 3] - z[:, -1, 5]  # noqa: E731
    np.testing.assert_allclose(
        _value(cut, acts, output=diff)[0], (logits[:, -1, 3] - logits[:, -1, 5]).mean(), rtol=1e-5
    )
    two = asj.masked_problem(cut, acts, output=lambda z: z[:, -1, :2], aggregate="none")
    assert two.output_shape == (M, 2)
    with pytest.raises(asj.ActSpecError, match="separate functions"):
        asj.masked_problem(cut, acts, output=lambda z: z[:, :, :2])
    with pytest.raises(asj.ActSpecError, match="batch axis"):
        asj.masked_problem(cut, acts, output=lambda z: z.sum())
    flat = asj.cut_functions(lambda p, x: x, lambda p, a: a @ jnp.ones((N, 2)), None)
    with pytest.raises(asj.ActSpecError, match="drop the '@last'"):
        asj.masked_problem(flat, acts[:, 0], output="logit:1@last")
