"""Cost matrices, grouping into sub-networks, capture of representations, heatmap."""

from __future__ import annotations

import itertools

import flax.linen as nn
import jax
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.spatial.distance import cdist

import actspec_jax as asj
from actspec_jax.errors import ActSpecError, UnknownLayerError
from actspec_jax.layers import (
    capture_representations,
    cluster_layers,
    cost_matrix,
    layer_similarity,
    plot_layer_matrix,
    pool_tokens,
    segment_layers,
)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_cost_matrix_matches_scipy(metric):
    x = np.random.default_rng(0).normal(size=(12, 5))
    expected = cdist(x, x, metric=metric)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(
        np.asarray(cost_matrix(x, metric=metric, normalize="none")), expected, atol=2e-5
    )
    off = expected[~np.eye(12, dtype=bool)]
    for normalize, scale in (("max", off.max()), ("mean", off.mean()), ("median", np.median(off))):
        C = np.asarray(cost_matrix(7.0 * x, metric=metric, normalize=normalize))
        np.testing.assert_allclose(C, expected / scale, rtol=2e-4, atol=2e-5)


def test_cost_matrix_errors():
    with pytest.raises(ActSpecError, match="metric"):
        cost_matrix(np.zeros((3, 2)), metric="manhattan")
    with pytest.raises(ActSpecError, match="normalisation"):
        cost_matrix(np.zeros((3, 2)), normalize="sum")
    with pytest.raises(ActSpecError, match="pool"):
        cost_matrix(np.zeros((3, 2, 2)))


def _blocks(sizes, rng):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    D = np.where(labels[:, None] == labels[None], 0.1, 1.0) + 0.05 * rng.uniform(size=(len(labels),) * 2)
    D = (D + D.T) / 2
    np.fill_diagonal(D, 0)
    return D, labels


def test_cluster_and_segment_recover_blocks():
    D, labels = _blocks([3, 2, 4], np.random.default_rng(1))
    assert np.array_equal(cluster_layers(D, 3), labels)
    seg = segment_layers(D, 3)
    assert np.array_equal(seg.labels, labels) and seg.boundaries == (0, 3, 5)
    assert np.all(np.diff(seg.cost_by_groups) <= 1e-12)  # more segments never cost more


def test_segmentation_is_optimal_against_brute_force():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, 3))
    D = cdist(x, x, "sqeuclidean")
    for g in (1, 2, 3, 4):
        best = np.inf
        for cuts in itertools.combinations(range(1, 7), g - 1):
            bounds = [0, *cuts, 7]
            cost = 0.0
            for s, e in itertools.pairwise(bounds):
                block = D[s:e, s:e]
                cost += np.triu(block, 1).sum() / (e - s)
                # equals the k-means scatter for squared Euclidean distances
                assert np.triu(block, 1).sum() / (e - s) == pytest.approx(
                    ((x[s:e] - x[s:e].mean(0)) ** 2).sum()
                )
            best = min(best, cost)
        assert segment_layers(D, g).cost == pytest.approx(best)


def test_grouping_errors():
    with pytest.raises(ActSpecError, match="at least 2 layers"):
        layer_similarity({"relu_0": np.zeros((5, 3))})
    with pytest.raises(ActSpecError, match="at least 2 layers"):
        segment_layers(np.zeros((1, 1)), 1)
    with pytest.raises(ActSpecError, match="at least 2 layers"):
        cluster_layers(np.zeros((1, 1)), 1)
    with pytest.raises(ActSpecError, match="num_groups"):
        segment_layers(np.zeros((3, 3)), 4)
    with pytest.raises(ActSpecError, match="symmetric"):
        cluster_layers(np.array([[0.0, 1.0], [2.0, 0.0]]), 2)


class _Relu(nn.Module):
    @nn.compact
    def __call__(self, x):
        return jax.nn.relu(x)


class _TokenNet(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        h = nn.Embed(10, 4, name="embed")(tokens)
        h = _Relu(name="act")(nn.Dense(6, name="fc")(h))
        return nn.Dense(2, name="out")(h.mean(axis=1))


def test_capture_matches_cuts_and_pooling():
    module = _TokenNet()
    tokens = jax.random.randint(jax.random.key(0), (5, 4), 0, 10)
    variables = module.init(jax.random.key(1), tokens)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], np.float32)
    reps = capture_representations(module, variables, tokens, ["fc", "act", "out"], token_mask=mask)
    act = np.asarray(asj.cut_linen(module, variables, "act").activations(tokens))
    expected = (act * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(reps["act"], expected, rtol=1e-5, atol=1e-6)
    assert reps["out"].shape == (5, 2)
    batched = capture_representations(module, variables, tokens, ["act"], token_mask=mask, batch_size=2)
    np.testing.assert_allclose(batched["act"], reps["act"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(pool_tokens(act, "cls")), act[:, 0])
    np.testing.assert_allclose(
        np.asarray(pool_tokens(act, "last", token_mask=mask)), act[[0, 1, 2, 3, 4], [1, 3, 0, 2, 3]]
    )
    assert pool_tokens(act, "flatten").shape == (5, 24)
    with pytest.raises(UnknownLayerError, match="fc"):
        capture_representations(module, variables, tokens, ["act", "nope"])
    with pytest.raises(ActSpecError, match="pooling"):
        capture_representations(module, variables, tokens, ["act"], pooling="max")


def test_heatmap_figure():
    D, labels = _blocks([2, 2], np.random.default_rng(3))
    fig = plot_layer_matrix(
        D, ["a", "b", "c", "d"], title="t", value_label="GW", groups=labels, segments=(0, 2)
    )
    assert isinstance(fig, Figure)
