"""Every index against a brute-force evaluation of its textbook definition (float64)."""

from __future__ import annotations

import itertools
from math import comb, factorial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actspec_jax.analysis import indices as ix
from actspec_jax.errors import ActSpecError
from actspec_jax.problems.base import FunctionProblem
from actspec_jax.solvers.exact.solver import ExactSolver
from actspec_jax.spectrum import Spectrum, SpectrumBatch
from actspec_jax.transforms.indexing import packed_from_tuples, subset_to_index, subsets_from_indices

# --------------------------------------------------------------------------- brute force


def game_table(fourier: np.ndarray, n: int) -> np.ndarray:
    """g[T] (T = bitmask of present players) = Σ_R f̂(R) ∏_{i∈R} x_i, x_i = +1 iff i ∈ T."""
    idx = np.arange(1 << n)
    x = np.where((idx[:, None] >> np.arange(n)) & 1, 1.0, -1.0)  # [T, i]
    member = (idx[:, None] >> np.arange(n)) & 1  # [R, i]
    chi = np.prod(np.where(member[None, :, :] == 1, x[:, None, :], 1.0), axis=2)  # [T, R]
    return chi @ fourier


class Brute:
    """Textbook definitions evaluated literally on the game table."""

    def __init__(self, g: np.ndarray, n: int) -> None:
        self.g, self.n = g, n
        self.players = range(n)

    def v(self, members) -> float:
        return self.g[subset_to_index(members)]

    def delta(self, s: tuple, t: tuple) -> float:
        """Discrete derivative Δ_S g(T) = Σ_{L⊆S} (−1)^{|S|−|L|} g(T ∪ L)."""
        return sum(
            (-1) ** (len(s) - len(sub)) * self.v(set(t) | set(sub))
            for r in range(len(s) + 1)
            for sub in itertools.combinations(s, r)
        )

    def outside(self, s: tuple):
        rest = [j for j in self.players if j not in s]
        for r in range(len(rest) + 1):
            yield from itertools.combinations(rest, r)

    def subsets(self, k: int, start: int = 0):
        for s in range(start, k + 1):
            yield from itertools.combinations(self.players, s)

    def shapley(self) -> np.ndarray:  # Shapley 1953
        n = self.n
        return np.array(
            [
                sum(
                    factorial(len(t)) * factorial(n - len(t) - 1) / factorial(n) * self.delta((i,), t)
                    for t in self.outside((i,))
                )
                for i in self.players
            ]
        )

    def banzhaf(self) -> np.ndarray:  # Banzhaf 1965
        return np.array(
            [sum(self.delta((i,), t) for t in self.outside((i,))) / 2 ** (self.n - 1) for i in self.players]
        )

    def sii(self, k: int) -> dict:  # Grabisch & Roubens 1999
        n = self.n
        return {
            s: sum(
                factorial(n - len(t) - len(s))
                * factorial(len(t))
                / factorial(n - len(s) + 1)
                * self.delta(s, t)
                for t in self.outside(s)
            )
            for s in self.subsets(k)
        }

    def bii(self, k: int) -> dict:
        return {
            s: sum(self.delta(s, t) for t in self.outside(s)) / 2 ** (self.n - len(s))
            for s in self.subsets(k)
        }

    def ksii(self, k: int) -> dict:  # Bordt & von Luxburg 2023: Bernoulli aggregation of SII
        bern = [1.0, -0.5, 1 / 6, 0.0, -1 / 30, 0.0, 1 / 42][: k + 1]
        sii = self.sii(k)
        out = {(): self.v(())}
        for s in self.subsets(k, 1):
            out[s] = sum(bern[len(big) - len(s)] * val for big, val in sii.items() if set(s) <= set(big))
        return out

    def stii(self, k: int) -> dict:  # Sundararajan et al. 2020
        n = self.n
        out = {s: self.delta(s, ()) for s in self.subsets(k - 1)}
        for s in itertools.combinations(self.players, k):
            out[s] = k / n * sum(self.delta(s, t) / comb(n - 1, len(t)) for t in self.outside(s))
        return out

    def _design(self, k: int) -> tuple[list, np.ndarray]:
        cols = list(self.subsets(k))
        x = np.array([[float(set(c) <= _members(t, self.n)) for c in cols] for t in range(1 << self.n)])
        return cols, x

    def fsii(self, k: int) -> dict:
        """Tsai et al. 2023: Shapley-kernel weighted least squares, g(∅) and g(N) fitted exactly."""
        n = self.n
        cols, x = self._design(k)
        sizes = np.array([len(_members(t, n)) for t in range(1 << n)])
        inner = (sizes > 0) & (sizes < n)
        mu = np.zeros(1 << n)
        mu[inner] = (n - 1) / (
            np.array([comb(n, s) for s in sizes[inner]]) * sizes[inner] * (n - sizes[inner])
        )
        a_eq = x[[0, (1 << n) - 1]]
        b_eq = self.g[[0, (1 << n) - 1]]
        m = len(cols)
        kkt = np.block([[2 * x.T @ (mu[:, None] * x), a_eq.T], [a_eq, np.zeros((2, 2))]])
        rhs = np.concatenate([2 * x.T @ (mu * self.g), b_eq])
        sol = np.linalg.solve(kkt, rhs)[:m]
        return dict(zip(cols, sol))

    def fbii(self, k: int) -> dict:
        """Tsai et al. 2023: uniformly weighted least squares over all coalitions."""
        cols, x = self._design(k)
        sol = np.linalg.lstsq(x, self.g, rcond=None)[0]
        return dict(zip(cols, sol))

    def moebius(self, k: int) -> dict:
        return {s: self.delta(s, ()) for s in self.subsets(k)}


