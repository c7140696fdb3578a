"""Every setting of every solver, given hostile values (hypothesis): the solver either runs or
raises ActSpecError naming the setting — never a TypeError, an OverflowError, a MemoryError or a
crash in a jitted loop."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robustness._hyp import examples

import actspec_jax as asj
from actspec_jax.errors import ActSpecError

#: Settings whose values are objects checked by their own code (estimators, constraints).
OBJECT_SETTINGS = {"estimator", "redundancy"}
SOLVERS = (asj.ExactSolver, asj.GoldreichLevin, asj.CompressiveSolver)

hostile = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 9),  # small whole numbers: valid ones run fast at n = 6
    st.sampled_from([2**40, -(2**40), 1e12]),  # beyond every sanity bound
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (x == x and 2 < abs(x) < 1e11)),
    st.text(max_size=3),
    st.sampled_from(["8", "all", "mask", "index", "relative", "highest", "float64"]),
    st.lists(st.integers(-1, 7), max_size=3),
    st.just(object()),
)


def _problem() -> asj.FunctionProblem:
    return asj.FunctionProblem(lambda x: 0.7 * x[:, 0] * x[:, 1] + 0.5 * x[:, 2] - 0.2 * x[:, 3] * x[:, 5], 6)


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in OBJECT_SETTINGS]


@pytest.mark.parametrize("cls", SOLVERS, ids=lambda c: c.__name__)
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_setting_runs_or_is_refused_by_name(cls, data):
    name = data.draw(st.sampled_from(_fields(cls)), label="setting")
    value = data.draw(hostile, label="value")
    try:
        solver = cls(**{name: value})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = (
                solver(_problem()) if cls is asj.ExactSolver else solver(_problem(), key=jax.random.key(0))
            )
    except ActSpecError as err:
        assert name in str(err), f"{cls.__name__}({name}={value!r}) refused without naming it: {err}"
        return
    assert result.n == 6


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (asj.GoldreichLevin, "beam", 2**40),  # was a 24 TiB allocation
        (asj.GoldreichLevin, "influence_samples", 1e9),  # was an XLA out-of-memory
        (asj.GoldreichLevin, "order", 3),  # was "'int' object is not iterable"
        (asj.GoldreichLevin, "confidence", None),
        (asj.ExactSolver, "dtype", "x"),
        (asj.ExactSolver, "rtol", None),
        (asj.ExactSolver, "wht_precision", [1, 2]),
        (asj.ExactSolver, "devices", 0.5),
        (asj.CompressiveSolver, "memory_budget", float("nan")),
        (asj.CompressiveSolver, "devices", object()),
        (asj.CompressiveSolver, "groups", 1e9),
    ],
)
def test_representative_hostile_settings_are_named(cls, name, value):
    with pytest.raises(ActSpecError, match=name):
        cls(**{name: value})
