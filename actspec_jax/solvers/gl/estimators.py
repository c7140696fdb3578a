"""Estimators of the Goldreich–Levin search: strategy objects handed to the search.

The search (:mod:`actspec_jax.solvers.gl.search`) is the same whatever is sampled: each
level draws ``m`` base draws ``z`` and ``r`` prefix draws ``y`` per base draw, evaluates ``f``
on the hybrids (prefix neurons from ``y``, the rest from ``z``) and reads every bucket's
character ``χ_S`` from the ``±1`` pattern of ``y``; the leaves are fitted on one *design* of
draws. An estimator says how:

* :meth:`Estimator.draw` — the random draws of one round, any array ``[*shape, ...]``;
* :meth:`Estimator.patterns` — the ``±1`` patterns ``float32[..., n]`` of draws that
  the characters are read from;
* :meth:`Estimator.hybrid_values` — ``f`` on the hybrids of a chunk of draws
  ``[c, r + 1, ...]`` (column 0 the base draw) → ``float32[c, r]``;
* :meth:`Estimator.design_draws` / :meth:`Estimator.design_values` — the leaf and norm design
  and ``f`` on it;
* its defaults (``tau``, ``num_samples``, ``draws_per_z``, ``block_size``, ``order``, ``refit``,
  ``passes``), whether it centres ``f``, its evaluation unit, its default non-redundancy
  constraints, and the checks of the problem it needs.

Estimators are frozen dataclasses: hashable, so the jitted kernels
(:mod:`actspec_jax.solvers.gl.kernels`) take one as a *static* argument and compile once per
estimator. Arrays an estimator needs from the problem (the paper estimator's binarised data
rows) are not fields: :meth:`Estimator.data` returns them once per search and they travel to
the kernels as an ordinary (traced) argument; :meth:`Estimator.bind` returns the estimator
with the problem's static sizes filled in (the paper estimator's number of data rows).

A new estimator (a ``p``-biased mask sampler, a token-position sampler, …) is one subclass
of :class:`Estimator`; see ``tests/solvers/test_estimators.py`` for one in a dozen lines.

Shipped: :class:`UniformMasks` (``estimator="mask"``, the default) and :class:`PaperHybrids`
(``estimator="paper"``, the authors' data hybrids; semantics in :mod:`actspec_jax.solvers.gl.paper`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from actspec_jax.errors import ActSpecError
from actspec_jax.solvers.gl.paper import (
    PAPER_DEFAULTS,
    check_paper_problem,
    paper_patterns,
    paper_rows,
    paper_values,
)
from actspec_jax.solvers.gl.redundancy import paper_constraints

__all__ = [
    "ESTIMATORS",
    "MASK_DEFAULTS",
    "Estimator",
    "PaperHybrids",
    "UniformMasks",
    "as_estimator",
    "random_signs",
    "random_words",
    "signs_from_words",
]

#: Defaults of the uniform-mask estimator (``GoldreichLevin``'s ``None`` settings).
MASK_DEFAULTS: dict[str, Any] = {
    "tau": 0.1,
    "num_samples": 256,
    "draws_per_z": 16,
    "block_size": 4,
    "order": "influence",
    "refit": True,
    "passes": 2,
}


# --------------------------------------------------------------------------- packed signs


def random_words(key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
    """``uint32[*shape, ⌈n/32⌉]`` random words: 32 uniform signs each (see :func:`signs_from_words`)."""
    return jax.random.bits(key, (*shape, -(-n // 32)), jnp.uint32)


def signs_from_words(words: jax.Array, n: int) -> jax.Array:
    """Unpack ``uint32[..., W]`` into ``±1`` ``float32[..., n]`` (bit set → −1)."""
    unpacked = (words[..., None] >> jnp.arange(32, dtype=jnp.uint32)) & jnp.uint32(1)
    flat = unpacked.reshape(*words.shape[:-1], words.shape[-1] * 32)[..., :n]
    return 1.0 - 2.0 * flat.astype(jnp.float32)


def random_signs(key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
    """Uniform ``±1`` ``float32[*shape, n]``."""
    return signs_from_words(random_words(key, shape, n), n)


# --------------------------------------------------------------------------- the strategy


@dataclasses.dataclass(frozen=True)
class Estimator:
    """How the GL search samples and evaluates (module docstring). Subclass and override.

    Class attributes: ``name`` (recorded as ``solver['estimator']``), ``defaults`` (the
    ``None`` settings of :class:`~actspec_jax.GoldreichLevin`; the uniform-mask ones unless a
    subclass sets its own), ``evaluation_unit`` (what ``solver['evaluations']`` counts),
    ``design_label`` (the design's draws, in error messages), ``centres`` (whether ``f`` may be
    centred by its mean before the search) and ``masks`` (whether ``f`` is the problem's
    function of ``±1`` masks: then residual passes, the influence order, ``max_evaluations``
    and the degree profile apply). ``multi_output``: whether the batched search of a problem
    with several outputs (:mod:`actspec_jax.solvers.gl.batched`, whose kernels decode uniform
    mask words) may use it — only :class:`UniformMasks`.
    """

    name: ClassVar[str] = "custom"
    defaults: ClassVar[dict[str, Any]] = MASK_DEFAULTS
    evaluation_unit: ClassVar[str] = "mask"
    design_label: ClassVar[str] = "uniform masks"
    centres: ClassVar[bool] = True
    masks: ClassVar[bool] = True
    multi_output: ClassVar[bool] = False

    # -- setup (host side, once per search)
    def check(self, problem: Any) -> None:
        """Raise :class:`ActSpecError` naming the fix unless the estimator can search ``problem``."""
        if problem.output_shape != ():
            raise ActSpecError(
                f"GoldreichLevin explains one function at a time, but this problem has outputs of shape "
                f"{problem.output_shape}. Choose a single output (e.g. output='indicator:7' or 'logit:3') "
                "with aggregate='mean', or call the solver once per output."
            )

    def bind(self, problem: Any) -> Estimator:
        """The estimator with the problem's static sizes filled in (default: itself)."""
        return self

    def data(self, problem: Any, threshold: float) -> Any:
        """Arrays the kernels need besides the draws (a pytree, traced), or ``None``."""
        return None

    def default_constraints(self) -> tuple[Any, ...]:
        """Non-redundancy constraints in effect when ``GoldreichLevin(redundancy=None)``."""
        return ()

    def describe(self) -> dict[str, Any]:
        """Settings recorded in ``solver['estimator_settings']`` (and in checkpoints' fingerprints)
        when non-empty: by default every field of the dataclass."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def bytes_per_evaluation(self, problem: Any, per_mask: int, n: int) -> int:
        """Working memory of one evaluation, for the chunk sizes (``per_mask``: one mask's)."""
        return per_mask + 8 * n

    def design_size(self, leaf_samples: int) -> int:
        """Number of draws in the norm and leaf designs."""
        return int(leaf_samples)

    def design_cost(self, size: int) -> int:
        """Evaluations one design of ``size`` draws counts in ``solver['evaluations']``."""
        return int(size)

    def norm_sq(self, second: float, values: Any, size: int) -> float:
        """``‖f‖₂²`` of the result from the norm pass's ``E[f²]`` (``second``) and the leaf
        design's values: their pooled mean by default (two independent designs)."""
        return float((second * size + float((values**2).sum())) / (2 * size))

    # -- draws and evaluations (traced: called inside the jitted kernels)
    def draw(self, key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
        """All random draws of one round (or a design): an array ``[*shape, ...]``."""
        raise NotImplementedError

    def patterns(self, draws: jax.Array, data: Any, n: int) -> jax.Array:
        """``±1`` ``float32[..., n]`` patterns of ``draws`` (``[..., *draw]``) for the characters."""
        raise NotImplementedError

    def hybrid_values(self, problem: Any, chunk: jax.Array, prefix: jax.Array) -> jax.Array:
        """``f`` on the hybrids of ``chunk`` (``[c, r + 1, ...]``): ``float32[c, r]``. Hybrid
        ``(j, a)`` takes the ``prefix`` neurons (``bool[n]``) from draw ``a + 1``, the rest from 0."""
        raise NotImplementedError

    def design_draws(self, key: jax.Array, size: int, n: int) -> jax.Array:
        """The ``size`` draws of a design (default: ``size`` fresh random draws)."""
        return self.draw(key, (size,), n)

    def design_values(self, problem: Any, chunk: jax.Array) -> jax.Array:
        """``f`` on a chunk of design draws ``[c, ...]``: ``float32[c]``."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class UniformMasks(Estimator):
    """Uniform ``±1`` masks (``estimator="mask"``): draws are ``uint32[*shape, ⌈n/32⌉]`` words of
    32 signs each; the characters are the masks' own, orthonormal, so the coefficients are the
    genuine Fourier coefficients of ``f`` (module docstring of
    :mod:`actspec_jax.solvers.gl.search`)."""

    name: ClassVar[str] = "mask"
    multi_output: ClassVar[bool] = True

    def describe(self) -> dict[str, Any]:
        return {}  # no settings of its own: solver['estimator'] == 'mask' says it all

    def draw(self, key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
        return random_words(key, shape, n)

    def patterns(self, draws: jax.Array, data: Any, n: int) -> jax.Array:
        return signs_from_words(draws, n)

    def hybrid_values(self, problem: Any, chunk: jax.Array, prefix: jax.Array) -> jax.Array:
        c, r, n = chunk.shape[0], chunk.shape[1] - 1, prefix.shape[0]
        signs = signs_from_words(chunk, n)
        masks = jnp.where(prefix, signs[:, 1:], signs[:, :1])
        return problem.evaluate_unchecked(masks.reshape(c * r, n)).reshape(c, r).astype(jnp.float32)

    def design_values(self, problem: Any, chunk: jax.Array) -> jax.Array:
        return problem.evaluate_unchecked(signs_from_words(chunk, problem.n)).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class PaperHybrids(Estimator):
    """The paper's hybrids of real data rows (``estimator="paper"``; :mod:`actspec_jax.solvers.gl.paper`).

    Draws are ``int32[*shape]`` data-row numbers (32 random bits modulo ``rows``: a bias below
    ``rows / 2³²``, negligible next to the sampling error); the characters are read from the
    rows' binarised activations; the design is every data row, unpatched, and costs no counted
    evaluations (``solver['evaluations']`` counts hybrid rows of the levels).

    Args:
      gamma: prescreen threshold ``γ`` of the default constraints (:class:`Prescreen`).
      delta: post-check threshold ``δ`` of the default constraints (:class:`PostCheck`).
      rows: number of data rows; filled in by :meth:`bind` from the problem (leave unset).
    """

    gamma: float = PAPER_DEFAULTS["gamma"]
    delta: float = PAPER_DEFAULTS["delta"]
    rows: int | None = None

    name: ClassVar[str] = "paper"
    defaults: ClassVar[dict[str, Any]] = PAPER_DEFAULTS
    evaluation_unit: ClassVar[str] = "hybrid data row"
    design_label: ClassVar[str] = "data rows"
    centres: ClassVar[bool] = False  # E_data[χ_S] ≠ 0: a constant would bias the weights
    masks: ClassVar[bool] = False

    def check(self, problem: Any) -> None:
        check_paper_problem(problem)

    def bind(self, problem: Any) -> PaperHybrids:
        return dataclasses.replace(self, rows=int(problem.activations.shape[0]))

    def data(self, problem: Any, threshold: float) -> jax.Array:
        return paper_patterns(problem, threshold)

    def default_constraints(self) -> tuple[Any, ...]:
        return paper_constraints(self.gamma, self.delta)

    def describe(self) -> dict[str, Any]:
        return {}  # γ and δ are recorded with the constraints (solver['redundancy'])

    def bytes_per_evaluation(self, problem: Any, per_mask: int, n: int) -> int:
        return per_mask // max(1, int(self.rows or 1)) + 8 * problem.activations.shape[-1]

    def design_size(self, leaf_samples: int) -> int:
        return int(self.rows)

    def design_cost(self, size: int) -> int:
        return 0

    def norm_sq(self, second: float, values: Any, size: int) -> float:
        return float((values**2).mean())  # the data rows: the same design twice

    def draw(self, key: jax.Array, shape: tuple[int, ...], n: int) -> jax.Array:
        if self.rows is None:
            raise ActSpecError("PaperHybrids draws data rows: bind it to a problem first (.bind(problem)).")
        return (jax.random.bits(key, shape, jnp.uint32) % jnp.uint32(self.rows)).astype(jnp.int32)

    def patterns(self, draws: jax.Array, data: Any, n: int) -> jax.Array:
        return data[draws]

    def hybrid_values(self, problem: Any, chunk: jax.Array, prefix: jax.Array) -> jax.Array:
        return paper_values(problem, chunk[:, 0], chunk[:, 1:], prefix)

    def design_draws(self, key: jax.Array, size: int, n: int) -> jax.Array:
        return jnp.arange(size, dtype=jnp.int32)

    def design_values(self, problem: Any, chunk: jax.Array) -> jax.Array:
        return paper_rows(problem, chunk)


#: The estimators named by a string (``GoldreichLevin(estimator="mask" | "paper")``).
ESTIMATORS: dict[str, type[Estimator]] = {"mask": UniformMasks, "paper": PaperHybrids}


def as_estimator(spec: str | Estimator, rows: int | None = None) -> Estimator:
    """The estimator object for ``spec``: an :class:`Estimator` as is, or a name of
    :data:`ESTIMATORS` (``rows``: the paper estimator's data rows, for the kernels' former
    ``mode=``/``rows=`` spelling)."""
    if isinstance(spec, Estimator):
        return spec
    if not isinstance(spec, str) or spec not in ESTIMATORS:
        raise ActSpecError(
            f"estimator must be one of {tuple(ESTIMATORS)} or an Estimator object (e.g. "
            f"actspec_jax.solvers.gl.estimators.PaperHybrids()), got {spec!r}."
        )
    estimator = ESTIMATORS[spec]()
    return dataclasses.replace(estimator, rows=rows) if rows and hasattr(estimator, "rows") else estimator
