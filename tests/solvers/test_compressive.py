"""CompressiveSolver: BCH support decoding, planted recovery, budgets (counted), bad input."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from counting import counting
from marks import incomplete_expected

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers.compressive.bch import bch_delays, decode_syndrome
from actspec_jax.solvers.gl.budget import minimum_gl_evaluations


@pytest.mark.parametrize("n, t", [(12, 4), (100, 4), (1000, 3)])
def test_bch_decodes_every_low_degree_support(n: int, t: int) -> None:
    rng = np.random.default_rng(n)
    delays = bch_delays(n, t)
    for _ in range(200):
        subset = tuple(sorted(int(i) for i in rng.choice(n, rng.integers(0, t + 1), replace=False)))
        bits = delays[:, list(subset)].sum(axis=1) % 2 == 1
        assert decode_syndrome(bits, n, t) == subset


@pytest.mark.slow
def test_planted_sparse_recovery_under_budget() -> None:
    poly = synthetic.random_sparse_polynomial(jax.random.key(4), 100, 20, max_degree=4, min_abs=0.3)
    spec = asj.CompressiveSolver(max_evaluations=4000)(poly.problem, key=jax.random.key(1))
    got = spec.to_dict()
    for subset, value in poly.truth.items():
        assert got.get(subset, 0.0) == pytest.approx(value, abs=1e-3), subset
    assert spec.solver["evaluations"] <= 4000
    assert sum(spec.solver["evaluations_by_stage"].values()) == spec.solver["evaluations"]


@pytest.mark.parametrize(
    "make, budget",
    [
        (lambda b: asj.CompressiveSolver(max_evaluations=b), 1500),
        pytest.param(
            lambda b: asj.CompressiveSolver(max_evaluations=b, max_degree=None), 5000, marks=pytest.mark.slow
        ),
        pytest.param(lambda b: asj.CompressiveSolver(max_evaluations=b), 9000, marks=pytest.mark.slow),
        (lambda b: asj.GoldreichLevin(tau=0.1, max_evaluations=b), 1500),
        pytest.param(lambda b: asj.GoldreichLevin(tau=0.1, max_evaluations=b), 9000, marks=pytest.mark.slow),
    ],
)
@incomplete_expected  # GL under a small budget says what it cut
def test_budget_never_exceeded(make, budget: int) -> None:
    poly = synthetic.random_sparse_polynomial(jax.random.key(2), 24, 6, max_degree=3)
    problem, seen = counting(poly.problem)
    spec = make(budget)(problem, key=jax.random.key(0))
    jax.effects_barrier()
    assert 0 < sum(seen) <= budget
    assert spec.solver["evaluations"] <= budget
    assert spec.solver["evaluations"] <= sum(seen)


def test_budget_below_minimum_names_it() -> None:
    problem = synthetic.random_sparse_polynomial(jax.random.key(0), 40, 4).problem
    solver = asj.CompressiveSolver(max_evaluations=50)
    minimum = solver.minimum_evaluations(40)
    with pytest.raises(asj.ActSpecError, match=rf"minimum of {minimum}\b"):
        solver(problem, key=jax.random.key(0))
    gl_min = minimum_gl_evaluations(40)
    with pytest.raises(asj.ActSpecError, match=rf"minimum of {gl_min}\b"):
        asj.GoldreichLevin(max_evaluations=gl_min - 1)(problem, key=jax.random.key(0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_degree": 40}, "max_degree must be in 1..39"),
        ({"max_degree": 0}, "max_degree must be in 1..39"),
        ({"noise_level": 1.0}, "noise_level"),
        ({"noise_level": -0.1}, "noise_level"),
        ({"singletons": "some"}, "singletons"),
        ({"refit": "x"}, "refit"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs: dict, message: str) -> None:
    problem = synthetic.random_sparse_polynomial(jax.random.key(0), 40, 4).problem
    with pytest.raises(asj.ActSpecError, match=re.escape(message)):
        asj.CompressiveSolver(**kwargs)(problem, key=jax.random.key(0))


def test_gl_under_a_tight_budget_says_it_was_cut() -> None:
    from actspec_jax.diagnostics import IncompleteResultWarning

    poly = synthetic.random_sparse_polynomial(jax.random.key(2), 24, 6, max_degree=3)
    with pytest.warns(IncompleteResultWarning, match="max_evaluations=1500 cut the search"):
        spec = asj.GoldreichLevin(tau=0.1, max_evaluations=1500)(poly.problem, key=jax.random.key(0))
    codes = [d["code"] for d in spec.solver["diagnostics"]]
    assert "budget_limited" in codes


def test_a_small_budget_goes_to_bins_before_the_refit_reserve():
    """At n=100, t=4 and 1584 evaluations the B/8 reserve used to leave 4 bins per group (recall 0.55
    on 20 planted terms); bins come first now: 16 bins, every planted term recovered."""
    from actspec_jax.problems.synthetic import random_sparse_polynomial

    poly = random_sparse_polynomial(jax.random.key(120), 100, 20, max_degree=4, min_abs=0.3)
    solver = asj.CompressiveSolver(max_evaluations=1584, max_degree=4)
    assert solver.plan(100)["bins_log2"] == 4
    found = solver(poly.problem, key=jax.random.key(1)).to_dict()
    planted = {k: v for k, v in poly.truth.items() if k}
    assert all(abs(found.get(k, 0.0) - v) <= 0.5 * abs(v) for k, v in planted.items())


def test_a_budget_too_small_for_the_terms_says_the_result_is_incomplete():
    """60 planted terms in 3 groups × 4 bins (396 evaluations; 15 terms per bin, beyond even the
    exact factorization of compressive.sums, which takes 8): it finds few of them, and the result
    says so (warning + ``unexplained`` diagnostic) instead of looking like a complete sparse
    spectrum. (20 terms at 396 evaluations are now all found: test_compressive_decoder.py.)"""
    from actspec_jax.diagnostics import IncompleteResultWarning
    from actspec_jax.problems.synthetic import random_sparse_polynomial

    poly = random_sparse_polynomial(jax.random.key(120), 100, 60, max_degree=4, min_abs=0.3)
    with pytest.warns(IncompleteResultWarning, match="explain only"):
        small = asj.CompressiveSolver(max_evaluations=396, max_degree=4)(poly.problem, key=jax.random.key(1))
    assert small.solver["explained_share"] < 0.5
    assert [d["code"] for d in small.solver["diagnostics"]] == ["unexplained"]
    enough = asj.CompressiveSolver(max_evaluations=6336, max_degree=4)(poly.problem, key=jax.random.key(1))
    assert enough.solver["explained_share"] > 0.99 and "diagnostics" not in enough.solver


def test_the_low_degree_keep_rule_is_chosen_on_held_out_rows(monkeypatch):
    """Six planted terms plus a dense tail (a high-frequency cosine of the mask, 0.5 in amplitude,
    no low-degree structure): the low-degree regression can only fit the tail's noise there, and
    the keep rule chosen on held-out uniform rows is the strict one — fewer added terms and a lower
    error on fresh masks than the loosest rule forced."""
    import jax.numpy as jnp

    from actspec_jax.problems.synthetic import random_sparse_polynomial
    from actspec_jax.solvers.compressive import hybrid
    from actspec_jax.solvers.compressive.design import uniform_masks

    n = 30
    poly = random_sparse_polynomial(jax.random.key(3), n, 6, max_degree=3, min_abs=0.3)
    w = jax.random.normal(jax.random.key(5), (n,))
    tailed = asj.FunctionProblem(
        lambda x: poly.problem.evaluate_unchecked(x) + 0.5 * jnp.cos(97.0 * (x @ w)), n
    )
    masks = uniform_masks(jax.random.key(9), 4096, n)
    values = np.asarray(tailed.evaluate(masks))

    def run() -> tuple[asj.Spectrum, float]:
        spec = asj.CompressiveSolver(max_evaluations=4000, max_degree=3)(tailed, key=jax.random.key(1))
        return spec, float(np.mean((np.asarray(spec.evaluate(masks)) - values) ** 2))

    chosen, chosen_mse = run()
    monkeypatch.setattr(hybrid, "KEEP_Z", (1.0,))
    loose, loose_mse = run()
    assert chosen.solver["low_degree_keep"] != "|c| >= 1 se"
    assert loose.solver["low_degree_keep"] == "|c| >= 1 se"
    assert chosen.solver["low_degree_terms_added"] < loose.solver["low_degree_terms_added"]
    assert chosen_mse < loose_mse
