"""Faithfulness metrics: held-out R² under both protocols and the top-k curve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actspec_jax.analysis import metrics
from actspec_jax.errors import ActSpecError
from actspec_jax.problems.synthetic import random_sparse_polynomial, sparse_polynomial
from actspec_jax.spectrum import Spectrum
from actspec_jax.transforms.indexing import packed_from_tuples


def test_size_stratified_masks_have_uniform_sizes() -> None:
    n, m = 12, 26_000
    masks = metrics.size_stratified_masks(jax.random.key(0), m, n)
    assert masks.shape == (m, n) and masks.dtype == jnp.float32
    assert set(np.unique(np.asarray(masks)).tolist()) == {-1.0, 1.0}
    sizes = np.asarray((masks > 0).sum(axis=1))
    counts = np.bincount(sizes, minlength=n + 1)
    expected = m / (n + 1)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))  # all sizes 0..n, equally often
    # given the size, every neuron is equally likely to be kept
    per_neuron = np.asarray((masks > 0).mean(axis=0))
    assert np.allclose(per_neuron, 0.5, atol=0.02)
    again = metrics.size_stratified_masks(jax.random.key(0), m, n)
    assert np.array_equal(np.asarray(masks), np.asarray(again))


def test_protocols_differ_and_exact_spectra_score_one() -> None:
    n = 10
    planted = sparse_polynomial(n, {(0, 1): 1.0, (2,): 0.5, (3, 4, 5): -0.8, (): 0.2})
    full = Spectrum.from_dict(planted.truth, n)
    for protocol in ("uniform", "size"):
        r2 = metrics.faithfulness(
            full, planted.problem, key=jax.random.key(1), num_masks=4096, protocol=protocol
        )
        assert r2 == pytest.approx(1.0, abs=1e-6)
    partial = Spectrum.from_dict({(0, 1): 1.0, (): 0.2}, n)
    uni = metrics.faithfulness(partial, planted.problem, key=jax.random.key(1), num_masks=4096)
    by_size = metrics.faithfulness_r2_by_size(partial, planted.problem, key=jax.random.key(1), num_masks=4096)
    # both estimate 1.0 / (1.0 + 0.25 + 0.64) under uniform masks; the size protocol weights
    # extreme coalitions, where parities of odd and even degree behave differently
    assert uni == pytest.approx(1.0 / 1.89, abs=0.05)
    assert abs(by_size - uni) > 0.02


def test_faithfulness_curve_matches_truncations() -> None:
    n = 9
    planted = random_sparse_polynomial(jax.random.key(2), n, 12, max_degree=3, min_abs=0.1)
    spec = Spectrum.from_dict(planted.truth, n)
    problem = planted.problem
    curve = metrics.faithfulness_curve(spec, problem, key=jax.random.key(3), num_masks=1024)
    counts, r2 = curve["num_terms"], curve["r2"]
    assert counts[0] == 0 and counts[-1] == spec.num_terms
    for k, value in zip(counts, r2):
        if k not in (1, 8, spec.num_terms):
            continue
        direct = metrics.faithfulness(spec.top(int(k)), problem, key=jax.random.key(3), num_masks=1024)
        assert value == pytest.approx(direct, abs=1e-4)
    assert r2[-1] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(r2[1:]) > -0.05)  # adding the next-largest terms rarely hurts
    chosen = metrics.faithfulness_curve(
        spec, problem, key=jax.random.key(3), num_terms=[3, 5], protocol="size"
    )
    assert chosen["num_terms"].tolist() == [3, 5]


def test_bad_inputs() -> None:
    planted = sparse_polynomial(4, {(0, 1): 1.0})
    spec = Spectrum.from_dict(planted.truth, 4)
    with pytest.raises(ActSpecError, match="unknown protocol"):
        metrics.faithfulness(spec, planted.problem, key=jax.random.key(0), protocol="shapley")
    other = Spectrum.from_dict({(0, 5): 1.0}, 6)
    with pytest.raises(ActSpecError, match="different problem"):
        metrics.faithfulness(other, planted.problem, key=jax.random.key(0))
    bad = Spectrum(n=4, subsets=packed_from_tuples([(0, 6)], 7), coefficients=np.ones(1))
    with pytest.raises(ActSpecError, match="exceed the problem's size"):
        metrics.faithfulness_curve(bad, planted.problem, key=jax.random.key(0))
    with pytest.raises(ActSpecError, match="num_terms must lie"):
        metrics.faithfulness_curve(spec, planted.problem, key=jax.random.key(0), num_terms=[5])
