"""Degree profile W^k of the whole spectrum: agreement with the exact solver, coverage, errors."""

from __future__ import annotations

import itertools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers import DegreeProfile, DegreeProfileError, estimate_degree_profile
from actspec_jax.solvers.common.profile_stats import krawtchouk_table, pair_sums


def random_table_problem(n: int, seed: int) -> asj.FunctionProblem:
    """A random function: every coefficient of every degree non-zero."""
    table = jnp.asarray(np.random.default_rng(seed).standard_normal(1 << n), jnp.float32)
    powers = 2 ** jnp.arange(n)
    return asj.FunctionProblem(lambda x: table[((x < 0).astype(jnp.int32) * powers).sum(1)], n)


def mnist_top_units(count: int) -> asj.MaskedProblem:
    data = pytest.importorskip("actspec_jax.data")
    zoo = pytest.importorskip("actspec_jax.models.zoo")
    from actspec_jax.commands.demo import _attribution_units

    model = zoo.load_pretrained("mnist_mlp")
    images, labels = data.load_mnist("test")
    cut = asj.cut_linen(model.module, model.variables, "relu_0")
    inputs = jnp.asarray(images[labels == 7][:64])
    kernel = np.asarray(model.variables["params"]["logits"]["kernel"])
    units = _attribution_units(cut, inputs, kernel, 7, count)
    return asj.masked_problem(cut, inputs, output="log_prob:7", fill="zero", units=units)


def exact_targets(problem: asj.Problem, k: int) -> np.ndarray:
    """[W^0..W^K, W^{>K}] from the exact spectrum."""
    w = asj.ExactSolver()(problem).energy_by_degree(problem.n)
    return np.concatenate([w[: k + 1], [w[k + 1 :].sum()]])


def covered(profile: DegreeProfile, truth: np.ndarray) -> np.ndarray:
    lo = np.concatenate([profile.lower, [profile.tail_lower]])
    hi = np.concatenate([profile.upper, [profile.tail_upper]])
    return (truth >= lo - 1e-9) & (truth <= hi + 1e-9)


def coverage(problem: asj.Problem, seeds: int, num_evaluations: int, k: int = 3) -> float:
    truth = exact_targets(problem, k)
    hits = [
        covered(
            estimate_degree_profile(
                problem, key=jax.random.key(s), max_degree=k, num_evaluations=num_evaluations
            ),
            truth,
        )
        for s in range(seeds)
    ]
    return float(np.mean(hits))


# ---------------------------------------------------------------------------- the kernels


def test_krawtchouk_table_is_the_sum_of_characters_over_subsets_of_size_k():
    n = 6
    table = krawtchouk_table(n, n)
    rng = np.random.default_rng(0)
    x, y = rng.choice([-1, 1], size=(2, 40, n))
    for a, b in zip(x, y):
        d = int((a != b).sum())
        for k in range(n + 1):
            brute = sum(np.prod(a[list(s)] * b[list(s)]) for s in itertools.combinations(range(n), k))
            assert table[k, d] * math.sqrt(math.comb(n, k)) == pytest.approx(brute, abs=1e-9)


@pytest.mark.parametrize("n", [5, 300, 2048])
def test_float32_pair_sums_match_the_exact_table(n):
    count, degree = 96, min(4, n - 1)
    x = jax.random.rademacher(jax.random.key(n), (count, n), dtype=jnp.float32)
    g = np.random.default_rng(n).standard_normal((count, 2))
    xs = np.asarray(x, np.float64)
    dist = ((n - xs @ xs.T) / 2).round().astype(int)
    kern = krawtchouk_table(n, degree)[:, dist] * (1 - np.eye(count))[None]
    ref = np.einsum("kab,bp->akp", kern, g)
    got = pair_sums(x, g, degree, chunk=32)
    scale = np.abs(ref).max(axis=0, keepdims=True) + 1.0
    assert np.max(np.abs(got - ref) / scale) < 1e-4


# ---------------------------------------------------------------------------- agreement with the exact solver


def test_agrees_with_the_exact_profile_on_a_planted_polynomial():
    planted = synthetic.sparse_polynomial(
        10, {(0,): 1.0, (1, 2): -0.8, (3, 4, 5): 0.6, (6, 7, 8, 9): 0.5, (): 0.3}
    )
    p = estimate_degree_profile(planted.problem, key=jax.random.key(0), max_degree=3, num_evaluations=2048)
    truth = exact_targets(planted.problem, 3)
    np.testing.assert_allclose(truth, [0.09, 1.0, 0.64, 0.36, 0.25], atol=1e-5)
    assert covered(p, truth).all()
    assert p.total == pytest.approx(2.34, abs=4 * float(p.total_stderr))
    # the parts sum to the total exactly (the tail is defined as the remainder)
    assert float(p.weights.sum() + p.tail) == pytest.approx(float(p.total), rel=1e-9)
    assert p.control == "linear" and p.evaluations == 2048
    assert p.shares[1] == pytest.approx(0.64 / 2.25, abs=0.05)


