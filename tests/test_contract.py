"""The public contract (the design notes' §2a, kept outside this repository): other code relies on
these exact names and shapes."""

import jax
import jax.numpy as jnp
import pytest


def test_public_contract_verbatim():
    import actspec_jax as asj

    def f(x):  # float32[k, n] of ±1 (+1 = kept) -> float32[k]; jittable
        return 0.75 * x[:, 1] * x[:, 3] - 0.5 * x[:, 0] + 0.25

    n = 5
    problem = asj.FunctionProblem(f, n)
    spec = asj.ExactSolver()(problem)  # -> asj.Spectrum
    assert isinstance(spec, asj.Spectrum)
    assert spec.to_dict() == {
        (1, 3): pytest.approx(0.75),
        (0,): pytest.approx(-0.5),
        (): pytest.approx(0.25),
    }
    assert jax.jit(f)(jnp.ones((2, n), jnp.float32)).shape == (2,)
