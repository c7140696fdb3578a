"""Non-redundancy constraints: prescreen (a), post-check (b), spectral aliasing (c)."""

from __future__ import annotations

from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers.gl.redundancy import predictability


def brute_predictability(x: np.ndarray, others: list[int], j: int) -> float:
    """Pairs of distinct rows that share the pattern of ``others``: mean of x_j(r)·x_j(r')."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in x:
        groups[tuple(row[others])].append(row[j])
    num = den = 0.0
    for values in groups.values():
        v = np.asarray(values)
        num += v.sum() ** 2 - len(v)
        den += len(v) * (len(v) - 1)
    return num / den if den else 0.0


def test_prescreen_matches_its_definition(rng: np.random.Generator) -> None:
    rows, n = 400, 8
    x = rng.choice([-1.0, 1.0], size=(rows, n))
    x[:, 1] = 1.0  # constant (dead or always-on)
    x[:, 4] = -x[:, 2]  # anti-duplicate of 2
    x[:, 6] = np.where(rng.random(rows) < 0.95, x[:, 3], -x[:, 3])  # near-duplicate of 3
    keep, removed = asj.Prescreen(gamma=0.2).apply(x, np.ones(n, bool))
    assert keep.tolist() == [True, False, True, True, False, True, False, True]
    by_neuron = {r["neurons"][0]: r for r in removed}
    assert set(by_neuron) == {1, 4, 6}
    assert "near-constant" in by_neuron[1]["reason"] and by_neuron[1]["statistic"] == pytest.approx(1.0)
    assert by_neuron[4]["related"] == [2] and by_neuron[4]["statistic"] == pytest.approx(1.0)
    assert by_neuron[6]["related"] == [3] and by_neuron[6]["statistic"] > 0.7
    # Brute force: index order, second moments against already kept neurons only.
    kept = []
    for j in range(n):
        if np.mean(x[:, j]) ** 2 > 0.2:
            continue
        if any(np.mean(x[:, j] * x[:, k]) ** 2 > 0.2 for k in kept):
            continue
        kept.append(j)
    assert np.flatnonzero(keep).tolist() == kept


def test_predictability_matches_brute_force(rng: np.random.Generator) -> None:
    rows, n = 300, 7
    x = rng.choice([-1.0, 1.0], size=(rows, n))
    x[:, 5] = x[:, 0] * x[:, 1]  # a function of neurons 0 and 1
    x[:, 6] = np.where(rng.random(rows) < 0.8, 1.0, -1.0)  # independent, biased
    bits = np.zeros((rows, n + 1), np.uint32)
    bits[:, :n] = x > 0
    cases = [
        ([0, 1, 5], 5),
        ([0, 1, 6], 6),
        ([2, 3, 4, 0, 1, 5], 5),
        ([2, 5], 2),
        ([3], 3),
        ([0, 1, 2, 3, 4, 5, 6], 6),
    ]
    depth = 8
    members = np.full((len(cases), depth), n, np.int32)
    new = np.full((len(cases), 2), n, np.int32)
    for row, (subset, j) in enumerate(cases):
        members[row, : len(subset)] = subset
        new[row, 0] = j
    got = np.asarray(predictability(jnp.asarray(bits), jnp.asarray(members), jnp.asarray(new)))
    for row, (subset, j) in enumerate(cases):
        others = [i for i in subset if i != j]
        expected = brute_predictability(x, others, j) if others else 0.0
        assert got[row, 0] == pytest.approx(expected, abs=1e-5), (subset, j)
        assert got[row, 1] == 0.0  # padding slot
    assert got[0, 0] == pytest.approx(1.0)  # deterministic function of the others
    assert got[1, 0] == pytest.approx(np.mean(x[:, 6]) ** 2, abs=0.1)  # independent: ≈ mean²
    # All 7 neurons: 128 patterns over 300 rows, many never occur or occur once — still defined.
    assert np.isfinite(got[-1, 0])


def test_predictability_without_any_shared_pattern() -> None:
    rows, n = 4, 3
    x = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, 1], [-1, -1, 1]], float)
    bits = np.zeros((rows, n + 1), np.uint32)
    bits[:, :n] = x > 0
    got = predictability(
        jnp.asarray(bits), jnp.asarray([[0, 1, 2]], jnp.int32), jnp.asarray([[2]], jnp.int32)
    )
    assert float(got[0, 0]) == 0.0  # every pattern of {0, 1} occurs once: no evidence either way


# --------------------------------------------------------------------------- inside the solver


def _data_problem(acts: np.ndarray, head) -> asj.MaskedProblem:
    cut = asj.cut_functions(lambda p, x: x, head, None, layer="units")
    return asj.MaskedProblem.from_cut(cut, jnp.asarray(acts, jnp.float32), output="indicator:1")


def _parity_head(subset):
    idx = jnp.asarray(subset)

    def head(params, acts, inputs):
        s = jnp.prod(jnp.where(acts[:, idx] > 0, 1.0, -1.0), axis=1)
        return jnp.stack([-s, s], axis=1)

    return head


def test_postcheck_rejects_a_predictable_newest_neuron(rng: np.random.Generator) -> None:
    rows, n = 1000, 12  # the shapes of the paper-estimator tests: kernels compile once
    x = rng.choice([-1.0, 1.0], size=(rows, n))
    x[:, 3] = np.where(rng.random(rows) < 0.9, x[:, 1] * x[:, 2], -x[:, 1] * x[:, 2])
    acts = x * rng.uniform(0.5, 1.5, size=x.shape)
    problem = _data_problem(acts, _parity_head([1, 2, 3]))
    solver = dict(estimator="paper", tau=0.2, num_samples=200)
    plain = asj.GoldreichLevin(**solver, redundancy="none")(problem, key=jax.random.key(0))
    assert (1, 2, 3) in plain.to_dict()
    checked = asj.GoldreichLevin(**solver, redundancy=[asj.PostCheck(delta=0.2)])(
        problem, key=jax.random.key(0)
    )
    assert (1, 2, 3) not in checked.to_dict()
    removed = checked.solver["redundancy"]["removed"]
    hit = [r for r in removed if r["subset"] == [1, 2, 3]]
    assert hit and hit[0]["constraint"] == "postcheck" and hit[0]["neurons"] == [3]
    assert hit[0]["statistic"] == pytest.approx(brute_predictability(x, [1, 2], 3), abs=0.05)
    assert checked.solver["redundancy"]["removed_count"] >= 1


def test_prescreen_in_the_mask_mode_skips_dead_and_duplicate_neurons(rng: np.random.Generator) -> None:
    rows, n = 64, 8
    acts = rng.uniform(0.1, 1.0, size=(rows, n)) * rng.choice([0.0, 1.0], size=(rows, n))
    acts[:, 2] = 0.0  # dead
    acts[:, 6] = acts[:, 5] * 2.0  # duplicate pattern of 5
    weights = jnp.asarray(np.linspace(1.0, 2.0, n), jnp.float32)
    cut = asj.cut_functions(lambda p, x: x, lambda p, a, x: (a @ weights)[:, None] * jnp.ones((1, 2)), None)
    problem = asj.MaskedProblem.from_cut(cut, jnp.asarray(acts), output="logit:0")
    spec = asj.GoldreichLevin(tau=0.05, order="index", block_size=1, redundancy=[asj.Prescreen(0.2)])(
        problem, key=jax.random.key(0)
    )
    removed = {r["neurons"][0]: r for r in spec.solver["redundancy"]["removed"]}
    assert 2 in removed and "near-constant" in removed[2]["reason"]
    assert 6 in removed and removed[6]["related"] == [5]
    assert 2 not in spec.solver["search_order"] and 6 not in spec.solver["search_order"]
    assert all(not ({2, 6} & set(s)) for s in spec.to_dict())


def test_spectral_aliasing_with_a_given_similarity() -> None:
    planted = synthetic.sparse_polynomial(6, {(0,): 1.0, (1,): 0.9, (0, 2): 0.6, (1, 2): 0.55, (3,): 0.8})
    sim = np.eye(6)
    sim[0, 1] = sim[1, 0] = 0.9
    spec = asj.GoldreichLevin(tau=0.1, redundancy=[asj.SpectralAliasing(gamma=0.2, similarity=sim)])(
        planted.problem, key=jax.random.key(0)
    )
    found = spec.to_dict()
    assert (0,) in found and (0, 2) in found and (3,) in found
    assert (1,) not in found and (1, 2) not in found
    aliases = {tuple(r["subset"]): r for r in spec.solver["redundancy"]["removed"]}
    assert aliases[(1,)]["alias_of"] == [0] and aliases[(1,)]["coefficient"] == pytest.approx(0.9, abs=1e-3)
    assert aliases[(1, 2)]["alias_of"] == [0, 2]
    assert all(r["constraint"] == "spectral_aliasing" for r in aliases.values())


def test_spectral_aliasing_from_activations(rng: np.random.Generator) -> None:
    rows, n = 64, 6
    acts = rng.uniform(0.2, 1.0, size=(rows, n)) * rng.choice([0.0, 1.0], size=(rows, n))
    acts[:, 4] = acts[:, 1]  # neuron 4 duplicates neuron 1
    weights = jnp.asarray([0.3, 1.0, 0.0, -0.8, 1.1, 0.0], jnp.float32)
    cut = asj.cut_functions(lambda p, x: x, lambda p, a, x: (a @ weights)[:, None] * jnp.ones((1, 2)), None)
    problem = asj.MaskedProblem.from_cut(cut, jnp.asarray(acts), output="logit:0")
    spec = asj.GoldreichLevin(tau=0.1, redundancy=[asj.SpectralAliasing(0.2)])(problem, key=jax.random.key(0))
    found = spec.to_dict()
    assert (4,) in found and (1,) not in found  # keeps the heavier of the two duplicates
    (record,) = [r for r in spec.solver["redundancy"]["removed"] if r["constraint"] == "spectral_aliasing"]
    assert record["subset"] == [1] and record["alias_of"] == [4]


def test_constraints_need_activations() -> None:
    planted = synthetic.parity(6, [0, 1])
    with pytest.raises(asj.ActSpecError, match="activations"):
        asj.GoldreichLevin(redundancy=[asj.Prescreen()])(planted.problem, key=jax.random.key(0))
    with pytest.raises(asj.ActSpecError, match="gamma must be in"):
        asj.Prescreen(gamma=1.5)
    with pytest.raises(asj.ActSpecError, match="at most once"):
        asj.GoldreichLevin(redundancy=[asj.Prescreen(), asj.Prescreen()]).settings()
