"""shapiq interop: ``InteractionValues`` ↔ spectra, and problems as shapiq games.

shapiq (Muschalik et al., 2024) is an optional dependency: this module imports it only
inside the functions that need it and raises an ``ImportError`` naming the install command
when it is missing. Convention bridge (see :mod:`actspec_jax.analysis.indices`): a shapiq coalition
is a boolean row ``z`` (True = player present); our mask is ``x = 2z − 1`` (+1 = kept), so
the game is ``g(z) = f(2z − 1)`` and ``g(∅)`` is the fully ablated layer.

* :func:`to_interaction_values` — any index of :mod:`actspec_jax.analysis.indices` as shapiq
  ``InteractionValues`` (values computed by us, exactly).
* :func:`from_interaction_values` — a :class:`~actspec_jax.Spectrum` from Möbius values
  (``index="Moebius"``) or FBII values of any order (FBII of order ``k`` are the Möbius
  coefficients of the degree-``≤ k`` Fourier truncation, so the result is that truncation),
  or any efficient index at full order ``k = n`` (then it equals the Möbius transform).
* :class:`ProblemGame` / :func:`as_shapiq_game` — a problem as a callable on boolean
  coalition matrices, or as a ``shapiq.Game``, so shapiq's approximators (SPEX, KernelSHAP,
  …) and its ``ExactComputer`` run on our problems. Evaluations are batched and jitted.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.analysis.indices import _canonical, _order, empty_value, interaction_index
from actspec_jax.errors import ActSpecError
from actspec_jax.transforms.indexing import unpack_subsets
from actspec_jax.transforms.mobius import SparseTerms, check_terms, moebius_to_fourier_sparse

__all__ = [
    "INSTALL_HINT",
    "ProblemGame",
    "as_shapiq_game",
    "from_interaction_values",
    "require_shapiq",
    "spectrum_game",
    "to_interaction_values",
]

#: How to install the optional shapiq dependency (named in errors).
INSTALL_HINT = "pip install 'actspec_jax[interop]'  (or: pip install shapiq==1.4.1)"


def require_shapiq() -> ModuleType:
    """Import and return shapiq, or raise ``ImportError`` with the install command."""
    try:
        import shapiq
    except ImportError as err:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError(f"this feature needs the optional package shapiq: {INSTALL_HINT}") from err
    return shapiq


# --------------------------------------------------------------------------- values


def to_interaction_values(
    spectrum: Any,
    index: str = "k-SII",
    max_order: int | None = None,
    *,
    source: str = "auto",
) -> Any:
    """Our exact index values as ``shapiq.InteractionValues``.

    ``baseline_value`` is ``g(∅)`` (every neuron ablated); the entry at ``()`` follows
    shapiq's convention for the index (see :mod:`actspec_jax.analysis.indices`). Marked
    ``estimated=False`` when computed from a dense spectrum.
    """
    shapiq = require_shapiq()
    name = _canonical(index)
    order = _order(name, max_order)
    values = interaction_index(spectrum, name, order, source=source)  # type: ignore[arg-type]
    keys = sorted(values, key=lambda s: (len(s), s))
    exact = getattr(spectrum, "dense", None) is not None and source != "terms"
    return shapiq.InteractionValues(
        values=np.asarray([values[k] for k in keys], np.float64),
        index=name,
        max_order=order,
        min_order=0,
        n_players=int(spectrum.n),
        interaction_lookup={k: i for i, k in enumerate(keys)},
        estimated=not exact,
        baseline_value=float(empty_value(spectrum)),
    )


def from_interaction_values(iv: Any, *, labels: Any = None) -> Any:
    """A Fourier :class:`~actspec_jax.Spectrum` from shapiq ``InteractionValues``.

    Accepted: ``index="Moebius"`` (listed coefficients, others 0: the function itself);
    ``"FBII"`` of order ``k`` (the degree-``≤ k`` truncation of the function); ``"k-SII"``,
    ``"STII"``, ``"FSII"`` only at full order ``max_order = n_players`` (then equal to the
    Möbius transform). Other indices do not determine the function and raise
    :class:`ActSpecError`.
    """
    n = int(iv.n_players)
    index = str(iv.index)
    full = int(iv.max_order) >= n
    if index not in ("Moebius", "FBII") and not (full and index in ("k-SII", "STII", "FSII")):
        raise ActSpecError(
            f"InteractionValues of index {index!r} (order {iv.max_order}, n={n}) do not determine the "
            "function; import 'Moebius' values, 'FBII' values (any order), or k-SII/STII/FSII at "
            "max_order = n_players."
        )
    terms = {}
    for subset, value in iv.dict_values.items():
        key = tuple(int(i) for i in subset)
        if any(not 0 <= i < n for i in key):
            raise ActSpecError(
                f"interaction {key} names a player outside 0..{n - 1} (n_players={n}): the "
                "InteractionValues are inconsistent."
            )
        terms[key] = terms.get(key, 0.0) + float(value)
    if () not in terms:
        terms[()] = float(iv.baseline_value)
    solver = {"name": f"shapiq:{index}", "estimated": bool(iv.estimated), "budget": iv.estimation_budget}
    return moebius_to_fourier_sparse(SparseTerms.from_dict(terms, n), labels=labels, solver=solver)


# --------------------------------------------------------------------------- games


@functools.partial(jax.jit, static_argnames=("column",))
def _evaluate(problem: Any, coalitions: jax.Array, column: int) -> jax.Array:
    masks = jnp.where(coalitions, 1.0, -1.0).astype(jnp.float32)
    return problem.evaluate_unchecked(masks).reshape(coalitions.shape[0], -1)[:, column]


class ProblemGame:
    """A problem as a cooperative game: ``game(coalitions bool[m, n]) -> float64[m]``.

    Row ``z`` (True = player present) is evaluated at the mask ``x = 2z − 1``. Calls are
    split into padded chunks of ``batch_size`` (powers of two below it) so repeated calls
    reuse a few compiled shapes. ``evaluations`` counts the coalitions evaluated so far.

    Args:
      problem: any :class:`~actspec_jax.Problem`.
      output_index: which flattened output of a batched problem is the game.
      batch_size: largest chunk evaluated at once.
    """

    def __init__(self, problem: Any, *, output_index: int = 0, batch_size: int = 4096) -> None:
        if not 0 <= int(output_index) < problem.num_outputs:
            raise ActSpecError(
                f"output_index={output_index} but the problem has {problem.num_outputs} output(s)."
            )
        if batch_size < 1:
            raise ActSpecError(f"batch_size must be >= 1, got {batch_size}.")
        self.problem = problem
        self.n = int(problem.n)
        self.n_players = self.n
        self.output_index = int(output_index)
        self.batch_size = int(batch_size)
        self.evaluations = 0

    def __call__(self, coalitions: Any) -> np.ndarray:
        z = np.asarray(coalitions)
        if z.ndim == 1:
            z = z[None]
        if z.ndim != 2 or z.shape[1] != self.n:
            raise ActSpecError(
                f"coalitions must be a boolean matrix [m, n={self.n}], got shape {tuple(z.shape)}."
            )
        if z.dtype != bool:
            if not np.all((z == 0) | (z == 1)):
                raise ActSpecError("coalitions must be boolean (or 0/1): True = player present.")
            z = z.astype(bool)
        out = np.empty(z.shape[0], np.float64)
        for start in range(0, z.shape[0], self.batch_size):
            chunk = z[start : start + self.batch_size]
            size = min(self.batch_size, 1 << max(0, int(chunk.shape[0] - 1).bit_length()))
            padded = np.zeros((size, self.n), bool)
            padded[: chunk.shape[0]] = chunk
            values = _evaluate(self.problem, jnp.asarray(padded), self.output_index)
            out[start : start + chunk.shape[0]] = np.asarray(values, np.float64)[: chunk.shape[0]]
        self.evaluations += int(z.shape[0])
        return out


def spectrum_game(spectrum: Any, *, chunk: int = 4096) -> Any:
    """The game of a spectrum's listed terms, ``g(z) = Σ_S f̂(S) χ_S(2z − 1)``, as a callable
    ``bool[m, n] -> float64[m]`` (evaluated on the host in float64, ``chunk`` rows at a time)."""
    n, packed, coefs = check_terms(spectrum)
    member = unpack_subsets(packed, n).astype(np.int64)  # [K, n]

    def game(coalitions: Any) -> np.ndarray:
        z = np.asarray(coalitions, bool).reshape(-1, n)
        out = np.empty(z.shape[0], np.float64)
        for start in range(0, z.shape[0], chunk):
            ablated = (~z[start : start + chunk]).astype(np.int64)
            chi = 1.0 - 2.0 * ((ablated @ member.T) % 2)
            out[start : start + chunk] = chi @ coefs
        return out

    return game


@functools.lru_cache(maxsize=1)
def _game_class() -> type:
    shapiq = require_shapiq()

    class ActSpecGame(shapiq.Game):
        """A :class:`ProblemGame` as a ``shapiq.Game`` (``value_function`` = the problem)."""

        def __init__(
            self, problem: Any, *, output_index: int = 0, normalize: bool = False, batch_size: int = 4096
        ):
            self.callable = ProblemGame(problem, output_index=output_index, batch_size=batch_size)
            empty = float(self.callable(np.zeros((1, problem.n), bool))[0])
            labels = list(problem.labels)
            super().__init__(
                n_players=problem.n,
                normalize=normalize,
                normalization_value=empty if normalize else None,
                player_names=labels if len(set(labels)) == len(labels) else None,
            )
            self.empty_value = empty

        def value_function(self, coalitions: np.ndarray) -> np.ndarray:
            return self.callable(coalitions)

    return ActSpecGame


def as_shapiq_game(
    problem: Any, *, output_index: int = 0, normalize: bool = False, batch_size: int = 4096
) -> Any:
    """A ``shapiq.Game`` whose value function evaluates ``problem`` (see :class:`ProblemGame`).

    ``normalize=True`` subtracts ``g(∅)`` as shapiq's imputers do; the default keeps the raw
    values so shapiq's results line up with :mod:`actspec_jax.analysis.indices`. The wrapped
    :class:`ProblemGame` (with its evaluation counter) is ``game.callable``.
    """
    return _game_class()(problem, output_index=output_index, normalize=normalize, batch_size=batch_size)
