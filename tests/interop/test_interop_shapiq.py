"""Agreement with shapiq 1.4 (ExactComputer, approximators) and InteractionValues round trips."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

shapiq = pytest.importorskip("shapiq")

from actspec_jax.analysis import indices as ix  # noqa: E402
from actspec_jax.errors import ActSpecError  # noqa: E402
from actspec_jax.interop import shapiq as bridge  # noqa: E402
from actspec_jax.problems.base import FunctionProblem  # noqa: E402
from actspec_jax.solvers.exact.solver import ExactSolver  # noqa: E402
from actspec_jax.spectrum import Spectrum  # noqa: E402
from actspec_jax.transforms.indexing import subsets_from_indices  # noqa: E402

pytestmark = pytest.mark.shapiq

CASES = [
    ("SV", 1),
    ("BV", 1),
    ("SII", 2),
    ("BII", 2),
    ("k-SII", 2),
    ("k-SII", 3),
    ("STII", 2),
    ("STII", 3),
    ("FSII", 2),
    ("FSII", 3),
    ("FBII", 2),
    ("FBII", 3),
    ("Moebius", 7),
]


def _dict(iv) -> dict:
    return {tuple(int(i) for i in k): float(v) for k, v in iv.dict_values.items()}


@pytest.fixture(scope="module")
def random_spectrum() -> Spectrum:
    n = 7
    fourier = np.random.default_rng(3).normal(size=1 << n) / 8
    return Spectrum(
        n=n, subsets=subsets_from_indices(np.arange(1 << n), n), coefficients=fourier, dense=fourier
    )


@pytest.fixture(scope="module")
def exact_computer(random_spectrum):
    with jax.enable_x64(True):
        return shapiq.ExactComputer(bridge.spectrum_game(random_spectrum), n_players=random_spectrum.n)


@pytest.mark.parametrize(("index", "order"), CASES)
def test_every_index_matches_shapiq_exact_computer(random_spectrum, exact_computer, index, order) -> None:
    with jax.enable_x64(True):
        theirs = _dict(exact_computer(index, order))
        ours = ix.interaction_index(random_spectrum, index, order)
    assert set(theirs) == set(ours)
    # FSII: shapiq fits g(∅), g(N) with weight 1e8 instead of exactly (≈1e-8 error)
    tol = 1e-6 if index == "FSII" else 1e-10
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=tol), key


def test_problem_game_feeds_exact_computer_and_approximators() -> None:
    n = 8
    w = jax.random.normal(jax.random.key(1), (n,))
    problem = FunctionProblem(lambda x: jnp.tanh(x @ w) + 0.5 * x[:, 0] * x[:, 1] * x[:, 5], n)
    game = bridge.as_shapiq_game(problem)
    assert isinstance(game, shapiq.Game) and game.n_players == n
    spec = ExactSolver()(problem)
    assert game.empty_value == pytest.approx(ix.empty_value(spec), abs=1e-5)
    exact = shapiq.ExactComputer(game)
    sv = exact("SV", 1)
    np.testing.assert_allclose([sv[(i,)] for i in range(n)], ix.shapley_values(spec), atol=1e-5)
    ksii = exact("k-SII", 2)
    ours = ix.interaction_index(spec, "k-SII", 2)
    for key, value in _dict(ksii).items():
        assert ours[key] == pytest.approx(value, abs=1e-5)
    assert game.callable.evaluations >= 1 << n
    # an approximator with the full budget reproduces the exact values through our game
    approx = shapiq.KernelSHAP(n=n, random_state=0).approximate(budget=1 << n, game=game)
    np.testing.assert_allclose([approx[(i,)] for i in range(n)], ix.shapley_values(spec), atol=1e-4)


def test_round_trips_through_interaction_values(random_spectrum) -> None:
    n = random_spectrum.n
    with jax.enable_x64(True):
        iv = bridge.to_interaction_values(random_spectrum, "Moebius", n)
        assert iv.index == "Moebius" and not iv.estimated
        assert iv.baseline_value == pytest.approx(ix.empty_value(random_spectrum))
        back = bridge.from_interaction_values(iv)
    truth = dict(zip(range(1 << n), np.asarray(random_spectrum.dense)))
    got = back.to_dict()
    for idx, value in truth.items():
        key = tuple(i for i in range(n) if (idx >> i) & 1)
        assert got.get(key, 0.0) == pytest.approx(value, abs=1e-10)
    # FBII of order 2 = Möbius form of the degree-≤2 truncation
    with jax.enable_x64(True):
        trunc = bridge.from_interaction_values(
            bridge.to_interaction_values(random_spectrum, "FBII", 2)
        ).to_dict()
    for idx, value in truth.items():
        key = tuple(i for i in range(n) if (idx >> i) & 1)
        want = value if len(key) <= 2 else 0.0
        assert trunc.get(key, 0.0) == pytest.approx(want, abs=1e-10)
    ksii = bridge.to_interaction_values(random_spectrum, "k-SII", 2)
    assert ksii.index == "k-SII" and ksii.max_order == 2


def test_sparse_spectrum_at_large_n_matches_moebius_converter() -> None:
    """n = 120, sparse: our indices of the approximation equal shapiq's MoebiusConverter."""
    from shapiq.game_theory.moebius_converter import MoebiusConverter

    n = 120
    rng = np.random.default_rng(5)
    terms = {(): 0.1}
    while len(terms) < 15:
        d = int(rng.integers(1, 5))
        terms[tuple(sorted(rng.choice(n, d, replace=False).tolist()))] = float(rng.normal())
    spec = Spectrum.from_dict(terms, n)
    moebius = bridge.to_interaction_values(spec, "Moebius", 4)
    converter = MoebiusConverter(moebius)
    for index, order in (("SII", 2), ("k-SII", 2), ("STII", 3), ("FSII", 2), ("FBII", 2)):
        theirs = _dict(converter(index, order))
        ours = ix.interaction_index(spec, index, order)
        for key in set(theirs) | set(ours):
            if key == () and index == "SII":
                continue  # MoebiusConverter leaves SII(∅) out
            assert ours.get(key, 0.0) == pytest.approx(theirs.get(key, 0.0), abs=1e-9), (index, key)


