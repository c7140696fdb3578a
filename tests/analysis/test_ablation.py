"""Faithfulness curves: orderings, Δ(k) against direct evaluation, attribution against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.analysis.ablation import (
    FaithfulnessCurve,
    attribution_scores,
    faithfulness_curve,
    greedy_spectral_order,
    predicted_drop,
    ranking_order,
    single_ablation_drops,
    spectral_order,
)


def _poly(x):
    # f = 2 x0 x1 − 0.5 x2 + 0.25 x3 x4 x1 + 1  (x: ±1 masks, +1 = kept)
    return 2 * x[:, 0] * x[:, 1] - 0.5 * x[:, 2] + 0.25 * x[:, 3] * x[:, 4] * x[:, 1] + 1.0


def test_predicted_drop_of_an_exact_spectrum_is_the_measured_drop(rng):
    problem = asj.FunctionProblem(_poly, 6)
    spec = asj.ExactSolver()(problem)
    sets = rng.random((20, 6)) < 0.4
    masks = np.where(sets, -1.0, 1.0).astype(np.float32)
    measured = float(_poly(np.ones((1, 6), np.float32))[0]) - np.asarray(_poly(masks))
    np.testing.assert_allclose(predicted_drop(spec, sets), measured, atol=1e-5)


def test_spectral_orders_follow_the_predicted_drops():
    spec = asj.ExactSolver()(asj.FunctionProblem(_poly, 6))
    # predicted drops of ablating each subset alone: {1,3,4}: 2·2 + 2·0.25 = 4.5; {0,1}: 2·0.25 = 0.5;
    # {2}: −1 (ablating it raises f, so it is left out)
    order, bounds = spectral_order(spec)
    assert order == [1, 3, 4, 0] and bounds == [3, 4]
    assert spectral_order(spec, max_subsets=1)[0] == [1, 3, 4]
    by_size, size_bounds = spectral_order(spec, rank="magnitude")
    assert by_size == [1, 0, 2, 3, 4] and size_bounds == [2, 3, 5]
    mapped, _ = spectral_order(spec, units=[10, 11, 12, 13, 14, 15])
    assert mapped == [11, 13, 14, 10]
    # greedy: 1 (drop 4.5), then 3 (4.0; ties with 4 go to the lower index), 4 (4.5), 2 (3.5), 0 (−0.5)
    assert greedy_spectral_order(spec, 5) == [1, 3, 4, 2, 0]
    assert greedy_spectral_order(spec, 2) == [1, 3]
    with pytest.raises(asj.ActSpecError, match="units lists"):
        spectral_order(spec, units=[1, 2])
    with pytest.raises(asj.ActSpecError, match="rank must be"):
        spectral_order(spec, rank="size")


def test_ranking_order_by_value_or_magnitude():
    assert ranking_order([0.1, -3.0, 0.5, 3.0]) == [3, 2, 0, 1]
    assert ranking_order([0.1, -3.0, 0.5, 3.0], by="magnitude") == [1, 3, 2, 0]


def test_curve_matches_direct_evaluation_and_is_reproducible():
    n = 6
    problem = asj.FunctionProblem(_poly, n)
    orders = {"a": [2, 0, 1], "b": [5, 4, 3, 2, 1, 0]}
    curve = faithfulness_curve(problem, orders, ks=[0, 1, 2, 3, 6], key=jax.random.key(3), num_random=4)
    ones = np.ones((1, n), np.float32)
    base = float(_poly(ones)[0])
    assert curve.baseline == pytest.approx(base)
    for name, order in orders.items():
        for j, k in enumerate(curve.ks):
            if k > len(order):
                assert np.isnan(curve.drops[name][j])
                continue
            x = ones.copy()
            x[0, order[:k]] = -1
            assert curve.drops[name][j] == pytest.approx(base - float(_poly(x)[0]), abs=1e-6)
    again = faithfulness_curve(problem, orders, ks=[0, 1, 2, 3, 6], key=jax.random.key(3), num_random=4)
    np.testing.assert_array_equal(curve.random_drops, again.random_drops)
    assert curve.random_drops.shape == (4, 5) and np.all(curve.random_drops[:, 0] == 0)
    # every random ordering ablates everything at k = n
    np.testing.assert_allclose(curve.random_drops[:, -1], curve.drops["b"][-1], atol=1e-6)
    assert curve.at(2)["a"] == pytest.approx(curve.drops["a"][2])
    doc = curve.to_dict()
    assert doc["drops"]["a"][-1] is None and len(doc["random_p90"]) == 5
    back = FaithfulnessCurve.from_dict(doc)
    np.testing.assert_allclose(back.drops["b"], curve.drops["b"])
    np.testing.assert_allclose(back.random_band()[0], curve.random_band()[0])


def test_curve_rejects_bad_input():
    problem = asj.FunctionProblem(_poly, 6)
    key = jax.random.key(0)
    with pytest.raises(asj.ActSpecError, match="ks must be"):
        faithfulness_curve(problem, {"a": [0]}, ks=[0, 7], key=key)
    with pytest.raises(asj.ActSpecError, match="distinct neuron"):
        faithfulness_curve(problem, {"a": [0, 0]}, ks=[1], key=key)
    with pytest.raises(asj.ActSpecError, match="num_random"):
        faithfulness_curve(problem, {"a": [0]}, ks=[1], key=key, num_random=0)
    batched = asj.FunctionProblem(lambda x: jnp.stack([x[:, 0], x[:, 1]], axis=-1), 3)
    with pytest.raises(asj.ActSpecError, match="one output"):
        faithfulness_curve(batched, {"a": [0]}, ks=[1], key=key)


def _linear_cut(weights):
    return asj.cut_functions(lambda p, x: x, lambda p, a: a @ p, jnp.asarray(weights))


def test_attribution_of_a_linear_head_equals_the_measured_drop(rng):
    acts = jnp.asarray(rng.uniform(0.0, 2.0, size=(5, 7)), jnp.float32)
    weights = rng.normal(size=(7, 3)).astype(np.float32)
    for fill in ("zero", "mean"):
        problem = asj.masked_problem(_linear_cut(weights), acts, output="logit:1", fill=fill)
        attr = attribution_scores(problem)
        drops = single_ablation_drops(problem)
        fill_values = 0.0 if fill == "zero" else np.asarray(acts).mean(axis=0)
        expected = ((np.asarray(acts) - fill_values) * weights[:, 1]).mean(axis=0)
        np.testing.assert_allclose(attr, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(drops, expected, rtol=1e-4, atol=1e-5)
    units = asj.masked_problem(_linear_cut(weights), acts, output="logit:1", units=[4, 2])
    zero_fill = (np.asarray(acts) * weights[:, 1]).mean(axis=0)
    np.testing.assert_allclose(attribution_scores(units), zero_fill[[4, 2]], rtol=1e-5)


def test_attribution_needs_a_differentiable_masked_problem(rng):
    acts = jnp.asarray(rng.uniform(size=(4, 3)), jnp.float32)
    indicator = asj.masked_problem(_linear_cut(np.eye(3, dtype=np.float32)), acts, output="indicator:0")
    with pytest.raises(asj.ActSpecError, match="zero gradient"):
        attribution_scores(indicator)
    with pytest.raises(asj.ActSpecError, match="MaskedProblem"):
        attribution_scores(asj.FunctionProblem(_poly, 6))
