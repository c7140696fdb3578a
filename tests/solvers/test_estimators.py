"""GL estimators as strategy objects: names and objects agree, and a new one is one class."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers.gl.estimators import Estimator, PaperHybrids, UniformMasks, as_estimator

SMALL = {"num_samples": 32, "draws_per_z": 8, "leaf_samples": 1024, "influence_samples": 8, "passes": 1}
TERMS = {(1,): 0.9, (4, 7): -0.7, (2, 9, 11): 0.6}


@dataclasses.dataclass(frozen=True)
class RademacherMasks(Estimator):
    """Uniform masks drawn as ``±1`` floats directly (no packed words): the same distribution
    as :class:`UniformMasks`, drawn another way — the whole estimator is this class."""

    name: ClassVar[str] = "rademacher"

    def draw(self, key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
        return jax.random.rademacher(key, (*shape, n), jnp.float32)

    def patterns(self, draws: jax.Array, data: Any, n: int) -> jax.Array:
        return draws

    def hybrid_values(self, problem: Any, chunk: jax.Array, prefix: jax.Array) -> jax.Array:
        c, r, n = chunk.shape[0], chunk.shape[1] - 1, chunk.shape[2]
        masks = jnp.where(prefix, chunk[:, 1:], chunk[:, :1]).reshape(c * r, n)
        return problem.evaluate_unchecked(masks).reshape(c, r).astype(jnp.float32)

    def design_values(self, problem: Any, chunk: jax.Array) -> jax.Array:
        return problem.evaluate_unchecked(chunk).astype(jnp.float32)


def test_a_custom_estimator_finds_the_planted_terms() -> None:
    planted = synthetic.sparse_polynomial(12, {(): 0.2, **TERMS})
    spec = asj.GoldreichLevin(tau=0.2, estimator=RademacherMasks(), **SMALL)(
        planted.problem, key=jax.random.key(0)
    )
    found = spec.to_dict()
    for subset, value in TERMS.items():
        assert found.get(subset) == pytest.approx(value, abs=0.1), (subset, found)
    assert not set(found) - set(TERMS) - {()}, f"false subsets: {set(found) - set(TERMS)}"
    assert spec.solver["estimator"] == "rademacher" and spec.solver["evaluation_unit"] == "mask"
    assert "estimator_settings" not in spec.solver  # no fields: nothing of its own to record


def test_names_and_objects_give_the_same_search() -> None:
    planted = synthetic.sparse_polynomial(10, {(0,): 0.8, (3, 5): 0.5})
    by_name = asj.GoldreichLevin(tau=0.2, **SMALL)(planted.problem, key=jax.random.key(1))
    by_object = asj.GoldreichLevin(tau=0.2, estimator=UniformMasks(), **SMALL)(
        planted.problem, key=jax.random.key(1)
    )
    assert by_name.subset_tuples() == by_object.subset_tuples()
    np.testing.assert_array_equal(by_name.coefficients, by_object.coefficients)
    assert by_object.solver["estimator"] == "mask" and "estimator_settings" not in by_object.solver


def test_paper_estimator_object_settings() -> None:
    assert asj.GoldreichLevin(estimator=PaperHybrids()).settings() == asj.GoldreichLevin.paper().settings()
    cfg = asj.GoldreichLevin(estimator=PaperHybrids(gamma=0.3, delta=0.1)).settings()
    assert cfg["estimator"] == "paper" and cfg["center"] is False and cfg["num_samples"] == 1000
    names = {c["name"]: c for c in cfg["redundancy"]}
    assert names["prescreen"]["gamma"] == 0.3 and names["postcheck"]["delta"] == 0.1


def test_estimators_are_static_and_named() -> None:
    assert hash(UniformMasks()) == hash(UniformMasks()) and PaperHybrids() == PaperHybrids()
    assert as_estimator("paper") == PaperHybrids() and as_estimator("mask") == UniformMasks()
    assert PaperHybrids().bind(_rows_problem(7)).rows == 7
    with pytest.raises(asj.ActSpecError, match="estimator must be"):
        as_estimator("magic")
    with pytest.raises(asj.ActSpecError, match="passes must be"):
        asj.GoldreichLevin(estimator=PaperHybrids(), passes=2).settings()


def _rows_problem(rows: int) -> asj.MaskedProblem:
    cut = asj.cut_functions(lambda p, x: x, lambda p, a, x: a[:, :2], None, layer="units")
    return asj.MaskedProblem.from_cut(cut, jnp.ones((rows, 3)), output="logit:1")