def test_coverage_over_seeds_planted_random_and_mnist():
    """Per-(seed, degree) coverage of the nominal 95 % intervals, three kinds of function."""
    problems = [
        synthetic.random_sparse_polynomial(jax.random.key(3), 12, 10, max_degree=4).problem,
        random_table_problem(10, 1),
        mnist_top_units(10),
    ]
    rates = [coverage(problem, seeds=6, num_evaluations=1024) for problem in problems]
    assert min(rates) >= 0.8, rates


@pytest.mark.slow
@pytest.mark.parametrize("which", ["planted", "random", "mnist"])
def test_coverage_over_many_seeds_at_n_up_to_20(which):
    problem = {
        "planted": lambda: (
            synthetic.random_sparse_polynomial(jax.random.key(3), 16, 12, max_degree=4).problem
        ),
        "random": lambda: random_table_problem(14, 2),
        "mnist": lambda: mnist_top_units(20),
    }[which]()
    assert coverage(problem, seeds=40, num_evaluations=2048) >= 0.88


def test_multi_output_problem_gives_one_profile_per_output():
    planted = synthetic.sparse_polynomial(8, {(0,): 1.0, (1, 2): 0.5})
    both = asj.FunctionProblem(lambda x: jnp.stack([planted.problem.f(x), 2 * x[:, 3] * x[:, 4]], axis=1), 8)
    p = estimate_degree_profile(both, key=jax.random.key(1), max_degree=2, num_evaluations=512)
    one = estimate_degree_profile(planted.problem, key=jax.random.key(1), max_degree=2, num_evaluations=512)
    assert p.weights.shape == (2, 3) and p.tail.shape == (2,) and p.shares.shape == (2, 2)
    np.testing.assert_allclose(p.weights[0], one.weights, rtol=1e-6, atol=1e-9)
    assert p.lower[1, 2] <= 4.0 <= p.upper[1, 2]  # the second output is 2·χ_{3,4}: W^2 = 4
    assert "output 1" in str(p)


# ---------------------------------------------------------------------------- large n, determinism, I/O


def test_works_for_n_in_the_thousands_and_is_deterministic():
    n = 3000
    planted = synthetic.sparse_polynomial(n, {(5,): 1.0, (17,): -0.5, (100, 2999): 0.7})
    kwargs = dict(key=jax.random.key(4), max_degree=2, num_evaluations=1024)
    p = estimate_degree_profile(planted.problem, **kwargs)
    assert p.control == "constant"  # 512 masks per half cannot fit 3000 first-order terms
    truth = np.array([0.0, 1.25, 0.49, 0.0])
    assert covered(p, truth).all()
    again = estimate_degree_profile(planted.problem, memory_budget=1 << 22, **kwargs)
    np.testing.assert_allclose(again.weights, p.weights, rtol=1e-6, atol=1e-9)
    other = estimate_degree_profile(planted.problem, **dict(kwargs, key=jax.random.key(5)))
    assert not np.allclose(other.weights, p.weights)