def _members(t: int, n: int) -> set[int]:
    return {i for i in range(n) if (t >> i) & 1}


def dense_spectrum(fourier: np.ndarray, n: int) -> Spectrum:
    return Spectrum(
        n=n, subsets=subsets_from_indices(np.arange(1 << n), n), coefficients=fourier, dense=fourier
    )


def _assert_dicts(ours: dict, truth: dict, tol: float = 1e-9) -> None:
    for key, val in truth.items():
        assert ours.get(key, 0.0) == pytest.approx(val, abs=tol), key
    extra = {key for key in set(ours) - set(truth) if abs(ours[key]) > tol}
    assert not extra, f"unexpected non-zero keys {sorted(extra)[:5]}"


CASES = [
    ("SII", 2),
    ("SII", 3),
    ("BII", 2),
    ("k-SII", 2),
    ("k-SII", 3),
    ("STII", 2),
    ("STII", 3),
    ("FSII", 2),
    ("FSII", 3),
    ("FBII", 2),
    ("FBII", 3),
    ("Moebius", 3),
]


@pytest.fixture(scope="module")
def random_game():
    n = 7
    fourier = np.random.default_rng(11).normal(size=1 << n) / np.sqrt(1 << n)
    g = game_table(fourier, n)
    return n, fourier, Brute(g, n)


@pytest.mark.parametrize("source", ["dense", "terms"])
@pytest.mark.parametrize(("index", "order"), CASES)
def test_indices_match_textbook_definitions(random_game, index: str, order: int, source: str) -> None:
    n, fourier, brute = random_game
    truth = {
        "SII": brute.sii,
        "BII": brute.bii,
        "k-SII": brute.ksii,
        "STII": brute.stii,
        "FSII": brute.fsii,
        "FBII": brute.fbii,
        "Moebius": brute.moebius,
    }[index](order)
    with jax.enable_x64(True):
        ours = ix.interaction_index(dense_spectrum(fourier, n), index, order, source=source)
    _assert_dicts(ours, truth)


@pytest.mark.parametrize("source", ["dense", "terms"])
def test_shapley_and_banzhaf_match_definitions(random_game, source: str) -> None:
    n, fourier, brute = random_game
    spec = dense_spectrum(fourier, n)
    with jax.enable_x64(True):
        sv = ix.shapley_values(spec, source=source)
        bv = ix.banzhaf_values(spec, source=source)
        sv_dict = ix.interaction_index(spec, "SV", source=source)
    np.testing.assert_allclose(sv, brute.shapley(), atol=1e-10)
    np.testing.assert_allclose(bv, brute.banzhaf(), atol=1e-10)
    np.testing.assert_allclose(bv, 2 * fourier[[1 << i for i in range(n)]], atol=1e-12)
    assert sv_dict[()] == pytest.approx(brute.v(()))
    assert [sv_dict[(i,)] for i in range(n)] == pytest.approx(list(sv), abs=1e-12)


