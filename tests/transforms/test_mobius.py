"""Möbius transforms and Fourier ↔ Möbius conversions against explicit float64 sums."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actspec_jax.errors import ActSpecError
from actspec_jax.problems.base import FunctionProblem
from actspec_jax.solvers.exact.solver import ExactSolver, exact_value_table
from actspec_jax.spectrum import Spectrum
from actspec_jax.transforms import mobius as mob
from actspec_jax.transforms.indexing import packed_from_tuples, subset_to_index


def _bits(k: int, n: int) -> set[int]:
    return {i for i in range(n) if (k >> i) & 1}


def _game_from_fourier(fourier: np.ndarray, n: int) -> np.ndarray:
    """g[T] = f(x), x_i = +1 iff i ∈ T, by the explicit character sum."""
    out = np.zeros(1 << n)
    for t in range(1 << n):
        x = np.array([1.0 if (t >> i) & 1 else -1.0 for i in range(n)])
        for r in range(1 << n):
            out[t] += fourier[r] * np.prod([x[i] for i in _bits(r, n)])
    return out


def _moebius_brute(g: np.ndarray, n: int) -> np.ndarray:
    a = np.zeros(1 << n)
    for t in range(1 << n):
        for u in range(1 << n):
            if u & ~t == 0:
                a[t] += (-1) ** (len(_bits(t, n)) - len(_bits(u, n))) * g[u]
    return a


@pytest.mark.parametrize("method", ["kronecker", "radix2"])
def test_dense_transforms_match_explicit_sums(method: str) -> None:
    n = 5
    rng = np.random.default_rng(1)
    fourier = rng.normal(size=1 << n)
    g = _game_from_fourier(fourier, n)
    a = _moebius_brute(g, n)
    with jax.enable_x64(True):
        kw = {"method": method, "block_bits": 2}
        np.testing.assert_allclose(mob.moebius_transform(g, **kw), a, atol=1e-10)
        np.testing.assert_allclose(mob.inverse_moebius_transform(a, **kw), g, atol=1e-10)
        np.testing.assert_allclose(mob.fourier_to_moebius_dense(fourier, **kw), a, atol=1e-10)
        np.testing.assert_allclose(mob.moebius_to_fourier_dense(a, **kw), fourier, atol=1e-12)
        sub = [sum(g[u] for u in range(1 << n) if u & ~t == 0) for t in range(1 << n)]
        sup = [sum(g[r] for r in range(1 << n) if t & ~r == 0) for t in range(1 << n)]
        np.testing.assert_allclose(mob.subset_sum(g, **kw), sub, atol=1e-10)
        np.testing.assert_allclose(mob.superset_sum(g, **kw), sup, atol=1e-10)


def test_dense_transforms_batch_dtype_and_jit() -> None:
    n = 6
    x = jax.random.normal(jax.random.key(0), (3, 2, 1 << n))
    out = jax.jit(mob.moebius_transform)(x)
    assert out.shape == x.shape and out.dtype == jnp.float32
    for i, j in itertools.product(range(3), range(2)):
        np.testing.assert_allclose(out[i, j], mob.moebius_transform(x[i, j]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mob.inverse_moebius_transform(out), x, rtol=1e-4, atol=1e-4)
    back = mob.moebius_to_fourier_dense(mob.fourier_to_moebius_dense(x, method="radix2"))
    np.testing.assert_allclose(back, x, rtol=1e-4, atol=1e-4)


def test_game_table_links_value_table_and_fourier() -> None:
    n = 6
    w = jax.random.normal(jax.random.key(3), (n,))
    problem = FunctionProblem(lambda x: jnp.tanh(x @ w) + x[:, 0] * x[:, 4], n)
    values = exact_value_table(problem)[0]
    g = mob.game_table(values)
    for t in (0, 5, 17, (1 << n) - 1):
        x = jnp.where(jnp.asarray([(t >> i) & 1 for i in range(n)]) == 1, 1.0, -1.0)[None]
        np.testing.assert_allclose(g[t], problem.evaluate(x)[0], rtol=1e-6)
    dense = ExactSolver().dense(problem)
    np.testing.assert_allclose(
        mob.moebius_transform(g), mob.fourier_to_moebius_dense(dense), rtol=1e-4, atol=1e-4
    )


def _random_terms(rng: np.random.Generator, n: int, num: int, max_deg: int) -> dict:
    terms = {}
    while len(terms) < num:
        d = int(rng.integers(0, max_deg + 1))
        terms[tuple(sorted(rng.choice(n, d, replace=False).tolist()))] = float(rng.normal())
    return terms


def test_sparse_conversions_match_dense() -> None:
    n = 7
    rng = np.random.default_rng(2)
    terms = _random_terms(rng, n, 12, 5)
    spec = Spectrum.from_dict(terms, n)
    fourier = np.zeros(1 << n)
    for s, c in terms.items():
        fourier[subset_to_index(s)] = c
    with jax.enable_x64(True):
        dense_a = np.asarray(mob.fourier_to_moebius_dense(fourier))
    sparse_a = mob.fourier_to_moebius_sparse(spec)
    got = np.zeros(1 << n)
    for s, c in sparse_a.to_dict().items():
        got[subset_to_index(s)] = c
    np.testing.assert_allclose(got, dense_a, atol=1e-12)
    back = mob.moebius_to_fourier_sparse(sparse_a).to_dict()
    for s in set(back) | set(terms):
        assert back.get(s, 0.0) == pytest.approx(terms.get(s, 0.0), abs=1e-12)


def test_sparse_moebius_reproduces_the_game_at_large_n() -> None:
    """n = 70 spans three packed words; g(T) = Σ_{U⊆T} a(U) must equal f at the coalition."""
    n = 70
    rng = np.random.default_rng(4)
    terms = _random_terms(rng, n, 15, 4)
    terms[(3, 33, 65)] = 0.7
    spec = Spectrum.from_dict(terms, n)
    a = mob.fourier_to_moebius_sparse(spec).to_dict()
    assert len(a) > len(terms) and a[(3, 33, 65)] == pytest.approx(8 * 0.7)
    coalitions = rng.random((20, n)) < 0.5
    for z in coalitions:
        members = set(np.flatnonzero(z).tolist())
        g = sum(c for s, c in a.items() if set(s) <= members)
        f = float(spec.evaluate(jnp.where(jnp.asarray(z), 1.0, -1.0)[None])[0])
        assert g == pytest.approx(f, abs=1e-4)


def test_sparse_terms_from_dict_validates() -> None:
    with pytest.raises(ActSpecError, match=r"0\.\.n−1"):
        mob.SparseTerms.from_dict({(0, 5): 1.0}, 4)


def test_bad_inputs_raise_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ActSpecError, match="length 2"):
        mob.moebius_transform(jnp.ones(12))
    with pytest.raises(ActSpecError, match="length 2"):
        mob.game_table(jnp.ones(6))
    with pytest.raises(ActSpecError, match="unknown method"):
        mob.superset_sum(jnp.ones(8), method="fast")
    # a spectrum whose subsets name neuron 6 but claims n = 5
    bad = Spectrum(n=5, subsets=packed_from_tuples([(1, 6)], 7), coefficients=np.ones(1))
    with pytest.raises(ActSpecError, match="exceed the problem's size"):
        mob.fourier_to_moebius_sparse(bad)
    monkeypatch.setattr(mob, "MAX_SPARSE_EXPANSION", 100)
    big = Spectrum.from_dict({tuple(range(8)): 1.0}, 10)
    with pytest.raises(ActSpecError, match="more than 100"):
        mob.fourier_to_moebius_sparse(big)
