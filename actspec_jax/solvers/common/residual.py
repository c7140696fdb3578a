"""Residual passes over any large-``n`` solver: search ``f − f̃``, refit everything together.

**Rule.** A first pass of the wrapped solver gives ``f̃₁`` (subsets ``F₁``). Pass ``p = 2…P``
runs the solver's later-pass search on the residual ``f − f̃_{p−1}`` (:class:`ResidualProblem`,
same masks and ``n``; the terms already found no longer add variance or collide, which is
what lets smaller ones through) with key ``fold_in(key, 100 + p)`` and checkpoint
``<stem>.pass<p><suffix>``; the new subsets join ``F`` and all of ``F ∪ {∅}`` are refitted
together (:meth:`ResidualRun.fit_subsets`, tag ``p``) to give ``f̃_p``. The loop stops after a
pass that found nothing new. Then terms with ``|ĉ| < threshold`` are dropped (``∅`` kept),
the solver's post-processing runs on what is left (GoldreichLevin: spectral aliasing, which
must decide on the union), and the kept terms are refitted once more (tag ``0``) if anything
was dropped. ``solver['evaluations']`` counts every evaluation: the first pass's stages plus
``residual_passes`` and ``refit``; ``solver['passes_run']`` lists each pass's new subsets.

**Protocol.** A solver works under :class:`ResidualPasses` when it has
``start_passes(problem, *, key, passes, max_evaluations, progress, checkpoint_path)``, which
validates, plans the passes (and the budget, if any), runs the first pass and returns a
:class:`ResidualRun`: the first pass's ``spectrum``, the pass count ``passes`` (1: no
passes, e.g. a constant function), the trim ``threshold``, ``problem``, ``n``, ``key`` and
four methods — ``search_residual`` (one later pass), ``fit_subsets`` (joint least squares on
fresh uniform masks), ``postprocess`` (or ``None``) and ``finish`` (the solver's own last
step: diagnostics, degree profile). :class:`~actspec_jax.GoldreichLevin` and
:class:`~actspec_jax.CompressiveSolver` implement it; ``GoldreichLevin(passes=k)`` runs the
same loop (:func:`run_passes`).

**Many outputs** (a problem with ``output_shape != ()``, one design for all): :func:`run_output_passes`
applies the rule to every output at once — pass ``p`` searches ``f_k − f̃_k`` for every output
still active on one set of shared evaluations (:class:`MultiResidualProblem`), every active
output's subsets are refitted on one shared design, and an output whose pass found nothing new
stops (its fit is final), exactly when its own single-output loop would stop. The batched GL
search (:mod:`~actspec_jax.solvers.gl.batched_passes`) and the compressive solver
(:mod:`~actspec_jax.solvers.compressive.passes`) supply the search and the fit; a compressive run
whose first pass returned a :class:`~actspec_jax.SpectrumBatch` takes this loop under
:class:`ResidualPasses`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.problems.base import Problem
from actspec_jax.spectrum import Spectrum, SpectrumBatch

__all__ = [
    "MultiResidualProblem",
    "ResidualPasses",
    "ResidualProblem",
    "ResidualRun",
    "run_output_passes",
    "run_passes",
]

PROTOCOL_HINT = (
    "a solver under ResidualPasses implements start_passes(problem, *, key, passes, max_evaluations, "
    "progress, checkpoint_path) returning a run with search_residual, fit_subsets, postprocess and "
    "finish (see actspec_jax.solvers.common.residual); GoldreichLevin and CompressiveSolver do."
)


@runtime_checkable
class ResidualRun(Protocol):
    """One call's state between the first pass and the result (what :func:`run_passes` needs)."""

    problem: Problem
    n: int
    key: jax.Array
    spectrum: Spectrum  # the first pass's result
    passes: int  # passes in all (1: none after the first)
    threshold: float  # terms with |c| below it are dropped after the passes (∅ never)

    def search_residual(
        self, residual: Problem, *, key: jax.Array, index: int, checkpoint_path: Path | None
    ) -> Spectrum:
        """Pass ``index`` (≥ 2): the solver's later-pass search of ``residual``."""

    def fit_subsets(
        self, subsets: Sequence[tuple[int, ...]], *, tag: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Joint least squares of ``subsets`` (``∅`` first): ``float[K]`` coefficients and standard
        errors, and the evaluations spent; ``tag`` is the pass index (0: the final refit)."""

    def postprocess(self, subsets: list[tuple[int, ...]]) -> tuple[list, int, dict[str, Any]] | None:
        """``None``, or the kept subsets, evaluations spent and solver-metadata updates."""

    def finish(self, spectrum: Spectrum) -> Spectrum:
        """The solver's last step on the result (diagnostics, degree profile)."""


# ---------------------------------------------------------------------- helpers (shared with batched GL)
def pass_key(key: jax.Array, index: int) -> jax.Array:
    """Key of pass ``index``: ``fold_in(key, 100 + index)``."""
    return jax.random.fold_in(key, 100 + index)


def pass_checkpoint(path: str | Path | None, index: int) -> Path | None:
    """Checkpoint of pass ``index``: ``<stem>.pass<index><suffix>`` next to ``path``."""
    if path is None:
        return None
    path = Path(path)
    return path.with_name(f"{path.stem}.pass{index}{path.suffix}")


def by_degree(found: Iterable[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """``[∅, *found]`` sorted by (degree, indices): the refit's column order."""
    return [(), *sorted(found, key=lambda t: (len(t), t))]


def pass_record(index: int, new: int, evaluations: int, norm_sq: float | None = None) -> dict[str, Any]:
    """One entry of ``solver['passes_run']``."""
    record: dict[str, Any] = {"pass": index, "new_subsets": new, "evaluations": evaluations}
    if norm_sq is not None:
        record["residual_norm_sq_estimate"] = norm_sq
    return record


def trim(subsets: Sequence[tuple[int, ...]], coefficients: Any, threshold: float) -> list[bool]:
    """Keep ``∅`` and every term with ``|c| ≥ threshold``."""
    return [s == () or abs(c) >= threshold for s, c in zip(subsets, coefficients)]


def passes_info(
    first: Mapping[str, Any],
    stages: Mapping[str, int],
    history: list[dict[str, Any]],
    wall_time_s: float,
    reported: int,
    diagnostics: list[dict[str, str]],
    **updates: Any,
) -> dict[str, Any]:
    """The result's metadata: the first pass's, with every evaluation counted
    (``evaluations = Σ evaluations_by_stage``), ``passes_run``, the wall time, the reported count
    (``leaves['reported']`` where the solver records leaves) and all passes' diagnostics."""
    info = dict(first)
    info.update(
        evaluations=int(sum(stages.values())),
        evaluations_by_stage=dict(stages),
        passes_run=history,
        **updates,
        wall_time_s=float(wall_time_s),
    )
    if "leaves" in info:
        info["leaves"] = dict(info["leaves"], reported=reported)
    if diagnostics:
        info["diagnostics"] = diagnostics
    return info


def result(first: Spectrum, problem: Problem, subsets: list, coef: Any, err: Any, info: dict) -> Spectrum:
    """The final spectrum: ``first``'s norm and output, the refitted terms, metadata ``info``."""
    return Spectrum.build(
        int(problem.n),
        subsets,
        np.asarray(coef, np.float64),
        stderr=np.asarray(err, np.float64),
        labels=problem.labels,
        norm_sq=first.norm_sq,
        problem=problem.describe(),
        solver=info,
        output_label=first.output_label,
        output_index=first.output_index,
    )


# ---------------------------------------------------------------------- the loop
def run_passes(run: ResidualRun, checkpoint_path: str | Path | None, started: float) -> Spectrum:
    """Passes 2…``run.passes`` on the residual of ``run.spectrum``, then trim, post-process and the
    final refit (module docstring); ``run.spectrum`` unchanged when ``run.passes ≤ 1``."""
    spectrum = run.spectrum
    if run.passes <= 1:
        return spectrum
    found = {s for s in spectrum.subset_tuples() if s}
    stages = dict(spectrum.solver["evaluations_by_stage"], residual_passes=0, refit=0)
    history = [pass_record(1, len(found), int(spectrum.solver["evaluations"]))]
    current = spectrum
    diagnostics = list(spectrum.solver.get("diagnostics", []))
    for index in range(2, run.passes + 1):
        extra = run.search_residual(
            ResidualProblem(run.problem, current),
            key=pass_key(run.key, index),
            index=index,
            checkpoint_path=pass_checkpoint(checkpoint_path, index),
        )
        diagnostics.extend(extra.solver.get("diagnostics", []))
        new = {s for s in extra.subset_tuples() if s} - found
        found |= new
        used = int(extra.solver["evaluations"])
        stages["residual_passes"] += used
        norm = float(extra.solver.get("norm_sq_estimate", extra.norm_sq))
        history.append(pass_record(index, len(new), used, norm))
        subsets = by_degree(found)
        coef, err, used = run.fit_subsets(subsets, tag=index)
        stages["refit"] += used
        current = Spectrum.build(run.n, subsets, coef, stderr=err)
        if not new:
            break
    subsets = current.subset_tuples()
    keep = trim(subsets, current.coefficients, run.threshold)
    subsets = [s for s, k in zip(subsets, keep) if k]
    updates: dict[str, Any] = {}
    post = run.postprocess(subsets)
    if post is not None:  # e.g. aliases re-found on the residual: decided on the union
        subsets, used, updates = post
        stages["refit"] += used
        keep.append(False)  # the kept terms are refitted together below
    if not all(keep):
        coef, err, used = run.fit_subsets(subsets, tag=0)
        stages["refit"] += used
    else:
        coef, err = np.asarray(current.coefficients), np.asarray(current.stderr)
    wall = float(spectrum.solver["wall_time_s"]) + (time.perf_counter() - started)
    info = passes_info(spectrum.solver, stages, history, wall, len(subsets), diagnostics, **updates)
    return result(spectrum, run.problem, subsets, coef, err, info)


Search = Callable[[list[Spectrum], int, np.ndarray], list]
Fit = Callable[[dict[int, list[tuple[int, ...]]], int], tuple[dict[int, tuple[Any, Any]], int]]


def run_output_passes(
    spectra: Sequence[Spectrum],
    problem: Problem,
    *,
    passes: int,
    thresholds: np.ndarray,
    search: Search,
    fit: Fit,
    started: float,
) -> list[Spectrum]:
    """:func:`run_passes` for ``K`` outputs of one problem at once (module docstring).

    ``spectra``: the first pass's ``K`` spectra; ``thresholds: float[K]``: each output's trim
    (``∅`` never dropped); ``search(current, index, active) → [K]`` runs pass ``index`` on the
    residuals ``f_k − current[k]`` of the outputs with ``active[k]`` and returns their spectra
    (``None`` for the others); ``fit({k: subsets}, tag) → ({k: (coef, stderr)}, evaluations)``
    refits the given outputs (``tag``: the pass index, 0 for the final refit). Evaluations are
    shared, so every output's ``solver['evaluations']`` is the call's total.
    """
    outputs = len(spectra)
    active = np.asarray([not s.solver.get("constant_function", False) for s in spectra])
    found = [{s for s in spec.subset_tuples() if s} for spec in spectra]
    stages = dict(spectra[0].solver["evaluations_by_stage"], residual_passes=0, refit=0)
    first_evals = int(spectra[0].solver["evaluations"])
    history = [[pass_record(1, len(found[k]), first_evals)] for k in range(outputs)]
    current = list(spectra)
    diagnostics = [list(s.solver.get("diagnostics", [])) for s in spectra]
    for index in range(2, passes + 1):
        if not active.any():
            break
        extra = search(current, index, active.copy())
        used = next(int(e.solver["evaluations"]) for e in extra if e is not None)
        stages["residual_passes"] += used
        to_fit: dict[int, list[tuple[int, ...]]] = {}
        new_any = np.zeros(outputs, bool)
        for k in np.flatnonzero(active):
            diagnostics[k].extend(extra[k].solver.get("diagnostics", []))
            new = {s for s in extra[k].subset_tuples() if s} - found[k]
            found[k] |= new
            new_any[k] = bool(new)
            norm = float(extra[k].solver.get("norm_sq_estimate", extra[k].norm_sq))
            history[k].append(pass_record(index, len(new), used, norm))
            to_fit[int(k)] = by_degree(found[k])
        fits, used_refit = fit(to_fit, index)
        stages["refit"] += used_refit
        for k, (coef, err) in fits.items():
            current[k] = Spectrum.build(int(problem.n), to_fit[k], coef, stderr=err)
        active &= new_any
    final: dict[int, list[tuple[int, ...]]] = {}
    kept: list[list[tuple[int, ...]]] = []
    for k in range(outputs):
        subsets = current[k].subset_tuples()
        keep = trim(subsets, current[k].coefficients, float(thresholds[k]))
        kept.append([s for s, flag in zip(subsets, keep) if flag])
        if not all(keep):
            final[k] = kept[k]
    fits, used_refit = fit(final, 0)
    stages["refit"] += used_refit
    wall = time.perf_counter() - started
    out = []
    for k, spec in enumerate(spectra):
        if k in fits:
            coef, err = fits[k]
        else:
            coef, err = np.asarray(current[k].coefficients), np.asarray(current[k].stderr)
        total_wall = float(spec.solver["wall_time_s"]) + wall
        info = passes_info(spec.solver, stages, history[k], total_wall, len(kept[k]), diagnostics[k])
        out.append(dataclasses.replace(result(spec, problem, kept[k], coef, err, info), output_index=k))
    return out


@dataclasses.dataclass(frozen=True)
class ResidualPasses:
    """``passes`` residual passes of ``solver`` and one joint refit (see the module docstring).

    Args:
      solver: a solver implementing the protocol (``start_passes``): ``GoldreichLevin`` or
        ``CompressiveSolver``.
      passes: passes in all, ``≥ 1`` (1: the solver's own result); the loop stops early after
        a pass that finds nothing new.
      max_evaluations: total budget of problem evaluations over all passes and refits, never
        exceeded; how it is split is the solver's (CompressiveSolver: ``B/8`` for the refit
        design, the rest in equal per-pass budgets; GoldreichLevin plans its own passes: set
        ``GoldreichLevin(passes=k, max_evaluations=B)``). ``None``: each pass costs what the
        solver costs alone, plus the refits.

    Call it as the solver: ``ResidualPasses(CompressiveSolver(max_evaluations=4000), passes=2)(
    problem, key=key)``; ``progress``/``checkpoint_path`` are passed to solvers that take them.
    """

    solver: Any
    _: dataclasses.KW_ONLY
    passes: int = 2
    max_evaluations: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.passes, bool) or not isinstance(self.passes, (int, np.integer)) or self.passes < 1:
            raise ActSpecError(f"ResidualPasses needs passes >= 1 (an int), got {self.passes!r}.")
        if self.max_evaluations is not None and (
            isinstance(self.max_evaluations, bool)
            or not isinstance(self.max_evaluations, (int, np.integer))
            or self.max_evaluations < 1
        ):
            raise ActSpecError(
                f"ResidualPasses needs max_evaluations a positive int or None, got {self.max_evaluations!r}."
            )
        if not callable(getattr(self.solver, "start_passes", None)):
            name = type(self.solver).__name__
            raise ActSpecError(f"{name} does not support residual passes: {PROTOCOL_HINT}")

    def __call__(
        self,
        problem: Problem,
        *,
        key: jax.Array | None = None,
        progress: Any = None,
        checkpoint_path: str | Path | None = None,
    ) -> Spectrum | SpectrumBatch:
        """The wrapped solver's result after ``passes`` residual passes: a :class:`Spectrum`, or a
        :class:`~actspec_jax.SpectrumBatch` for a problem with several outputs (solvers that
        decode many outputs from one design: CompressiveSolver)."""
        started = time.perf_counter()
        run = self.solver.start_passes(
            problem,
            key=key,
            passes=int(self.passes),
            max_evaluations=None if self.max_evaluations is None else int(self.max_evaluations),
            progress=progress,
            checkpoint_path=checkpoint_path,
        )
        if not isinstance(run, ResidualRun):
            raise ActSpecError(f"{type(self.solver).__name__}.start_passes returned no run: {PROTOCOL_HINT}")
        if isinstance(run.spectrum, SpectrumBatch):  # many outputs: the run drives run_output_passes
            return run.finish_outputs(started)
        return run.finish(run_passes(run, checkpoint_path, started))


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


@jax.tree_util.register_pytree_node_class
class MultiResidualProblem(ResidualProblem):
    """``f_k − f̃_k`` for the outputs ``k ∈ outputs`` of a multi-output problem (default: all), one
    sparse approximation each: ``float32[m, len(outputs)]`` from one evaluation of the base
    (same masks and ``n``)."""

    def __init__(
        self, base: Problem, approximations: Sequence[Spectrum], outputs: Sequence[int] | None = None
    ) -> None:
        self.base = base
        self.approximations = tuple(
            Spectrum(n=a.n, subsets=a.subsets, coefficients=a.coefficients) for a in approximations
        )
        self.outputs = None if outputs is None else tuple(int(k) for k in outputs)
        if self.outputs is not None and len(self.outputs) != len(self.approximations):
            raise ActSpecError(
                f"MultiResidualProblem: {len(self.approximations)} approximations for "
                f"{len(self.outputs)} outputs."
            )

    @property
    def output_shape(self) -> tuple[int, ...]:  # n and labels: the base's, as ResidualProblem
        return (len(self.approximations),)

    @property
    def output_labels(self) -> tuple[str, ...]:
        labels = self.base.output_labels
        return labels if self.outputs is None else tuple(labels[k] for k in self.outputs)

    def evaluate_unchecked(self, masks: jax.Array) -> jax.Array:
        """``f(masks) − f̃(masks)``: every output's terms from one character product."""
        from actspec_jax.transforms.indexing import characters, membership_from_packed

        values = self.base.evaluate_unchecked(masks).reshape(masks.shape[0], -1)
        if self.outputs is not None:
            values = values[:, jnp.asarray(self.outputs)]
        member = jnp.concatenate(
            [membership_from_packed(jnp.asarray(a.subsets), self.n) for a in self.approximations]
        )
        chi = characters(masks, member)  # [m, Σ_k T_k]
        blocks = [jnp.asarray(a.coefficients, chi.dtype) for a in self.approximations]
        owner = jnp.concatenate([jnp.full(c.shape, k) for k, c in enumerate(blocks)])
        coef = jnp.concatenate(blocks)[:, None] * (owner[:, None] == jnp.arange(len(blocks))[None, :])
        return values - chi @ coef

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "MultiResidualProblem",
            "n": self.n,
            "base": self.base.describe(),
            "terms_subtracted": [a.num_terms for a in self.approximations],
            **({} if self.outputs is None else {"outputs": list(self.outputs)}),
        }

    def tree_flatten(self):
        return (self.base, self.approximations), self.outputs

    @classmethod
    def tree_unflatten(cls, aux, children):
        out = cls.__new__(cls)
        out.base, out.approximations = children
        out.outputs = aux
        return out