def test_sparse_spectrum_indices_are_exact_for_its_function() -> None:
    """A spectrum without a dense array: indices of Σ_listed f̂(R) χ_R, checked by brute force."""
    n = 8
    terms = {(): 0.3, (1,): -0.5, (0, 3): 0.8, (2, 5, 7): 1.1, (1, 2, 4, 6): -0.7, (0, 1, 2, 3, 4): 0.4}
    spec = Spectrum.from_dict(terms, n)
    fourier = np.zeros(1 << n)
    for s, c in terms.items():
        fourier[subset_to_index(s)] = c
    brute = Brute(game_table(fourier, n), n)
    np.testing.assert_allclose(ix.shapley_values(spec), brute.shapley(), atol=1e-12)
    _assert_dicts(
        ix.interaction_index(spec, "k-SII", 2), {k: v for k, v in brute.ksii(2).items() if abs(v) > 1e-14}
    )
    _assert_dicts(
        ix.interaction_index(spec, "FSII", 2), {k: v for k, v in brute.fsii(2).items() if abs(v) > 1e-12}
    )
    assert ix.empty_value(spec) == pytest.approx(brute.v(()))
    assert ix.full_value(spec) == pytest.approx(brute.v(range(n)))


def test_exact_solver_spectrum_gives_exact_shapley_values() -> None:
    n = 6
    w = jax.random.normal(jax.random.key(5), (n,))
    problem = FunctionProblem(lambda x: jnp.tanh(x @ w) * x[:, 1] + x[:, 2] * x[:, 3] * x[:, 4], n)
    spec = ExactSolver(top_k=8)(problem)  # sparse list truncated; dense attached
    brute = Brute(game_table(np.asarray(spec.dense, np.float64), n), n)
    np.testing.assert_allclose(ix.shapley_values(spec), brute.shapley(), atol=2e-6)
    sii = ix.interaction_index(spec, "SII", 2)
    _assert_dicts(sii, brute.sii(2), tol=2e-6)


def test_weight_tables_closed_forms() -> None:
    w = ix.fourier_index_weights("SV", None, 9)[:, 1]
    assert w.tolist() == pytest.approx([0.0] + [2.0 / r if r % 2 else 0.0 for r in range(1, 10)])
    for k in (1, 2, 3):
        fb = ix.fourier_index_weights("FBII", k, 8)
        want = [
            [(2.0**s * (-1) ** (r - s) if (r <= k and s <= r) else 0.0) for s in range(k + 1)]
            for r in range(9)
        ]
        np.testing.assert_allclose(fb, want, atol=1e-12)
        # k-SII, STII and FSII of a Möbius term of size ≤ k are the term itself
        for name in ("k-SII", "STII", "FSII", "FBII"):
            m = ix.moebius_index_weights(name, k, k)
            np.testing.assert_allclose(m[1:, 1:], np.eye(k), atol=1e-12)