def test_round_trips_through_json_and_reads_well():
    planted = synthetic.sparse_polynomial(6, {(0,): 1.0, (1, 2): 1.0})
    p = estimate_degree_profile(planted.problem, key=jax.random.key(0), max_degree=2, num_evaluations=256)
    doc = json.loads(json.dumps(p.to_dict()))
    back = DegreeProfile.from_dict(doc)
    for name in ("weights", "lower", "upper", "tail", "shares", "tail_share_upper"):
        np.testing.assert_allclose(getattr(back, name), getattr(p, name))
    assert back.evaluations == 256 and back.max_degree == 2
    text = str(p)
    assert "of the variance sits in singletons" in text and "pairs" in text and "degree >2" in text
    with pytest.raises(DegreeProfileError, match="kind='degree_profile'"):
        DegreeProfile.from_dict({"weights": []})


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_degree": 8}, r"max_degree must be an integer in 0..n−1 = 0..7"),
        ({"max_degree": -1}, r"0..7"),
        ({"max_degree": 2.0}, r"integer"),
        ({"confidence": 1.0}, r"confidence must be in \(0, 1\)"),
        ({"confidence": 0.0}, r"confidence must be in \(0, 1\)"),
        ({"num_evaluations": 63}, r"below the minimum of 64"),
        ({"key": None}, r"key=jax.random.key"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(kwargs, match):
    problem = synthetic.parity(8, [0, 1]).problem
    args = dict(key=jax.random.key(0), max_degree=3, num_evaluations=256) | kwargs
    with pytest.raises(DegreeProfileError, match=match):
        estimate_degree_profile(problem, **args)
    assert issubclass(DegreeProfileError, asj.ActSpecError)


def test_not_a_problem_and_non_finite_outputs_are_refused():
    with pytest.raises(DegreeProfileError, match="needs a Problem"):
        estimate_degree_profile(lambda x: x, key=jax.random.key(0))
    bad = asj.FunctionProblem(lambda x: jnp.log(x[:, 0]), 4)
    with pytest.raises(asj.NonFiniteOutputError, match="NaN/inf"):
        estimate_degree_profile(bad, key=jax.random.key(0), max_degree=2, num_evaluations=64)


# ---------------------------------------------------------------------------- attached to GL results


CHEAP_GL = dict(passes=1, num_samples=32, leaf_samples=1024, influence_samples=8)


@pytest.fixture(scope="module")
def gl_with_profile() -> asj.Spectrum:
    planted = synthetic.sparse_polynomial(25, {(3,): 1.0, (7, 9): 0.8, (1, 20, 24): 0.6, (): 0.5})
    solver = asj.GoldreichLevin(tau=0.2, profile_evaluations=2048, **CHEAP_GL)
    return solver(planted.problem, key=jax.random.key(0))


def test_gl_attaches_the_profile_for_large_n_and_counts_it_apart(gl_with_profile, tmp_path):
    spec = gl_with_profile
    record = spec.solver["degree_profile"]
    assert record["evaluations"] == 2048
    assert spec.solver["evaluations"] == sum(spec.solver["evaluations_by_stage"].values())
    profile = spec.degree_profile()
    truth = np.array([0.25, 1.0, 0.64, 0.36, 0.0])
    assert covered(profile, truth).all()
    assert "whole spectrum (2048 extra masks): " in spec.summary() and "in pairs" in spec.summary()
    for name in ("s.json", "s.npz"):
        back = asj.Spectrum.load(spec.save(tmp_path / name))
        np.testing.assert_allclose(back.degree_profile().weights, profile.weights)
    # the report gets a section
    from actspec_jax.reports.report import Report, add_degree_profile_section

    report = Report(tmp_path / "rep", "t")
    add_degree_profile_section(report, spec)
    report.write()
    assert "Degree profile of the whole spectrum" in (tmp_path / "rep" / "summary.md").read_text()


def test_gl_profile_can_be_turned_off_and_is_not_added_for_small_or_paper_problems():
    planted = synthetic.sparse_polynomial(25, {(3,): 1.0})
    off = asj.GoldreichLevin(tau=0.3, degree_profile=False, **CHEAP_GL)(
        planted.problem, key=jax.random.key(0)
    )
    assert "degree_profile" not in off.solver and off.degree_profile() is None
    small = synthetic.sparse_polynomial(12, {(3,): 1.0, (4, 5): 0.5})
    spec = asj.GoldreichLevin(tau=0.3, **CHEAP_GL)(small.problem, key=jax.random.key(0))
    assert "degree_profile" not in spec.solver
    forced = asj.GoldreichLevin(tau=0.3, degree_profile=True, profile_evaluations=256, **CHEAP_GL)
    assert forced(small.problem, key=jax.random.key(0)).solver["degree_profile"]["evaluations"] == 256


def test_gl_refuses_bad_profile_settings_before_searching():
    planted = synthetic.sparse_polynomial(25, {(3,): 1.0})
    with pytest.raises(DegreeProfileError, match="minimum of 64"):
        asj.GoldreichLevin(tau=0.3, profile_evaluations=10)(planted.problem, key=jax.random.key(0))
    with pytest.raises(DegreeProfileError, match="None \\(auto\\), True or False"):
        asj.GoldreichLevin(tau=0.3, degree_profile="yes")(planted.problem, key=jax.random.key(0))


def test_a_negative_point_estimate_is_shown_inside_its_interval_and_flagged():
    from actspec_jax.solvers.common.degree_profile import shown_share

    assert shown_share(-0.017, 0.0, 0.091) == (0.0, True)
    assert shown_share(0.05, 0.0, 0.091) == (0.05, False)
    planted = synthetic.sparse_polynomial(12, {(3,): 1.0, (1, 2): 0.05})
    profile = asj.estimate_degree_profile(planted.problem, key=jax.random.key(0), num_evaluations=256)
    text = profile.table()
    shares = profile.arrays(0)
    clipped = any(
        shown_share(e, lo, hi)[1]
        for e, lo, hi in zip(shares["shares"], shares["share_lower"], shares["share_upper"], strict=True)
    )
    assert ("* the unbiased point estimate fell outside" in text) == clipped
    assert "(shares rounded)" in profile.headline()
