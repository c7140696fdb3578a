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
all live buckets (:func:`actspec_jax.solvers._gl_kernels.child_stats`). ``r`` prefix draws
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
masks (least squares, sandwich errors). Each pass costs about as much as the first.

**Paper mode** (``estimator='paper'``): hybrids of real data rows as in the authors'
prototype; see :mod:`actspec_jax.solvers.paper` for the semantics and how they differ.

**Non-redundancy** (``redundancy=``): :mod:`actspec_jax.solvers.redundancy`.

**Stop and resume.** The state is a pytree (:class:`~actspec_jax.solvers._gl_state.SearchState`).
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
import inspect
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.diagnostics import IncompleteResultWarning, report_diagnostic
from actspec_jax.errors import ActSpecError, NonFiniteOutputError
from actspec_jax.problems.base import Problem
from actspec_jax.solvers import _gl_kernels as K
from actspec_jax.solvers._checkpoint import fingerprint, problem_digest
from actspec_jax.solvers._gl_diagnostics import diagnose
from actspec_jax.solvers._gl_leaves import LeafFit
from actspec_jax.solvers._gl_state import (
    CheckpointError,
    SearchSetup,
    SearchState,
    load_checkpoint,
    save_checkpoint,
)
from actspec_jax.solvers._memory import bytes_per_mask, default_block_size, default_memory_budget
from actspec_jax.solvers._validate import check_integers, check_key, check_memory_budget
from actspec_jax.solvers.degree_profile import (
    SOLVER_EVALUATIONS,
    attach_degree_profile,
    wants_degree_profile,
)
from actspec_jax.solvers.functional import TRACER_ERRORS
from actspec_jax.solvers.paper import PAPER_DEFAULTS, check_paper_problem, paper_patterns
from actspec_jax.solvers.redundancy import (
    PostCheck,
    Prescreen,
    SpectralAliasing,
    paper_constraints,
    patterns_from_problem,
)
from actspec_jax.solvers.sharding import mask_mesh, mesh_size
from actspec_jax.spectrum import Spectrum, SpectrumBatch

__all__ = ["CheckpointError", "GoldreichLevin", "ResidualProblem"]

Progress = Callable[..., None]

TAG_LEVELS, TAG_NORM, TAG_INFLUENCE, TAG_LEAVES, TAG_POSTCHECK, TAG_REFIT = 0, 1, 2, 3, 4, 50
TAU_MODES = ("relative", "centered", "absolute")
ESTIMATORS = ("mask", "paper")
MASK_DEFAULTS: dict[str, Any] = {
    "tau": 0.1,
    "num_samples": 256,
    "draws_per_z": 16,
    "block_size": 4,
    "order": "influence",
    "refit": True,
    "passes": 2,
}
LEVEL_STATS = (
    "level",
    "prefix",
    "live_in",
    "children",
    "above_threshold",
    "kept",
    "rejected_postcheck",
    "unchecked_postcheck",
    "degree_dropped",
    "undecided",
    "samples",
    "rounds",
    "evaluations",
    "max_weight",
    "min_kept_weight",
    "seconds",
)
INTEGER_SETTINGS = (
    "beam",
    "num_samples",
    "draws_per_z",
    "block_size",
    "influence_samples",
    "max_samples",
    "leaf_samples",
    "max_degree",
    "passes",
    "max_evaluations",
)
MAX_RECORDS = 10_000  # removal records kept in the result (the count is always exact)
UNDER_JIT_HINT = (
    "inside jax.jit / vmap / grad (it checks values and builds its result on the host). Inside "
    "traced code use the functional form: state = actspec_jax.gl_init(n, key=key, "
    "threshold=tau_abs**2 / 2); state = actspec_jax.gl_search(problem.evaluate_unchecked, state) "
    "(or one level at a time with actspec_jax.gl_update); survivors: state.members[state.valid]."
)


def _key_data(key: jax.Array) -> np.ndarray:
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


def _wants_info(progress: Progress) -> bool:
    try:
        params = inspect.signature(progress).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "info" or p.kind == p.VAR_KEYWORD for p in params)