def test_bad_imports_and_games() -> None:
    iv = shapiq.InteractionValues(
        values=np.array([0.0, 1.0]),
        index="SII",
        max_order=2,
        min_order=0,
        n_players=4,
        interaction_lookup={(): 0, (0, 1): 1},
        baseline_value=0.0,
    )
    with pytest.raises(ActSpecError, match="do not determine the function"):
        bridge.from_interaction_values(iv)
    outside = shapiq.InteractionValues(
        values=np.array([0.0, 1.0]),
        index="Moebius",
        max_order=2,
        min_order=0,
        n_players=3,
        interaction_lookup={(): 0, (0, 5): 1},
        baseline_value=0.0,
    )
    with pytest.raises(ActSpecError, match=r"\(0, 5\) names a player outside 0\.\.2"):
        bridge.from_interaction_values(outside)
    game = bridge.ProblemGame(FunctionProblem(lambda x: x[:, 0], 3))
    with pytest.raises(ActSpecError, match=r"\[m, n=3\]"):
        game(np.zeros((2, 4), bool))
    with pytest.raises(ActSpecError, match="output_index"):
        bridge.ProblemGame(FunctionProblem(lambda x: x[:, 0], 3), output_index=2)


@pytest.mark.slow
def test_shapiq_spex_runs_on_our_problem() -> None:
    """shapiq's SPEX through our game wrapper recovers a planted parity (slow: numba compile)."""
    from shapiq.approximator.sparse import SPEX

    from actspec_jax.problems.synthetic import sparse_polynomial

    n = 24
    planted = sparse_polynomial(n, {(1, 7): 1.0, (3,): -0.6, (10, 15, 20): 0.8})
    game = bridge.ProblemGame(planted.problem)
    iv = SPEX(n=n, index="FBII", max_order=3, random_state=0).approximate(budget=4000, game=game)
    recovered = bridge.from_interaction_values(iv).to_dict()
    for key, value in planted.truth.items():
        assert recovered.get(key, 0.0) == pytest.approx(value, abs=0.05)
