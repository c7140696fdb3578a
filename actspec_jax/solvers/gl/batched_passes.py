"""Residual passes of the batched Goldreich–Levin search (private).

The single-output rule (:func:`actspec_jax.solvers.common.residual.run_passes`) applied to every output at
once: pass ``p`` searches ``f_k − f̃_k`` for every output still active, at each output's own
first-pass absolute threshold, on one set of shared evaluations
(:class:`~actspec_jax.solvers.common.residual.MultiResidualProblem`); every active output's
subsets are refitted on one shared fresh design (tag ``TAG_REFIT + p``, as in the single
search). An output whose pass found nothing new stops (its fit is final), exactly when its
single search would stop; the loop ends when every output has stopped or ``passes`` is reached.
The loop is :func:`~actspec_jax.solvers.common.residual.run_output_passes` (shared with the
compressive solver); this module supplies GL's pass (another batched search of the residuals at
the first pass's thresholds) and its refit, and trims at ``τ_k/√2`` as a single search does.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from actspec_jax.solvers.common.residual import (
    MultiResidualProblem,
    pass_checkpoint,
    pass_key,
    run_output_passes,
)
from actspec_jax.solvers.gl.settings import TAG_REFIT
from actspec_jax.spectrum import Spectrum

__all__ = ["residual_passes"]


def residual_passes(
    solver: Any,
    first: Any,
    spectra: list[Spectrum],
    progress: Any,
    checkpoint_path: str | Path | None,
    started: float,
) -> list[Spectrum]:
    """Passes 2…``passes`` on every output's residual, then each output's final refit (``first``:
    the first pass's :class:`~actspec_jax.solvers.gl.batched.BatchedRun`; each pass is another)."""
    cfg = first.cfg
    tau_abs = np.asarray([float(s.solver["tau_abs"]) for s in spectra])
    residual_cfg = dict(cfg, tau=1.0, tau_mode="absolute", passes=1)

    def search(current: list[Spectrum], index: int, active: np.ndarray) -> list[Spectrum]:
        residual = MultiResidualProblem(first.problem, current)
        run = type(first)(
            solver, residual_cfg, residual, pass_key(first.key, index), progress,
            pass_checkpoint(checkpoint_path, index), tau_override=tau_abs,
        )  # fmt: skip
        run.output_labels = first.output_labels
        run.active = active
        run.pass_index = index
        return run.execute(time.perf_counter())

    def fit(subsets: dict[int, list[tuple[int, ...]]], index: int) -> tuple[dict, int]:
        return first.fit_subsets_multi(subsets, tag=TAG_REFIT + index)

    return run_output_passes(
        spectra, first.problem, passes=cfg["passes"], thresholds=tau_abs / math.sqrt(2.0),
        search=search, fit=fit, started=started,
    )  # fmt: skip
