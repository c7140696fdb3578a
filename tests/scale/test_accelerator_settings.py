"""The accelerator-facing settings are plain arguments and do not change results on CPU."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.problems import synthetic


@pytest.mark.parametrize("precision", [None, "highest", "high", "default"])
def test_fwht_precision_argument(precision, rng):
    values = jnp.asarray(rng.standard_normal(1 << 10), jnp.float32)
    got = asj.fwht(values, precision=precision)
    np.testing.assert_allclose(got, asj.fwht(values, method="radix2"), rtol=1e-3, atol=1e-2)


def test_unknown_precision_is_rejected():
    with pytest.raises(ValueError, match="precision must be one of"):
        asj.fwht(jnp.ones(8), precision="fp8")


def test_solver_transform_settings_keep_the_spectrum():
    planted = synthetic.parity(9, [1, 4, 8])
    reference = asj.ExactSolver()(planted.problem)
    for kwargs in ({"wht_block_bits": 2}, {"wht_block_bits": 9}, {"wht_precision": "highest"}):
        spec = asj.ExactSolver(**kwargs)(planted.problem)
        np.testing.assert_allclose(spec.dense, reference.dense, atol=1e-7)
        assert spec.to_dict() == {(1, 4, 8): pytest.approx(1.0)}
    assert asj.ExactSolver(wht_precision="high")(planted.problem).solver["wht_precision"] == "high"
