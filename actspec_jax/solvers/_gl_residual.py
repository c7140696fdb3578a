"""Residual passes of the Goldreich–Levin search (private; mask estimators).

After a first search, later passes search the residual ``f − f̃`` (:class:`ResidualProblem`,
``f̃`` the fit so far) at the first pass's absolute threshold, then every subset found is
refitted together on fresh masks; see "Residual passes" in
:mod:`actspec_jax.solvers.goldreich_levin`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from actspec_jax.problems.base import Problem
from actspec_jax.solvers._gl_run import SearchRun
from actspec_jax.solvers._gl_settings import TAG_REFIT, Progress
from actspec_jax.spectrum import Spectrum

__all__ = ["ResidualProblem", "residual_passes"]


def residual_passes(
    solver: Any,
    first: SearchRun,
    spectrum: Spectrum,
    progress: Progress | None,
    checkpoint_path: str | Path | None,
    started: float,
) -> Spectrum:
    """Passes 2…``passes`` of ``solver`` on the residual of ``first``'s result ``spectrum``, then one
    joint refit ("Residual passes" in :mod:`actspec_jax.solvers.goldreich_levin`)."""
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
        key = jax.random.fold_in(first.key, 100 + index)
        run = SearchRun(solver, residual_cfg, residual, key, progress, path, first.estimator)
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