@dataclasses.dataclass(frozen=True)
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
      estimator: ``'mask'`` (uniform masks) or ``'paper'`` (data hybrids).
      redundancy: ``None`` (mode default: none | (a)+(b)), ``'none'``, ``'paper'``, or a sequence
        of :class:`Prescreen` / :class:`PostCheck` / :class:`SpectralAliasing`.
      binarize_threshold: activation above which a neuron counts as active (+1).
      memory_budget: bytes per evaluation chunk (default: the device's, at most 512 MiB).
      max_evaluations: budget of mask evaluations (mask mode), never exceeded: the settings
        are re-planned before the run so that the worst case fits
        (:mod:`actspec_jax.solvers.gl_budget`); ``solver['max_evaluations']`` records it.
      devices: devices the mask evaluations are split over — ``None`` (every device JAX sees,
        rounded down to a power of two), an int, a device list or a
        :class:`jax.sharding.Mesh` with an axis ``"masks"`` (see :mod:`actspec_jax.sharding`).
        The chunks of each level's hybrid masks go to the devices in order; results equal
        the one-device results for the same key.
      degree_profile: attach the whole spectrum's degree profile ``W^0…W^3`` and tail with
        intervals (:func:`~actspec_jax.solvers.degree_profile.estimate_degree_profile`) as
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
    estimator: str = "mask"
    redundancy: Any = None
    binarize_threshold: float = 0.0
    memory_budget: int | None = None
    devices: Any = None
    max_evaluations: int | None = None
    degree_profile: bool | None = None
    profile_evaluations: int = SOLVER_EVALUATIONS

    # ------------------------------------------------------------------ configuration
    @classmethod
    def paper(cls, **overrides: Any) -> GoldreichLevin:
        """The paper's estimator with its defaults (τ = 0.2, 1000 triples, beam 128, γ = δ = 0.2)."""
        return cls(estimator="paper", **overrides)

    def _defaults(self) -> dict[str, Any]:
        if self.estimator not in ESTIMATORS:
            raise ActSpecError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}.")
        return PAPER_DEFAULTS if self.estimator == "paper" else MASK_DEFAULTS

    def settings(self) -> dict[str, Any]:
        """Every setting with the mode defaults filled in, validated (JSON-ready)."""
        d = self._defaults()
        pick = lambda name: d[name] if getattr(self, name) is None else getattr(self, name)  # noqa: E731
        tau = float(pick("tau"))
        out: dict[str, Any] = {
            "estimator": self.estimator,
            "tau": tau,
            "tau_mode": self.tau_mode,
            "beam": int(self.beam),
            "num_samples": int(pick("num_samples")),
            "draws_per_z": int(pick("draws_per_z")),
            "block_size": int(pick("block_size")),
            "order": pick("order") if isinstance(pick("order"), str) else [int(i) for i in pick("order")],
            "prune": bool(self.prune),
            "influence_samples": int(self.influence_samples),
            "adaptive": bool(self.adaptive),
            "max_samples": int(self.max_samples or 16 * int(pick("num_samples"))),
            "confidence": float(self.confidence),
            "leaf_samples": int(self.leaf_samples),
            "refit": bool(pick("refit")),
            "max_degree": int(self.max_degree),
            "center": bool(self.center) and self.estimator == "mask",
            "passes": int(pick("passes")),
            "binarize_threshold": float(self.binarize_threshold),
        }
        if self.tau_mode not in TAU_MODES:
            raise ActSpecError(f"tau_mode must be one of {TAU_MODES}, got {self.tau_mode!r}.")
        if self.tau_mode == "absolute":
            if not (math.isfinite(tau) and tau > 0):
                raise ActSpecError(f"tau must be a positive threshold in the output's units, got {tau}.")
        elif not 0.0 < tau <= 1.0:
            raise ActSpecError(
                f"tau must be in (0, 1] (a fraction of ‖f‖₂ with tau_mode={self.tau_mode!r}), got {tau}. "
                "For a threshold in the output's units use tau_mode='absolute'."
            )
        if out["passes"] < 1 or (out["passes"] > 1 and self.estimator != "mask"):
            raise ActSpecError(
                f"passes must be >= 1, and 1 with the paper estimator (got {out['passes']}); residual "
                "passes need a function of masks."
            )
        if out["beam"] < 1:
            raise ActSpecError(f"beam must be >= 1 (live buckets kept per level), got {self.beam}.")
        for name in ("num_samples", "draws_per_z", "leaf_samples", "influence_samples"):
            if out[name] < 2:
                raise ActSpecError(
                    f"{name} must be >= 2 (an estimate needs at least two samples), got {out[name]}."
                )
        if out["max_samples"] < out["num_samples"]:
            raise ActSpecError(
                f"max_samples ({out['max_samples']}) must be >= num_samples ({out['num_samples']})."
            )
        if not 1 <= out["block_size"] <= 8:
            raise ActSpecError(
                f"block_size must be in 1..8 (2^b children per bucket), got {out['block_size']}."
            )
        if not 1 <= out["max_degree"] <= 32:
            raise ActSpecError(f"max_degree must be in 1..32, got {self.max_degree}.")
        if not 0.0 < out["confidence"] < 1.0:
            raise ActSpecError(f"confidence must be in (0, 1), got {self.confidence}.")
        if isinstance(out["order"], str) and out["order"] not in ("index", "influence"):
            raise ActSpecError(
                f"order must be 'index', 'influence' or a sequence of neurons, got {out['order']!r}."
            )
        if out["order"] == "influence" and self.estimator == "paper":
            raise ActSpecError(
                "order='influence' measures mask influences; the paper estimator uses 'index'."
            )
        out["redundancy"] = [c.describe() for c in self.constraints()]
        return out

    def constraints(self) -> tuple[Any, ...]:
        """The non-redundancy constraints in effect."""
        spec = self.redundancy
        if spec is None:
            if self.estimator != "paper":
                return ()
            return paper_constraints(PAPER_DEFAULTS["gamma"], PAPER_DEFAULTS["delta"])
        if isinstance(spec, str):
            if spec == "none":
                return ()
            if spec == "paper":
                return paper_constraints(PAPER_DEFAULTS["gamma"], PAPER_DEFAULTS["delta"])
            raise ActSpecError(
                f"redundancy must be None, 'none', 'paper' or a sequence of constraints, got {spec!r}."
            )
        items = tuple(spec)
        for item in items:
            if not isinstance(item, Prescreen | PostCheck | SpectralAliasing):
                raise ActSpecError(
                    f"redundancy entries must be Prescreen, PostCheck or SpectralAliasing objects, got "
                    f"{type(item).__name__}."
                )
        stages = [c.stage for c in items]
        if len(set(stages)) != len(stages):
            raise ActSpecError("pass each kind of redundancy constraint at most once.")
        return items

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
        :mod:`actspec_jax.solvers._gl_batched`).

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
        if key is None:
            raise ActSpecError("GoldreichLevin samples at random: pass key=jax.random.key(0) (any seed).")
        check_key(key, "GoldreichLevin")
        check_memory_budget(self.memory_budget, "GoldreichLevin")
        check_integers(self, INTEGER_SETTINGS, "GoldreichLevin")
        cfg = self.settings()
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((problem, key))):
            raise ActSpecError(f"GoldreichLevin()(problem) got traced arrays: {UNDER_JIT_HINT}")
        if self.max_evaluations is not None:
            return self._budgeted(problem, cfg, key, progress, checkpoint_path)
        try:
            return self._search(problem, cfg, key, progress, checkpoint_path, started)
        except TRACER_ERRORS as err:
            raise ActSpecError(f"GoldreichLevin()(problem) ran into traced values: {UNDER_JIT_HINT}") from err

    def _search(
        self,
        problem: Problem,
        cfg: dict[str, Any],
        key: jax.Array | None,
        progress: Progress | None,
        checkpoint_path: str | Path | None,
        started: float,
    ) -> Spectrum | SpectrumBatch:
        n = int(problem.n)
        batched = problem.output_shape != ()
        if batched:
            from actspec_jax.solvers._gl_batched import check_batchable

            check_batchable(self, problem, cfg)
        if n < cfg["block_size"]:
            raise ActSpecError(
                f"the layer has n={n} neurons, fewer than block_size={cfg['block_size']} split per level; "
                f"use block_size <= {n}."
            )
        if isinstance(cfg["order"], list):
            order = cfg["order"]
            if len(set(order)) != len(order) or any(not 0 <= i < n for i in order):
                raise ActSpecError(f"order must list distinct neuron indices in 0..{n - 1}.")
        profile = wants_degree_profile(
            problem, self.degree_profile, self.profile_evaluations, mask_mode=cfg["estimator"] == "mask"
        )
        if batched:  # many outputs, one search: actspec_jax.solvers._gl_batched
            from actspec_jax.solvers._gl_batched import search_batched

            return search_batched(self, problem, cfg, key, progress, checkpoint_path, started)
        run = _Run(self, cfg, problem, key, progress, checkpoint_path)
        spectrum = run.execute(started)
        if cfg["passes"] > 1 and not spectrum.solver["constant_function"]:
            spectrum = self._residual_passes(run, spectrum, progress, checkpoint_path, started)
        spectrum = diagnose(spectrum, cfg)
        if not profile:
            return spectrum
        return attach_degree_profile(
            spectrum, problem, key, evaluations=self.profile_evaluations, memory_budget=self.memory_budget
        )

    def _budgeted(
        self, problem: Problem, cfg: dict[str, Any], key: Any, progress: Any, path: Any
    ) -> Spectrum | SpectrumBatch:
        """Run under ``max_evaluations`` (mask mode): re-plan, run, verify the count."""
        from actspec_jax.solvers.gl_budget import plan_gl_budget, worst_case_evaluations

        budget = int(self.max_evaluations)
        if self.degree_profile:
            raise ActSpecError(
                "degree_profile=True would spend evaluations beyond max_evaluations; leave it unset under a "
                "budget and call actspec_jax.estimate_degree_profile separately if you want the profile."
            )
        if self.estimator != "mask":
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
                    report_diagnostic(
                        info,
                        "budget_limited",
                        f"max_evaluations={budget} cut the search below its unbudgeted settings "
                        f"({', '.join(cut)}), so terms near tau may be missed and estimates are noisier.",
                        "raise max_evaluations, or use CompressiveSolver, which needs fewer evaluations.",
                    )
            out.append(dataclasses.replace(spectrum, solver=info))
        if isinstance(result, SpectrumBatch):
            return dataclasses.replace(result, spectra=tuple(out))
        return out[0]

    def _residual_passes(
        self,
        first: _Run,
        spectrum: Spectrum,
        progress: Progress | None,
        checkpoint_path: str | Path | None,
        started: float,
    ) -> Spectrum:
        """Passes 2…``passes`` on the residual, then one joint refit (module docstring)."""
        cfg = first.cfg
        tau_abs = float(spectrum.solver["tau_abs"])
        residual_cfg = dict(cfg, tau=tau_abs, tau_mode="absolute", passes=1)
        found = {s for s in spectrum.subset_tuples() if s}
        stages = dict(spectrum.solver["evaluations_by_stage"], residual_passes=0, refit=0)
        history = [{"pass": 1, "new_subsets": len(found), "evaluations": int(spectrum.solver["evaluations"])}]
        current = spectrum
        diagnostics = list(spectrum.solver.get("diagnostics", []))
        for index in range(2, cfg["passes"] + 1):
            residual = ResidualProblem(first.problem, current)
            path = None
            if checkpoint_path is not None:
                path = Path(checkpoint_path)
                path = path.with_name(f"{path.stem}.pass{index}{path.suffix}")
            run = _Run(
                self, residual_cfg, residual, jax.random.fold_in(first.key, 100 + index), progress, path
            )
            run.pass_index = index
            extra = run.execute(time.perf_counter())
            diagnostics.extend(extra.solver.get("diagnostics", []))
            new = {s for s in extra.subset_tuples() if s} - found
            found |= new
            stages["residual_passes"] += int(extra.solver["evaluations"])
            history.append(
                {
                    "pass": index,
                    "new_subsets": len(new),
                    "evaluations": int(extra.solver["evaluations"]),
                    "residual_norm_sq_estimate": float(extra.solver["norm_sq_estimate"]),
                }
            )
            subsets = [(), *sorted(found, key=lambda t: (len(t), t))]
            coef, err, used = first.fit_subsets(subsets, tag=TAG_REFIT + index)
            stages["refit"] += used
            current = Spectrum.build(first.n, subsets, coef, stderr=err)
            if not new:
                break
        subsets = current.subset_tuples()
        keep = [s == () or abs(c) >= tau_abs / math.sqrt(2.0) for s, c in zip(subsets, current.coefficients)]
        subsets = [s for s, k in zip(subsets, keep) if k]
        redundancy = dict(spectrum.solver["redundancy"])
        alias = first.constraints.get("postprocess")
        if alias is not None:  # aliases may be re-found on the residual: decide on the union
            coef, err, used = first.fit_subsets(subsets, tag=TAG_REFIT - 1)
            stages["refit"] += used
            similarity = alias.similarity_matrix(first.problem, first.n)
            keep_alias, records = alias.apply(subsets, coef, err, similarity)
            subsets = [s for s, k in zip(subsets, keep_alias) if k]
            earlier = [r for r in redundancy["removed"] if r.get("constraint") == "spectral_aliasing"]
            redundancy["removed"] = [r for r in redundancy["removed"] if r not in earlier] + records
            redundancy["removed_count"] = int(redundancy["removed_count"]) - len(earlier) + len(records)
            keep.append(False)  # the kept terms are refitted together below
        if not all(keep):
            coef, err, used = first.fit_subsets(subsets, tag=TAG_REFIT)
            stages["refit"] += used
        else:
            coef, err = np.asarray(current.coefficients), np.asarray(current.stderr)
        solver = dict(spectrum.solver)
        solver.update(
            evaluations=int(sum(stages.values())),
            evaluations_by_stage=stages,
            passes_run=history,
            redundancy=redundancy,
            wall_time_s=float(spectrum.solver["wall_time_s"]) + (time.perf_counter() - started),
            leaves=dict(spectrum.solver["leaves"], reported=len(subsets)),
        )
        if diagnostics:
            solver["diagnostics"] = diagnostics
        return Spectrum.build(
            first.n,
            subsets,
            np.asarray(coef, np.float64),
            stderr=np.asarray(err, np.float64),
            labels=first.problem.labels,
            norm_sq=spectrum.norm_sq,
            problem=first.problem.describe(),
            solver=solver,
            output_label=first.problem.output_labels[0],
            output_index=0,
        )


