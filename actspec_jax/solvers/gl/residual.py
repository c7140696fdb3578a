"""Goldreich–Levin's side of the residual-pass protocol (private; mask estimators).

:class:`SearchPasses` is the :class:`~actspec_jax.solvers.common.residual.ResidualRun` of one GL call:
later passes are single searches (:class:`~actspec_jax.solvers.gl.run.SearchRun`, ``passes=1``)
of the residual at the first pass's *absolute* threshold ``τ_abs``; refits are
:meth:`SearchRun.fit_subsets` on fresh designs of ``leaf_samples`` uniform masks (tag
``TAG_REFIT + p``; the final one ``TAG_REFIT``); the trim threshold is ``τ_abs/√2`` (the
leaves' own); the post-processing is spectral aliasing, re-decided on the union of all
passes (tag ``TAG_REFIT − 1``); ``finish`` adds the diagnostics and the degree profile. The
loop itself is :func:`actspec_jax.solvers.common.residual.run_passes`; see "Residual passes" in
:mod:`actspec_jax.solvers.gl.search`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from actspec_jax.solvers.common.profile_attach import attach_degree_profile
from actspec_jax.solvers.common.residual import ResidualProblem, run_passes
from actspec_jax.solvers.gl.diagnostics import diagnose
from actspec_jax.solvers.gl.run import SearchRun
from actspec_jax.solvers.gl.settings import TAG_REFIT, Progress
from actspec_jax.spectrum import Spectrum

__all__ = ["ResidualProblem", "SearchPasses", "residual_passes"]


class SearchPasses:
    """The residual-pass hooks of one GL call (``first``: its first pass, already executed;
    ``profile_key``: the caller's key when ``finish`` attaches the degree profile, else ``None``)."""

    def __init__(
        self,
        solver: Any,
        first: SearchRun,
        spectrum: Spectrum,
        progress: Progress | None,
        profile_key: jax.Array | None = None,
    ) -> None:
        self.solver, self.first, self.spectrum, self.progress = solver, first, spectrum, progress
        self.problem, self.n, self.key = first.problem, first.n, first.key
        self.profile_key = profile_key
        self.passes = 1 if spectrum.solver["constant_function"] else int(first.cfg["passes"])
        self.tau_abs = float(spectrum.solver["tau_abs"])
        self.threshold = self.tau_abs / math.sqrt(2.0)

    def search_residual(
        self, residual: Any, *, key: jax.Array, index: int, checkpoint_path: Path | None
    ) -> Spectrum:
        cfg = dict(self.first.cfg, tau=self.tau_abs, tau_mode="absolute", passes=1)
        run = SearchRun(self.solver, cfg, residual, key, self.progress, checkpoint_path, self.first.estimator)
        run.pass_index = index
        return run.execute(time.perf_counter())

    def fit_subsets(
        self, subsets: Sequence[tuple[int, ...]], *, tag: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        return self.first.fit_subsets(subsets, tag=TAG_REFIT + tag)

    def postprocess(self, subsets: list[tuple[int, ...]]) -> tuple[list, int, dict[str, Any]] | None:
        """Spectral aliasing on the union of every pass's subsets (its records replace pass 1's)."""
        alias = self.first.constraints.get("postprocess")
        if alias is None:
            return None
        coef, err, used = self.first.fit_subsets(subsets, tag=TAG_REFIT - 1)
        similarity = alias.similarity_matrix(self.problem, self.n)
        keep, records = alias.apply(subsets, coef, err, similarity)
        redundancy = dict(self.spectrum.solver["redundancy"])
        earlier = [r for r in redundancy["removed"] if r.get("constraint") == "spectral_aliasing"]
        redundancy["removed"] = [r for r in redundancy["removed"] if r not in earlier] + records
        redundancy["removed_count"] = int(redundancy["removed_count"]) - len(earlier) + len(records)
        return [s for s, k in zip(subsets, keep) if k], used, {"redundancy": redundancy}

    def finish(self, spectrum: Spectrum) -> Spectrum:
        """Diagnostics (:func:`~actspec_jax.solvers.gl.diagnostics.diagnose`) and the degree profile."""
        spectrum = diagnose(spectrum, self.first.cfg)
        if self.profile_key is None:
            return spectrum
        return attach_degree_profile(
            spectrum,
            self.problem,
            self.profile_key,
            evaluations=self.solver.profile_evaluations,
            memory_budget=self.solver.memory_budget,
        )


def residual_passes(
    solver: Any,
    first: SearchRun,
    spectrum: Spectrum,
    progress: Progress | None,
    checkpoint_path: str | Path | None,
    started: float,
) -> Spectrum:
    """Passes 2…``passes`` of ``solver`` on the residual of ``first``'s result ``spectrum`` and the
    joint refit, without ``finish`` (the former entry point; :func:`run_passes` does the work)."""
    return run_passes(SearchPasses(solver, first, spectrum, progress), checkpoint_path, started)
