"""Goldreich–Levin search for the heavy Fourier coefficients of a large layer.

**Buckets.** Fix an order of the searched neurons. The bucket ``(k, S)``, ``S`` among the
first ``k``, holds every coefficient ``S ∪ U`` with ``U`` among the rest; its weight is

    W(k, S) = Σ_U f̂(S ∪ U)² = E_{z, y, y'}[f(y, z) χ_S(y) f(y', z) χ_S(y')],

with ``y, y'`` independent uniform values of the first ``k`` neurons and ``z`` shared values of
the rest. A search keeps the buckets with estimated weight ``≥ τ²/2`` (at most ``beam``, the
heaviest), splits each on the next ``b`` neurons (``2^b`` children ``S ∪ T``) and stops when
every searched neuron is in the prefix: the survivors are single coefficients. Any ``S``
with ``|f̂(S)| ≥ τ`` keeps every ancestor bucket at weight ``≥ τ²``, so it survives unless
sampling error (or a full beam) drops it.

**One sample set per level.** Each level draws ``m`` base points ``z`` and ``r`` prefix
points ``y`` per ``z`` (``r = 2`` is the classical triple ``(y, y', z)``); ``f`` is evaluated on
the ``m·r`` hybrid masks in one jitted, chunked batch, and every child's estimate is the
U-statistic over pairs ``a ≠ b`` of ``F_a χ(y_a) F_b χ(y_b)`` — one batched matrix product for
all live buckets (:func:`actspec_jax.solvers.gl.kernels.child_stats`). ``r`` prefix draws
cost ``r`` evaluations and give ``r(r−1)/2`` pairs: when most of ``f``'s energy lies outside
the bucket (the usual case — the noise comes from the other terms, given ``z``) the variance
per evaluation falls like ``1/(r − 1)``; only the part due to ``z`` (large only for heavy
buckets, which clear the threshold anyway) needs many ``z``. The mask-mode default
``m = 256, r = 16`` (4096 evaluations per level) came from ``benchmarks/bench_gl.py``'s sweep
at a fixed 4096 evaluations per level, where ``r = 2`` (the prototype's triples) loses most
coefficients near ``2τ`` and ``r ≥ 16`` finds them. ``f`` is centred by its estimated mean
first (mask mode): this only changes the weight of the ``S = ∅`` bucket by
``(f̂(∅) − c)² − f̂(∅)²`` and removes the constant's large contribution to every estimate's
variance (class indicators averaged over inputs have ``f̂(∅)`` close to ±1).

**τ.** ``tau_mode='relative'`` (default): ``|f̂(S)| ≥ τ‖f‖₂`` with ``‖f‖₂² = E[f²] = Σ_S f̂(S)²``
*including* the constant term; ``'centered'``: ``τ·std(f)`` (the constant excluded — use it
when ``f̂(∅)`` dominates, e.g. an accuracy); ``'absolute'``: ``τ`` in the output's units.
``E[f]`` and ``E[f²]`` are estimated from ``leaf_samples`` uniform masks before the search.

**Coordinate order.** ``'index'``: neuron order. ``'influence'`` (mask mode default): a
pre-pass estimates every influence ``Inf_i = Σ_{S∋i} f̂(S)²`` from ``influence_samples``
points and all their single-neuron flips (``influence_samples · (n + 1)`` evaluations) and
searches the most influential neurons first. With ``prune=True`` neurons with estimated
``Inf_i < τ²/8`` are not searched: every bucket containing ``i`` has weight ``≤ Inf_i``, so an
exact search would drop it at ``τ²/2`` anyway (the factor 4 is a margin for the estimate).
Unsearched neurons stay uniformly random in every mask, so the coefficients of the searched
ones keep their meaning. An explicit sequence of neuron indices sets the order (and the
searched set) directly.

**Samples per level.** Fixed (``num_samples`` base draws), or ``adaptive=True``: draw rounds
of ``num_samples`` until no valid child's empirical-Bernstein interval (union bound over the
level's children, failure probability ``1 − confidence``) contains the threshold, or
``max_samples`` base draws are reached.

**Leaves.** The surviving subsets (and ``∅``) are estimated from one fresh set of
``leaf_samples`` uniform masks. With ``refit=True`` (mask default) by least squares on their
characters — the population solution is exactly ``f̂(S)`` because characters are orthonormal,
and the residual variance is only the *unfound* energy, far below ``E[f²]`` when a few terms
dominate; standard errors are heteroskedasticity-robust (sandwich, HC1) from that fit. With
``refit=False``: independent means ``mean(f χ_S)`` with their standard errors. Leaves with
``|f̂(S)| < τ/√2`` (the search's own weight threshold) are not reported (counted in
``solver['leaves']``); ``∅`` is always reported.

**Residual passes** (``passes > 1``, mask mode). Every other term of ``f`` adds variance to a
bucket's estimate, so a term far above the threshold can still be lost when ``E[f²]`` is
large. After a search, later passes search the residual ``f − f̃`` (``f̃`` the fit so far) at the
first pass's absolute threshold: the terms already found no longer add variance, which is
what lets the smaller ones clear it. All subsets found are then refitted together on fresh
masks (least squares, sandwich errors). Each pass costs about as much as the first. The loop
is :func:`actspec_jax.solvers.common.residual.run_passes`, shared with
:class:`~actspec_jax.ResidualPasses` (``ResidualPasses(GoldreichLevin(), passes=k)`` gives the
same result as ``GoldreichLevin(passes=k)``); GL's hooks are in
:mod:`~actspec_jax.solvers.gl.residual`.

**Estimators.** What is drawn and how it is evaluated is a strategy object handed to the
search (:mod:`actspec_jax.solvers.gl.estimators`): :class:`UniformMasks` (``estimator='mask'``,
the default; everything above) or :class:`PaperHybrids` (``estimator='paper'``): hybrids of
real data rows as in the authors' prototype; see :mod:`actspec_jax.solvers.gl.paper` for the
semantics and how they differ. ``GoldreichLevin(estimator=PaperHybrids(gamma=0.3))`` passes
one with its own settings; a new estimator is one subclass of :class:`Estimator`.

**Modules.** This one holds the public :class:`GoldreichLevin`; the driver of one search is
:mod:`~actspec_jax.solvers.gl.run`, its settings :mod:`~actspec_jax.solvers.gl.settings`, the
leaves :mod:`~actspec_jax.solvers.gl.leaves`, residual passes
:mod:`~actspec_jax.solvers.gl.residual` (hooks of :mod:`~actspec_jax.solvers.common.residual`),
the jitted kernels :mod:`~actspec_jax.solvers.gl.kernels`; a problem with several outputs goes to the batched
search :mod:`~actspec_jax.solvers.gl.batched` (a subclass of the driver).

**Non-redundancy** (``redundancy=``): :mod:`actspec_jax.solvers.gl.redundancy`.

**Stop and resume.** The state is a pytree (:class:`~actspec_jax.solvers.gl.state.SearchState`).
Level ``l`` draws from ``fold_in(fold_in(key, 0), l)`` (round ``q`` of the adaptive rule from
``fold_in`` of that with ``q``; a round's draws are made in one call, so chunking never changes
them), so a search resumed from a checkpoint draws exactly what an uninterrupted one would:
with ``checkpoint_path=`` the state is written atomically after every level, and calling
again with the same path, problem, settings and key continues from it and returns the same
spectrum. The file is kept after the search (a rerun returns at once, from the leaves).

**Cost.** Evaluations: ``leaf_samples`` (norm pass) + ``influence_samples · (n + 1)``
(influence order) + ``m · r`` per level × ``⌈searched / b⌉`` levels + ``leaf_samples``
(leaves); mask mode with ``n > 24`` adds ``profile_evaluations`` for the degree profile,
reported apart in ``solver['degree_profile']``; paper mode counts hybrid rows instead
(``1000 · 2`` per level, plus one pass over the data rows for the norm and one for the
leaves). Only the evaluation kernels trace the problem; the statistics kernels compile once
per (n, beam, D, b, r) and are shared.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from actspec_jax.diagnostics import IncompleteResultWarning, report_diagnostic
from actspec_jax.errors import ActSpecError
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.profile_attach import SOLVER_EVALUATIONS, wants_degree_profile
from actspec_jax.solvers.common.residual import ResidualProblem, run_passes
from actspec_jax.solvers.common.settings import (
    Bytes,
    Choice,
    Devices,
    Flag,
    Indices,
    Real,
    Whole,
    check_settings,
)
from actspec_jax.solvers.common.validate import TRACER_ERRORS, check_key
from actspec_jax.solvers.gl.estimators import (  # noqa: F401  (MASK_DEFAULTS: re-exported)
    MASK_DEFAULTS,
    Estimator,
    PaperHybrids,
    UniformMasks,
    as_estimator,
)
from actspec_jax.solvers.gl.residual import SearchPasses
from actspec_jax.solvers.gl.run import SearchRun
from actspec_jax.solvers.gl.settings import (  # noqa: F401  (re-exported: former home of these names)
    LEVEL_STATS,
    MAX_RECORDS,
    TAG_INFLUENCE,
    TAG_LEAVES,
    TAG_LEVELS,
    TAG_NORM,
    TAG_POSTCHECK,
    TAG_REFIT,
    TAU_MODES,
    UNDER_JIT_HINT,
    Progress,
    resolve_constraints,
    resolve_settings,
)
from actspec_jax.solvers.gl.settings import key_data as _key_data  # noqa: F401
from actspec_jax.solvers.gl.state import CheckpointError
from actspec_jax.spectrum import Spectrum, SpectrumBatch

__all__ = [
    "CheckpointError",
    "Estimator",
    "GoldreichLevin",
    "PaperHybrids",
    "ResidualProblem",
    "UniformMasks",
]

ESTIMATORS = ("mask", "paper")  # the names ``estimator=`` accepts (objects: any Estimator)
_Run = SearchRun  # former name of the driver


#: What each setting of :class:`GoldreichLevin` accepts (upper bounds: sanity, far above use).
GL_RULES = {  # types and sanity bounds; ranges with their reasons: resolve_settings, _check_order
    "tau": Real(optional=True),
    "tau_mode": Choice(TAU_MODES),
    "beam": Whole(high=1 << 20),
    "num_samples": Whole(high=1 << 20, optional=True),
    "draws_per_z": Whole(high=1 << 12, optional=True),
    "block_size": Whole(optional=True),
    "order": Indices(("index", "influence"), optional=True),
    "prune": Flag(),
    "influence_samples": Whole(high=1 << 16),
    "adaptive": Flag(),
    "max_samples": Whole(high=1 << 24, optional=True),
    "confidence": Real(),
    "leaf_samples": Whole(high=1 << 24),
    "refit": Flag(optional=True),
    "max_degree": Whole(),
    "center": Flag(),
    "passes": Whole(high=64, optional=True),
    "binarize_threshold": Real(),
    "memory_budget": Bytes(),
    "devices": Devices(),
    "max_evaluations": Whole(1, optional=True),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class GoldreichLevin:
    """Goldreich–Levin search for heavy Fourier coefficients (see the module docstring).

    ``None`` settings take the estimator's default (mask | paper).

    Args:
      tau: heaviness threshold in ``(0, 1]`` (0.1 | 0.2); see ``tau_mode``.
      tau_mode: ``'relative'`` (``τ‖f‖₂``), ``'centered'`` (``τ·std f``) or ``'absolute'``.
      beam: maximum number of live buckets (128).
      num_samples: base draws ``z`` per level, ``≥ 2`` (256 | 1000).
      draws_per_z: prefix draws ``y`` per base draw, ``≥ 2`` (16 | 2); evaluations per level are
        ``num_samples · draws_per_z``.
      block_size: neurons split per level, ``b`` in 1…8 (4 | 1); ``2^b`` children per bucket.
      order: ``'index'``, ``'influence'`` (mask only) or a sequence of neuron indices.
      prune: with influence order, do not search neurons with ``Inf_i < τ²/8``.
      influence_samples: points of the influence pre-pass.
      adaptive: grow the samples per level until the decisions are confident.
      max_samples: cap on base draws per level when adaptive (default ``16 · num_samples``).
      confidence: per-level confidence of the adaptive rule.
      leaf_samples: uniform masks for the norm pre-pass and the leaf estimates (mask mode).
      refit: least-squares refit of the leaves (True | False).
      max_degree: largest ``|S|`` searched (≤ 32); children beyond it are dropped (counted).
      center: subtract the estimated mean of ``f`` (mask mode).
      passes: searches in all (2 | 1); passes after the first search the residual of the fit
        so far (see "Residual passes" above) and stop early when one finds nothing new.
      estimator: an :class:`~actspec_jax.solvers.gl.estimators.Estimator` —
        :class:`~actspec_jax.solvers.gl.estimators.UniformMasks` (``'mask'``) or
        :class:`~actspec_jax.solvers.gl.estimators.PaperHybrids` (``'paper'``, data hybrids) — or
        its name; a new estimator is one subclass (:mod:`actspec_jax.solvers.gl.estimators`).
      redundancy: ``None`` (mode default: none | (a)+(b)), ``'none'``, ``'paper'``, or a sequence
        of :class:`Prescreen` / :class:`PostCheck` / :class:`SpectralAliasing`.
      binarize_threshold: activation above which a neuron counts as active (+1).
      memory_budget: bytes per evaluation chunk (default: the device's, at most 512 MiB).
      max_evaluations: budget of mask evaluations (mask mode), never exceeded: the settings
        are re-planned before the run so that the worst case fits
        (:mod:`actspec_jax.solvers.gl.budget`); ``solver['max_evaluations']`` records it.
      devices: devices the mask evaluations are split over — ``None`` (every device JAX sees,
        rounded down to a power of two), an int, a device list or a
        :class:`jax.sharding.Mesh` with an axis ``"masks"`` (see :mod:`actspec_jax.solvers.common.sharding`).
        The chunks of each level's hybrid masks go to the devices in order; results equal
        the one-device results for the same key.
      degree_profile: attach the whole spectrum's degree profile ``W^0…W^3`` and tail with
        intervals (:func:`~actspec_jax.solvers.common.degree_profile.estimate_degree_profile`) as
        ``solver['degree_profile']``: ``None`` = for mask mode with ``n > 24`` (not under
        ``max_evaluations``, which the profile would exceed); ``False`` = off.
      profile_evaluations: its uniform masks (8192), counted apart from ``solver['evaluations']``.

    Call it as ``GoldreichLevin(tau=0.1)(problem, key=key, progress=..., checkpoint_path=...)``.
    """

    tau: float | None = None
    tau_mode: str = "relative"
    beam: int = 128
    num_samples: int | None = None
    draws_per_z: int | None = None
    block_size: int | None = None
    order: str | Sequence[int] | None = None
    prune: bool = True
    influence_samples: int = 32
    adaptive: bool = False
    max_samples: int | None = None
    confidence: float = 0.95
    leaf_samples: int = 8192
    refit: bool | None = None
    max_degree: int = 16
    center: bool = True
    passes: int | None = None
    estimator: str | Estimator = "mask"
    redundancy: Any = None
    binarize_threshold: float = 0.0
    memory_budget: int | None = None
    devices: Any = None
    max_evaluations: int | None = None
    degree_profile: bool | None = None
    profile_evaluations: int = SOLVER_EVALUATIONS

    # ------------------------------------------------------------------ configuration
    def __post_init__(self) -> None:
        """Every setting's type and range (:data:`GL_RULES`), checked when the solver is built."""
        check_settings(self, GL_RULES, "GoldreichLevin")

    @classmethod
    def paper(cls, **overrides: Any) -> GoldreichLevin:
        """The paper's estimator with its defaults (τ = 0.2, 1000 triples, beam 128, γ = δ = 0.2)."""
        return cls(estimator="paper", **overrides)

    def resolved_estimator(self) -> Estimator:
        """The estimator object (``estimator="mask" | "paper"`` converted, once, here)."""
        return as_estimator(self.estimator)

    def settings(self) -> dict[str, Any]:
        """Every setting with the estimator's defaults filled in, validated (JSON-ready)."""
        return resolve_settings(self, self.resolved_estimator())

    def constraints(self) -> tuple[Any, ...]:
        """The non-redundancy constraints in effect."""
        return resolve_constraints(self.redundancy, self.resolved_estimator())

    # ------------------------------------------------------------------ entry point
    def __call__(
        self,
        problem: Problem,
        *,
        key: jax.Array | None = None,
        progress: Progress | None = None,
        checkpoint_path: str | Path | None = None,
    ) -> Spectrum | SpectrumBatch:
        """Search ``problem`` and return its heavy coefficients as a :class:`~actspec_jax.Spectrum`
        (one output) or a :class:`~actspec_jax.SpectrumBatch` (``output_shape != ()``: every
        output searched together on shared evaluations, mask mode; see
        :mod:`actspec_jax.solvers.gl.batched`).

        Args:
          problem: a problem with one output (``output_shape == ()``) or several.
          key: PRNG key; the same key gives the same result.
          progress: called as ``progress(levels_done, levels_total)`` after every level of every
            pass (the count restarts in each residual pass), and with ``info=`` a dict of the
            level's statistics and its ``"pass"`` if it accepts that keyword.
          checkpoint_path: ``.npz`` file written after every level; if it exists, the search
            resumes from it (it must come from the same problem, settings and key).
        """
        started = time.perf_counter()
        estimator, cfg = self._validated(problem, key)
        if self.max_evaluations is not None:
            return self._budgeted(problem, estimator, cfg, key, progress, checkpoint_path)
        try:
            return self._search(problem, estimator, cfg, key, progress, checkpoint_path, started)
        except TRACER_ERRORS as err:
            raise ActSpecError(f"GoldreichLevin()(problem) ran into traced values: {UNDER_JIT_HINT}") from err

    def start_passes(
        self,
        problem: Problem,
        *,
        key: jax.Array | None,
        passes: int,
        max_evaluations: int | None = None,
        progress: Progress | None = None,
        checkpoint_path: str | Path | None = None,
    ) -> SearchPasses:
        """The residual-pass protocol (:mod:`actspec_jax.solvers.common.residual`): validate, run the first
        pass of ``GoldreichLevin(passes=passes)`` and return its hooks. The rest is the same
        :func:`~actspec_jax.solvers.common.residual.run_passes` loop as ``passes=k`` runs."""
        started = time.perf_counter()
        if max_evaluations is not None or self.max_evaluations is not None:
            raise ActSpecError(
                "GoldreichLevin plans its passes inside its own budget: use "
                f"GoldreichLevin(passes={passes}, max_evaluations=B) rather than ResidualPasses(..., "
                "max_evaluations=)."
            )
        if problem.output_shape != ():
            raise ActSpecError(
                "ResidualPasses takes single-output problems; for several outputs use "
                f"GoldreichLevin(passes={passes}), which searches them together on shared evaluations."
            )
        solver = dataclasses.replace(self, passes=passes)
        estimator, cfg = solver._validated(problem, key)
        try:
            return solver._first_pass(problem, estimator, cfg, key, progress, checkpoint_path, started)
        except TRACER_ERRORS as err:
            raise ActSpecError(f"GoldreichLevin()(problem) ran into traced values: {UNDER_JIT_HINT}") from err

    def _validated(self, problem: Problem, key: jax.Array | None) -> tuple[Estimator, dict[str, Any]]:
        """The estimator and resolved settings, after the checks every call makes."""
        if key is None:
            raise ActSpecError("GoldreichLevin samples at random: pass key=jax.random.key(0) (any seed).")
        check_key(key, "GoldreichLevin")
        estimator = self.resolved_estimator()
        cfg = resolve_settings(self, estimator)
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((problem, key))):
            raise ActSpecError(f"GoldreichLevin()(problem) got traced arrays: {UNDER_JIT_HINT}")
        return estimator, cfg

    def _search(
        self,
        problem: Problem,
        estimator: Estimator,
        cfg: dict[str, Any],
        key: jax.Array | None,
        progress: Progress | None,
        checkpoint_path: str | Path | None,
        started: float,
    ) -> Spectrum | SpectrumBatch:
        if problem.output_shape != ():  # many outputs, one search: actspec_jax.solvers.gl.batched
            from actspec_jax.solvers.gl.batched import check_batchable, search_batched

            check_batchable(self, problem, cfg)
            self._check_order(problem, cfg)
            wants_degree_profile(problem, self.degree_profile, self.profile_evaluations, mask_mode=True)
            return search_batched(self, problem, cfg, key, progress, checkpoint_path, started)
        run = self._first_pass(problem, estimator, cfg, key, progress, checkpoint_path, started)
        return run.finish(run_passes(run, checkpoint_path, started))

    def _first_pass(
        self,
        problem: Problem,
        estimator: Estimator,
        cfg: dict[str, Any],
        key: jax.Array | None,
        progress: Progress | None,
        checkpoint_path: str | Path | None,
        started: float,
    ) -> SearchPasses:
        """The first search of a single-output problem and its residual-pass hooks."""
        estimator.check(problem)
        self._check_order(problem, cfg)
        profile = wants_degree_profile(
            problem, self.degree_profile, self.profile_evaluations, mask_mode=estimator.masks
        )
        run = SearchRun(self, cfg, problem, key, progress, checkpoint_path, estimator)
        spectrum = run.execute(started)
        return SearchPasses(self, run, spectrum, progress, key if profile else None)

    @staticmethod
    def _check_order(problem: Problem, cfg: dict[str, Any]) -> None:
        n = int(problem.n)
        if n < cfg["block_size"]:
            raise ActSpecError(
                f"the layer has n={n} neurons, fewer than block_size={cfg['block_size']} split per level; "
                f"use block_size <= {n}."
            )
        if isinstance(cfg["order"], list):
            order = cfg["order"]
            if len(set(order)) != len(order) or any(not 0 <= i < n for i in order):
                raise ActSpecError(f"order must list distinct neuron indices in 0..{n - 1}.")

    def _budgeted(
        self, problem: Problem, estimator: Estimator, cfg: dict[str, Any], key: Any, progress: Any, path: Any
    ) -> Spectrum | SpectrumBatch:
        """Run under ``max_evaluations`` (mask mode): re-plan, run, verify the count."""
        from actspec_jax.solvers.gl.budget import plan_gl_budget, worst_case_evaluations

        budget = int(self.max_evaluations)
        if self.degree_profile:
            raise ActSpecError(
                "degree_profile=True would spend evaluations beyond max_evaluations; leave it unset under a "
                "budget and call actspec_jax.estimate_degree_profile separately if you want the profile."
            )
        if not estimator.masks:
            raise ActSpecError("max_evaluations applies to the mask estimator (paper mode counts data rows).")
        plan = plan_gl_budget(budget, int(problem.n), cfg)
        names = ("passes", "adaptive", "draws_per_z", "influence_samples", "leaf_samples", "num_samples")
        solver = dataclasses.replace(
            self, max_evaluations=None, **{k: plan[k] for k in names}, max_samples=None, degree_profile=False
        )
        result = solver(problem, key=key, progress=progress, checkpoint_path=path)
        # A batched search shares its evaluations: the same count in every output's spectrum.
        spectra = result.spectra if isinstance(result, SpectrumBatch) else (result,)
        used = int(spectra[0].solver["evaluations"])
        if used > budget:  # cannot happen: the plan bounds the worst case
            raise RuntimeError(f"GoldreichLevin used {used} evaluations under max_evaluations={budget}.")
        cut = [
            f"{k} {cfg[k]} -> {plan[k]}"
            for k in ("passes", "num_samples", "leaf_samples")
            if isinstance(cfg.get(k), int) and plan[k] < cfg[k]
        ]
        out = []
        for index, spectrum in enumerate(spectra):
            info = dict(
                spectrum.solver,
                max_evaluations=budget,
                planned_worst_case=worst_case_evaluations(plan, problem.n),
            )
            if cut:
                with warnings.catch_warnings():
                    if index:  # one warning for the whole batch; every spectrum records it
                        warnings.simplefilter("ignore", IncompleteResultWarning)
                    resolution = budget_resolution(plan, float(spectrum.norm_sq))
                    info["budget_resolution"] = resolution
                    report_diagnostic(
                        info,
                        "budget_limited",
                        f"max_evaluations={budget} cut the search below its unbudgeted settings "
                        f"({', '.join(cut)}): with {resolution['draws']} draws per estimate a "
                        f"bucket's weight is known to about ±{resolution['weight_se']:.3g}, so terms with "
                        f"|coefficient| below about {resolution['missed_below']:.3g} may be missed (not only "
                        "those near tau), and estimates are noisier.",
                        "raise max_evaluations, or use CompressiveSolver, which needs fewer evaluations.",
                    )
            out.append(dataclasses.replace(spectrum, solver=info))
        if isinstance(result, SpectrumBatch):
            return dataclasses.replace(result, spectra=tuple(out))
        return out[0]


def budget_resolution(plan: dict[str, Any], norm_sq: float) -> dict[str, float]:
    """What a budgeted plan can resolve: ``draws`` (the fewest draws behind one weight estimate —
    ``m·r`` per bucket, ``I`` per neuron's influence), ``weight_se ≈ E[f²]/√draws`` (each draw is a
    product of two values of ``f``, of spread about ``E[f²]``) and ``missed_below = √(3·weight_se)``:
    a term's squared coefficient under three standard errors of its bucket's estimate is easily lost.
    A rough, stated bound — at n = 65,536 under 200k evaluations terms of 2–3× tau were missed."""
    per_bucket = int(plan["num_samples"]) * int(plan["draws_per_z"])
    draws = (
        min(per_bucket, int(plan["influence_samples"])) if plan.get("order") == "influence" else per_bucket
    )
    weight_se = float(norm_sq) / max(draws, 1) ** 0.5
    return {"draws": int(draws), "weight_se": weight_se, "missed_below": (3.0 * weight_se) ** 0.5}