@jax.tree_util.register_pytree_node_class
class ResidualProblem(Problem):
    """``f − f̃``: a problem minus a sparse Fourier approximation of it (same masks, ``n``)."""

    def __init__(self, base: Problem, approximation: Spectrum) -> None:
        self.base = base
        # Only the arrays travel through jit: metadata would make the static part large.
        self.approximation = Spectrum(
            n=approximation.n, subsets=approximation.subsets, coefficients=approximation.coefficients
        )

    @property
    def n(self) -> int:
        return self.base.n

    @property
    def labels(self) -> tuple[str, ...]:
        return self.base.labels

    @property
    def output_shape(self) -> tuple[int, ...]:
        return ()

    def evaluate_unchecked(self, masks: jax.Array) -> jax.Array:
        return self.base.evaluate_unchecked(masks) - self.approximation.evaluate(masks)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ResidualProblem",
            "n": self.n,
            "base": self.base.describe(),
            "terms_subtracted": self.approximation.num_terms,
        }

    def tree_flatten(self):
        return (self.base, self.approximation), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        out = cls.__new__(cls)
        out.base, out.approximation = children
        return out


class _Run:
    """One call of the solver: pre-passes, levels, leaves (kept out of the frozen config)."""

    def __init__(
        self,
        solver: GoldreichLevin,
        cfg: dict[str, Any],
        problem: Problem,
        key: jax.Array,
        progress: Progress | None,
        checkpoint_path: str | Path | None,
    ) -> None:
        self.solver, self.cfg, self.problem = solver, cfg, problem
        self.key = key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)
        self.progress = progress
        self.info = progress is not None and _wants_info(progress)
        self.pass_index = 1
        self.path = None if checkpoint_path is None else Path(checkpoint_path)
        self.n = int(problem.n)
        self.mode = cfg["estimator"]
        self.constraints = {c.stage: c for c in solver.constraints()}
        if self.mode == "paper":
            check_paper_problem(problem)
            self.patterns = paper_patterns(problem, cfg["binarize_threshold"])
            self.rows = int(problem.activations.shape[0])
        else:
            self.patterns = None
            self.rows = 0
        self.beam, self.depth = cfg["beam"], min(cfg["max_degree"], self.n)
        self.b, self.r = cfg["block_size"], cfg["draws_per_z"]
        self.pool = 2 * self.beam if "postcheck" in self.constraints else self.beam
        self.order_length = -(-self.n // self.b) * self.b
        mesh = mask_mesh(solver.devices)
        self.mesh = None if mesh_size(mesh) == 1 else mesh
        self._chunks()

    # ------------------------------------------------------------------ sizes
    def _chunks(self) -> None:
        """Chunk sizes (they change speed and memory, never the draws).

        Problem evaluations run in chunks whose intermediates fit the memory budget, and on CPU
        in cache-sized blocks (:func:`~actspec_jax.solvers._memory.default_block_size`), which
        keeps the masked activations out of DRAM.
        """
        budget = self.solver.memory_budget or min(default_memory_budget(), 512 << 20)
        per_mask = bytes_per_mask(self.problem.evaluate_unchecked, self.n)
        if self.mode == "paper":
            per_eval = per_mask // max(1, self.rows) + 8 * self.problem.activations.shape[-1]
        else:
            per_eval = per_mask + 8 * self.n
        block = default_block_size(per_eval)
        evals = max(1, min(budget // per_eval, block or budget))
        chars = 4 * (self.beam * self.depth + self.n + self.beam)
        m = self.cfg["num_samples"]
        self.c_eval = int(max(1, min(m, evals // self.r)))
        self.c_stats = int(max(1, min(m, budget // (self.r * chars + 12 * self.beam * (1 << self.b)))))
        total = self.rows if self.mode == "paper" else self.cfg["leaf_samples"]
        self.design_total = total
        self.c_design = int(max(1, min(total, evals)))
        self.c_chars = int(max(1, min(total, budget // chars)))
        self.c_influence = int(max(1, min(self.n, evals)))

    def chunk_sizes(self) -> list[int]:
        return [self.c_eval, self.c_stats, self.c_design, self.c_chars, self.c_influence]

    def design_draws(self, tag: int) -> jax.Array:
        if self.mode == "paper":
            return jnp.arange(self.design_total, dtype=jnp.int32)
        return K.draw(self._sub(tag), mode="mask", shape=(self.design_total,), n=self.n, rows=0)

    def fingerprint(self) -> str:
        """Digest of the problem (description and every array it holds), settings and key.

        Resuming from a checkpoint with another fingerprint would splice two searches.
        """
        doc = {
            "settings": self.cfg,
            "problem": problem_digest(self.problem),
            "n": self.n,
            "key": _key_data(self.key).tolist(),
        }
        return fingerprint(doc)

    def _sub(self, tag: int) -> jax.Array:
        return jax.random.fold_in(self.key, tag)

    # ------------------------------------------------------------------ pre-passes
    def prepare(self) -> tuple[SearchSetup, dict[str, Any]]:
        """Norm pass, order (influence pre-pass, pruning), prescreen → setup and metadata."""
        cfg, n = self.cfg, self.n
        meta: dict[str, Any] = {"evaluations": {"norm": 0, "influence": 0, "levels": 0, "leaves": 0}}
        values = self._design_values(self.design_draws(TAG_NORM))
        meta["evaluations"]["norm"] = int(values.shape[0]) if self.mode == "mask" else 0
        mean, second = float(values.mean()), float((values * values).mean())
        var = max(second - mean * mean, 0.0)
        scale = {"relative": math.sqrt(second), "centered": math.sqrt(var), "absolute": 1.0}[cfg["tau_mode"]]
        tau_abs = cfg["tau"] * scale
        constant = var <= 1e-12 * max(second, 1e-30)  # every sampled value equal: nothing to search
        if tau_abs <= 0:
            tau_abs = cfg["tau"]  # only reached for a constant function, whose search is skipped
        center = mean if cfg["center"] else 0.0
        candidates = np.full(n, not constant)
        removed: list[dict[str, Any]] = []
        influence = np.zeros(n, np.float32)
        pruned = 0
        if cfg["order"] == "influence" and not constant:
            out = K.influence(
                self.problem,
                self._sub(TAG_INFLUENCE),
                samples=cfg["influence_samples"],
                c=self.c_influence,
                mesh=self.mesh,
            )
            if float(out["bad"]) > 0:
                raise NonFiniteOutputError(
                    "the model output is NaN/inf on some masks of the influence pre-pass; check the fill "
                    "values and the output selector (e.g. log of a zero probability)."
                )
            influence = np.asarray(out["mean"], np.float32)
            meta["evaluations"]["influence"] = cfg["influence_samples"] * (n + 1)
            if cfg["prune"]:
                cut = tau_abs**2 / 8.0
                candidates &= influence >= cut
                pruned = int(n - candidates.sum())
        if "prescreen" in self.constraints:
            keep, records = self.constraints["prescreen"].apply(
                patterns_from_problem(self.problem, cfg["binarize_threshold"]), candidates
            )
            candidates, removed = keep, records
        if isinstance(cfg["order"], list):
            sequence = [i for i in cfg["order"] if candidates[i]]
        elif cfg["order"] == "influence":
            sequence = [int(i) for i in np.argsort(-influence, kind="stable") if candidates[i]]
        else:
            sequence = [int(i) for i in np.flatnonzero(candidates)]
        levels = -(-len(sequence) // self.b)
        order = np.full(self.order_length, n, np.int32)  # fixed length: shapes never depend on it
        order[: len(sequence)] = sequence
        rank = np.full(n, self.order_length, np.int32)
        rank[sequence] = np.arange(len(sequence), dtype=np.int32)
        setup = SearchSetup(
            order=order,
            rank=rank,
            influence=influence,
            scalars=np.asarray([center, mean, second, tau_abs], np.float64),
        )
        meta.update(
            levels_total=levels,
            constant_function=bool(constant),
            searched=len(sequence),
            pruned=pruned,
            removed=removed,
            removed_count=len(removed),
            stats={name: [] for name in LEVEL_STATS},
            chunks=self.chunk_sizes(),
            wall_time_s=0.0,
        )
        return setup, meta

    def _design_values(self, draws: jax.Array) -> np.ndarray:
        return self._checked(
            K.evaluate_design(self.problem, draws, mode=self.mode, c=self.c_design, mesh=self.mesh)
        )

    def _checked(self, values: jax.Array) -> np.ndarray:
        values = np.asarray(values, np.float64)
        if not np.all(np.isfinite(values)):
            where = "uniform masks" if self.mode == "mask" else "data rows"
            bad = int((~np.isfinite(values)).sum())
            raise NonFiniteOutputError(
                f"the model output is NaN/inf on {bad} of {values.size} {where}; check the fill values, "
                "the inputs and the output selector (e.g. log of a zero probability)."
            )
        return values

    def initial_state(self) -> SearchState:
        members = np.full((self.beam, self.depth), self.n, np.int32)
        valid = np.zeros(self.beam, bool)
        valid[0] = True  # the root bucket (0, ∅)
        return SearchState(
            level=np.asarray(0, np.int32),
            members=members,
            degree=np.zeros(self.beam, np.int32),
            valid=valid,
            weights=np.zeros(self.beam, np.float32),
            stderr=np.zeros(self.beam, np.float32),
            key=_key_data(self.key).astype(np.uint32),
        )

    def shapes(self, meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Expected checkpoint array shapes (and a sanity check of its level count)."""
        if not 0 <= int(meta["levels_total"]) <= self.order_length // self.b:
            raise ValueError(f"levels_total={meta['levels_total']} is impossible for n={self.n}")
        return {
            "state_members": (self.beam, self.depth),
            "state_valid": (self.beam,),
            "state_weights": (self.beam,),
            "state_degree": (self.beam,),
            "setup_rank": (self.n,),
            "setup_order": (self.order_length,),
            "setup_scalars": (4,),
        }

    # ------------------------------------------------------------------ the search
    def execute(self, started: float) -> Spectrum:
        # Only a checkpoint needs the fingerprint (it hashes every array of the problem).
        fingerprint = None if self.path is None else self.fingerprint()
        resumed_from = None
        if self.path is not None and self.path.exists():
            state, setup, meta = self._load(fingerprint)
            resumed_from = int(state.level)
            (self.c_eval, self.c_stats, self.c_design, self.c_chars, self.c_influence) = meta["chunks"]
        else:
            setup, meta = self.prepare()
            state = self.initial_state()
            if self.path is not None:
                meta["fingerprint"] = fingerprint
                save_checkpoint(self.path, state, setup, meta)
        prior_wall = float(meta.get("wall_time_s", 0.0))
        call_start = started
        levels = int(meta["levels_total"])
        post_bits = None
        if "postcheck" in self.constraints:
            post_bits = self.constraints["postcheck"].bits(
                patterns_from_problem(self.problem, self.cfg["binarize_threshold"]), self._sub(TAG_POSTCHECK)
            )
        while int(state.level) < levels:
            level_start = time.perf_counter()
            state, record, removals = self._level(state, setup, post_bits)
            for name, value in record.items():
                meta["stats"].setdefault(name, []).append(value)
            meta["stats"].setdefault("seconds", []).append(time.perf_counter() - level_start)
            meta["evaluations"]["levels"] += record["evaluations"]
            meta["removed_count"] += len(removals)
            room = MAX_RECORDS - len(meta["removed"])
            meta["removed"].extend(removals[: max(room, 0)])
            if self.path is not None:
                meta["wall_time_s"] = prior_wall + (time.perf_counter() - call_start)
                save_checkpoint(self.path, state, setup, meta)
            if self.progress is not None:
                if self.info:
                    self.progress(int(state.level), levels, info={**record, "pass": self.pass_index})
                else:
                    self.progress(int(state.level), levels)
        spectrum = self._leaves(state, setup, meta, prior_wall, call_start, resumed_from)
        return spectrum

    def fit_subsets(
        self, subsets: Sequence[tuple[int, ...]], *, tag: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Least-squares coefficients and sandwich errors of ``subsets`` (``∅`` first) on a
        fresh design of ``leaf_samples`` uniform masks; also returns the evaluations used."""
        depth = max([self.depth, *(len(s) for s in subsets)])
        members = np.full((len(subsets), depth), self.n, np.int32)
        for row, subset in enumerate(subsets):
            members[row, : len(subset)] = subset
        draws = self.design_draws(tag)
        values_dev = K.evaluate_design(self.problem, draws, mode=self.mode, c=self.c_design, mesh=self.mesh)
        values = self._checked(values_dev)
        fit = LeafFit(self, values_dev, values, draws, jnp.asarray(members))
        coef, err = fit(np.arange(len(subsets)), True)
        return coef, err, int(values.shape[0])

    def _load(self, fingerprint: str) -> tuple[SearchState, SearchSetup, dict[str, Any]]:
        return load_checkpoint(self.path, fingerprint=fingerprint, shapes=self.shapes)

    def _level(
        self, state: SearchState, setup: SearchSetup, post_bits: jax.Array | None
    ) -> tuple[SearchState, dict[str, Any], list[dict[str, Any]]]:
        cfg = self.cfg
        level = int(state.level)
        level_key = jax.random.fold_in(self._sub(TAG_LEVELS), level)
        center, _, _, tau_abs = (float(v) for v in setup.scalars)
        threshold = jnp.float32(tau_abs**2 / 2.0)
        members = jnp.asarray(state.members)
        order, rank = jnp.asarray(setup.order), jnp.asarray(setup.rank)
        totals = None
        used = 0
        rounds = 0
        while True:
            draws = K.draw(
                jax.random.fold_in(level_key, rounds),
                mode=self.mode,
                shape=(cfg["num_samples"], self.r + 1),
                n=self.n,
                rows=self.rows,
            )
            values = K.evaluate_round(
                self.problem,
                draws,
                jnp.int32(level),
                rank,
                mode=self.mode,
                c=self.c_eval,
                b=self.b,
                mesh=self.mesh,
            )
            stats = K.child_stats(
                values,
                draws,
                self.patterns,
                members,
                jnp.int32(level),
                order,
                jnp.float32(center),
                mode=self.mode,
                c=self.c_stats,
                b=self.b,
                n=self.n,
            )
            if totals is None:
                totals = stats
            else:
                totals = {
                    k: jnp.maximum(totals[k], v) if k == "fmax" else totals[k] + v for k, v in stats.items()
                }
            used += cfg["num_samples"]
            rounds += 1
            if float(stats["bad"]) > 0:
                raise NonFiniteOutputError(
                    f"the model output is NaN/inf on some masks at level {level} of the search; check the "
                    "fill values and the output selector (e.g. log of a zero probability)."
                )
            selected = K.select_children(
                totals,
                jnp.float32(used),
                members,
                jnp.asarray(state.degree),
                jnp.asarray(state.valid),
                jnp.int32(level),
                order,
                threshold,
                jnp.float32(1.0 - cfg["confidence"]),
                pool=self.pool,
                b=self.b,
                r=self.r,
                n=self.n,
            )
            if not cfg["adaptive"] or int(selected["undecided"]) == 0 or used >= cfg["max_samples"]:
                break
        fields = ("members", "degree", "valid", "weights", "stderr")
        counters = ("children", "above", "degree_dropped", "undecided", "max_weight")
        fetch: dict[str, Any] = {k: selected[k] for k in fields + counters}
        check = self.constraints.get("postcheck")
        if post_bits is not None:
            trimmed = K.postcheck_trim(
                post_bits,
                selected,
                jnp.float32(check.delta),
                beam=self.beam,
                checked=self.beam if self.b == 1 else self.pool,
                n=self.n,
            )
            fetch.update({k: trimmed[k] for k in fields})
            fetch.update(
                rejected=trimmed["rejected"],
                unchecked=trimmed["unchecked"],
                statistic=trimmed["statistic"],
                candidates=selected["members"],
                added=selected["added"],
                candidate_weights=selected["weights"],
            )
        host = jax.device_get(fetch)  # one transfer per level
        removals: list[dict[str, Any]] = []
        rejected = unchecked = 0
        if post_bits is not None:
            unchecked = int(host["unchecked"])
            rejected = int(host["rejected"].sum())
            for row in np.flatnonzero(host["rejected"]):
                subset = sorted(int(i) for i in host["candidates"][row] if i != self.n)
                new = [int(i) for i in host["added"][row] if i != self.n]
                stat = float(host["statistic"][row])
                removals.append(
                    {
                        "constraint": "postcheck",
                        "kind": "subset",
                        "subset": subset,
                        "neurons": new,
                        "level": level,
                        "weight": float(host["candidate_weights"][row]),
                        "reason": (
                            f"new neuron(s) {new} predictable from the other members: pair agreement "
                            f"{stat:.3f} > δ = {check.delta}"
                        ),
                        "statistic": stat,
                        "threshold": float(check.delta),
                    }
                )
        valid = np.asarray(host["valid"])[: self.beam]
        weights = np.asarray(host["weights"])[: self.beam].astype(np.float32)
        new_state = SearchState(
            level=np.asarray(level + 1, np.int32),
            members=np.asarray(host["members"])[: self.beam].astype(np.int32),
            degree=np.asarray(host["degree"])[: self.beam].astype(np.int32),
            valid=valid,
            weights=weights,
            stderr=np.asarray(host["stderr"])[: self.beam].astype(np.float32),
            key=state.key,
        )
        kept = int(valid.sum())
        record = {
            "level": level,
            "prefix": min((level + 1) * self.b, int((np.asarray(setup.order) != self.n).sum())),
            "live_in": int(np.asarray(state.valid).sum()),
            "children": int(host["children"]),
            "above_threshold": int(host["above"]),
            "kept": kept,
            "rejected_postcheck": rejected,
            "unchecked_postcheck": unchecked,
            "degree_dropped": int(host["degree_dropped"]),
            "undecided": int(host["undecided"]),
            "samples": used,
            "rounds": rounds,
            "evaluations": used * self.r,
            "max_weight": float(host["max_weight"]),
            "min_kept_weight": float(weights[valid].min()) if kept else None,
        }
        return new_state, record, removals

    def _report_full_beam(self, solver_info: dict[str, Any], stats: dict[str, list]) -> None:
        """Warn and record (``solver["diagnostics"]``, code ``beam_full``) when buckets above the
        threshold were dropped for lack of beam slots on two or more consecutive levels."""
        above, kept = stats.get("above_threshold", []), stats.get("kept", [])
        full = [int(a) > self.beam and int(k) >= self.beam for a, k in zip(above, kept)]
        longest = run = 0
        for is_full in full:
            run = run + 1 if is_full else 0
            longest = max(longest, run)
        if longest < 2:
            return
        dropped = sum(int(a) - self.beam for a, f in zip(above, full) if f)
        report_diagnostic(
            solver_info,
            "beam_full",
            f"Goldreich–Levin (pass {self.pass_index}): the beam of {self.beam} live buckets was full on "
            f"{sum(full)} of {len(full)} levels ({longest} consecutive); {dropped} buckets above the "
            "weight threshold were dropped there, so heavy coefficients may be missing from the result.",
            f"use a larger beam (e.g. GoldreichLevin(beam={4 * self.beam})) or a larger tau (fewer "
            "buckets clear tau^2/2).",
            stacklevel=5,
        )

    # ------------------------------------------------------------------ leaves
    def _leaves(
        self,
        state: SearchState,
        setup: SearchSetup,
        meta: dict[str, Any],
        prior_wall: float,
        call_start: float,
        resumed_from: int | None,
    ) -> Spectrum:
        cfg, n = self.cfg, self.n
        center, mean, second, tau_abs = (float(v) for v in setup.scalars)
        valid = np.asarray(state.valid)
        members = np.asarray(state.members)
        # Column 0 is ∅ (all padding); column 1 + row is live bucket `row` (∅ itself is column 0).
        design_members = np.full((self.beam + 1, self.depth), n, np.int32)
        design_members[1:] = members
        columns, leaves = [0], [()]
        for row in np.flatnonzero(valid):
            subset = tuple(sorted(int(i) for i in members[row] if i != n))
            if subset:
                columns.append(row + 1)
                leaves.append(subset)
        draws = self.design_draws(TAG_LEAVES)
        values_dev = K.evaluate_design(self.problem, draws, mode=self.mode, c=self.c_design, mesh=self.mesh)
        values = self._checked(values_dev)
        if self.mode == "mask":
            meta["evaluations"]["leaves"] = int(values.shape[0])
        fit = LeafFit(self, values_dev, values, draws, jnp.asarray(design_members))
        columns = np.asarray(columns)
        coef, err = fit(columns, cfg["refit"])
        keep = np.array([s == () or abs(c) >= tau_abs / math.sqrt(2.0) for s, c in zip(leaves, coef)])
        dropped = int((~keep).sum())
        if dropped and cfg["refit"]:
            coef_k, err_k = fit(columns[keep], True)
        else:
            coef_k, err_k = coef[keep], err[keep]
        subsets = [s for s, k in zip(leaves, keep) if k]
        removed = list(meta["removed"])
        removed_count = int(meta["removed_count"])
        if "postprocess" in self.constraints:
            alias = self.constraints["postprocess"]
            sim = alias.similarity_matrix(self.problem, n)
            keep_a, records = alias.apply(subsets, coef_k, err_k, sim)
            subsets = [s for s, k in zip(subsets, keep_a) if k]
            coef_k, err_k = coef_k[keep_a], err_k[keep_a]
            removed.extend(records)
            removed_count += len(records)
        if self.mode == "mask":
            norm_sq = float((second * self.design_total + float((values**2).sum())) / (2 * self.design_total))
        else:
            norm_sq = float((values**2).mean())
        evaluations = dict(meta["evaluations"])
        wall = prior_wall + (time.perf_counter() - call_start)
        solver_info = {
            "name": "goldreich_levin",
            **{k: v for k, v in cfg.items()},
            "key": _key_data(self.key).tolist(),
            "evaluations": int(sum(evaluations.values())),
            "evaluations_by_stage": evaluations,
            "evaluation_unit": "mask" if self.mode == "mask" else "hybrid data row",
            "wall_time_s": wall,
            "resumed_from_level": resumed_from,
            "backend": jax.default_backend(),
            "devices": 1 if self.mesh is None else mesh_size(self.mesh),
            "chunks": dict(zip(("eval", "stats", "design", "leaf", "influence"), self.chunk_sizes())),
            "tau_abs": tau_abs,
            "weight_threshold": tau_abs**2 / 2.0,
            "center_value": center,
            "mean_estimate": mean,
            "norm_sq_estimate": second,
            "constant_function": bool(meta.get("constant_function", False)),
            "searched_neurons": int(meta["searched"]),
            "pruned_by_influence": int(meta["pruned"]),
            "search_order": [int(i) for i in np.asarray(setup.order) if i != n],
            "influence": [float(v) for v in np.asarray(setup.influence)]
            if cfg["order"] == "influence"
            else None,
            "levels": dict(meta["stats"]),
            "num_levels": int(meta["levels_total"]),
            "leaves": {"found": len(leaves), "reported": len(subsets), "below_threshold": dropped},
            "redundancy": {
                "constraints": cfg["redundancy"],
                "removed_count": removed_count,
                "removed": removed,
            },
        }
        self._report_full_beam(solver_info, meta["stats"])
        return Spectrum.build(
            n,
            subsets,
            np.asarray(coef_k, np.float64),
            stderr=np.asarray(err_k, np.float64),
            labels=self.problem.labels,
            norm_sq=norm_sq,
            problem=self.problem.describe(),
            solver=solver_info,
            output_label=self.problem.output_labels[0],
            output_index=0,
        )
