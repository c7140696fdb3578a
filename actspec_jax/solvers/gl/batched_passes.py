"""Residual passes of the batched Goldreich–Levin search (private).

The single-output rule (:func:`actspec_jax.solvers.common.residual.run_passes`) applied to every output at
once: pass ``p`` searches ``f_k − f̃_k`` for every output still active, at each output's own
first-pass absolute threshold, on one set of shared evaluations
(:class:`MultiResidualProblem`); every active output's
subsets are refitted on one shared fresh design (tag ``TAG_REFIT + p``, as in the single
search). An output whose pass found nothing new stops (its fit is final), exactly when its
single search would stop; the loop ends when every output has stopped or ``passes`` is reached.
Keys, checkpoint names, the column order, the ``passes_run`` records and the trim are the
single loop's helpers (:mod:`actspec_jax.solvers.common.residual`); the loop itself stays apart because
every step is per output on shared evaluations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.residual import (
    ResidualProblem,
    by_degree,
    pass_checkpoint,
    pass_key,
    pass_record,
    passes_info,
    trim,
)
from actspec_jax.solvers.gl.settings import TAG_REFIT
from actspec_jax.spectrum import Spectrum

__all__ = ["MultiResidualProblem", "residual_passes"]


@jax.tree_util.register_pytree_node_class
class MultiResidualProblem(ResidualProblem):
    """``f_k − f̃_k`` for every output ``k``: a multi-output problem minus one sparse
    approximation per output (``float32[k, K]``, same masks and ``n``)."""

    def __init__(self, base: Problem, approximations: Sequence[Spectrum]) -> None:
        self.base = base
        self.approximations = tuple(
            Spectrum(n=a.n, subsets=a.subsets, coefficients=a.coefficients) for a in approximations
        )

    @property
    def output_shape(self) -> tuple[int, ...]:  # n and labels: the base's, as ResidualProblem
        return (len(self.approximations),)

    @property
    def output_labels(self) -> tuple[str, ...]:
        return self.base.output_labels

    def evaluate_unchecked(self, masks: jax.Array) -> jax.Array:
        """``f(masks) − f̃(masks)``: every output's terms from one character product."""
        from actspec_jax.transforms.indexing import characters, membership_from_packed

        values = self.base.evaluate_unchecked(masks).reshape(masks.shape[0], -1)
        member = jnp.concatenate(
            [membership_from_packed(jnp.asarray(a.subsets), self.n) for a in self.approximations]
        )
        chi = characters(masks, member)  # [k, Σ_k T_k]
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
        }

    def tree_flatten(self):
        return (self.base, self.approximations), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        out = cls.__new__(cls)
        out.base, out.approximations = children
        return out


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
    outputs = len(spectra)
    tau_abs = np.asarray([float(s.solver["tau_abs"]) for s in spectra])
    residual_cfg = dict(cfg, tau=1.0, tau_mode="absolute", passes=1)
    active = np.asarray([not s.solver["constant_function"] for s in spectra])
    found = [{s for s in spec.subset_tuples() if s} for spec in spectra]
    stages = dict(spectra[0].solver["evaluations_by_stage"], residual_passes=0, refit=0)
    first_evals = int(spectra[0].solver["evaluations"])
    history: list[list[dict[str, Any]]] = [
        [pass_record(1, len(found[k]), first_evals)] for k in range(outputs)
    ]
    current = list(spectra)
    diagnostics = [list(s.solver.get("diagnostics", [])) for s in spectra]
    for index in range(2, cfg["passes"] + 1):
        if not active.any():
            break
        residual = MultiResidualProblem(first.problem, current)
        run = type(first)(
            solver, residual_cfg, residual, pass_key(first.key, index), progress,
            pass_checkpoint(checkpoint_path, index), tau_override=tau_abs,
        )  # fmt: skip
        run.output_labels = first.output_labels
        run.active = active.copy()
        run.pass_index = index
        extra = run.execute(time.perf_counter())
        used = int(extra[0].solver["evaluations"])
        stages["residual_passes"] += used
        to_fit: dict[int, list[tuple[int, ...]]] = {}
        new_any = np.zeros(outputs, bool)
        for k in np.flatnonzero(active):
            diagnostics[k].extend(extra[k].solver.get("diagnostics", []))
            new = {s for s in extra[k].subset_tuples() if s} - found[k]
            found[k] |= new
            new_any[k] = bool(new)
            norm = float(extra[k].solver["norm_sq_estimate"])
            history[k].append(pass_record(index, len(new), used, norm))
            to_fit[int(k)] = by_degree(found[k])
        fits, used_refit = first.fit_subsets_multi(to_fit, tag=TAG_REFIT + index)
        stages["refit"] += used_refit
        for k, (coef, err) in fits.items():
            current[k] = Spectrum.build(first.n, to_fit[k], coef, stderr=err)
        active &= new_any
    final: dict[int, list[tuple[int, ...]]] = {}
    kept: list[list[tuple[int, ...]]] = []
    for k in range(outputs):
        subsets = current[k].subset_tuples()
        keep = trim(subsets, current[k].coefficients, tau_abs[k] / math.sqrt(2.0))
        kept.append([s for s, flag in zip(subsets, keep) if flag])
        if not all(keep):
            final[k] = kept[k]
    fits, used_refit = first.fit_subsets_multi(final, tag=TAG_REFIT)
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
        out.append(
            Spectrum.build(
                first.n,
                kept[k],
                np.asarray(coef, np.float64),
                stderr=np.asarray(err, np.float64),
                labels=first.problem.labels,
                norm_sq=spec.norm_sq,
                problem=first.problem.describe(),
                solver=info,
                output_label=spec.output_label,
                output_index=k,
            )
        )
    return out