def test_efficiency_at_large_n() -> None:
    """n = 300, sparse: Σφ = g(N) − g(∅) and the k-SII / STII / FSII efficiency axioms."""
    n = 300
    rng = np.random.default_rng(7)
    terms = {}
    while len(terms) < 25:
        d = int(rng.integers(1, 6))
        terms[tuple(sorted(rng.choice(n, d, replace=False).tolist()))] = float(rng.normal())
    terms[()] = 0.25
    spec = Spectrum.from_dict(terms, n)
    total = ix.full_value(spec) - ix.empty_value(spec)
    assert ix.shapley_values(spec).sum() == pytest.approx(total)
    for name in ("k-SII", "STII", "FSII"):
        values = ix.interaction_index(spec, name, 3)
        assert sum(v for s, v in values.items() if s) == pytest.approx(total, rel=1e-9), name
        assert values[()] == pytest.approx(ix.empty_value(spec))
    # a lone odd parity shares 2 equally; Banzhaf sees only first-order terms
    single = Spectrum.from_dict({(4, 100, 250): 1.5}, n)
    sv = ix.shapley_values(single)
    assert sv[[4, 100, 250]] == pytest.approx([1.0, 1.0, 1.0]) and np.count_nonzero(sv) == 3
    assert not np.any(ix.banzhaf_values(single))


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors() -> None:
    spec = Spectrum.from_dict({(0, 1): 1.0, (2,): 0.5}, 3)
    with pytest.raises(ActSpecError, match="exceeds the number of neurons n=3"):
        ix.interaction_index(spec, "SII", 4)
    with pytest.raises(ActSpecError, match="at least 1"):
        ix.interaction_index(spec, "STII", 0)
    with pytest.raises(ActSpecError, match=r"unknown interaction index 'XYZ'.*k-SII"):
        ix.interaction_index(spec, "XYZ")
    with pytest.raises(ActSpecError, match="order 1"):
        ix.interaction_index(spec, "SV", 2)
    bad = Spectrum(n=3, subsets=packed_from_tuples([(0, 5)], 6), coefficients=np.ones(1))
    with pytest.raises(ActSpecError, match=r"names neurons \[0, 5\].*n=3"):
        ix.shapley_values(bad)
    wrong_dense = Spectrum(n=3, subsets=spec.subsets, coefficients=spec.coefficients, dense=np.zeros(16))
    with pytest.raises(ActSpecError, match="different problem"):
        ix.interaction_index(wrong_dense, "SII")
    with pytest.raises(ActSpecError, match="dense array"):
        ix.shapley_values(spec, source="dense")
    batch = SpectrumBatch(spectra=(spec, spec), output_shape=(2,))
    with pytest.raises(ActSpecError, match="pick one output"):
        ix.shapley_values(batch)


# --------------------------------------------------------------------------- optional dependency


def test_core_never_imports_shapiq() -> None:
    import subprocess
    import sys

    code = (
        "import sys, actspec_jax, actspec_jax.analysis.indices, actspec_jax.analysis.metrics\n"
        "import actspec_jax.interop.shapiq\n"
        "assert 'shapiq' not in sys.modules, 'shapiq imported at import time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_shapiq_gives_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from actspec_jax.interop import shapiq as bridge

    monkeypatch.setitem(sys.modules, "shapiq", None)  # makes `import shapiq` fail
    bridge._game_class.cache_clear()
    spec = Spectrum.from_dict({(0,): 1.0}, 2)
    with pytest.raises(ImportError, match=r"pip install 'actspec_jax\[interop\]'"):
        bridge.to_interaction_values(spec, "SV")
    with pytest.raises(ImportError, match=r"shapiq==1\.4\.1"):
        bridge.as_shapiq_game(FunctionProblem(lambda x: x[:, 0], 2))
    bridge._game_class.cache_clear()


# --------------------------------------------------------------------------- plots


def test_index_plots_draw(tmp_path) -> None:
    from matplotlib.figure import Figure

    from actspec_jax.reports.plots_indices import plot_interaction_network, plot_shapley_vs_fourier

    n = 12
    terms = {(0,): 0.5, (1, 2): 1.0, (3, 4, 5): -0.7, (6, 7): -0.4, (2, 8): 0.3, (): 0.1}
    spec = Spectrum.from_dict(terms, n, labels=[f"u{i}" for i in range(n)])
    fig = plot_shapley_vs_fourier(spec, top=6)
    assert isinstance(fig, Figure)
    left = fig.axes[0]
    ticks = [t.get_text() for t in left.get_yticklabels()]
    assert len(ticks) == 6 and ticks[0] == "u0" and set(ticks[1:4]) == {"u3", "u4", "u5"}  # φ = 1, −0.47
    fig.savefig(tmp_path / "sv.png")
    net = plot_interaction_network(spec, max_edges=3)
    lines = [ln for ln in net.axes[0].get_lines() if len(ln.get_xdata()) == 2]
    assert len(lines) == 3  # the three strongest pairs
    net.savefig(tmp_path / "net.png")
    from_dict = plot_interaction_network(ix.interaction_index(spec, "STII", 2), n=n, max_edges=50)
    assert isinstance(from_dict, Figure)
    with pytest.raises(ActSpecError, match="max_edges"):
        plot_interaction_network(spec, max_edges=0)
    assert (tmp_path / "sv.png").stat().st_size > 1000
