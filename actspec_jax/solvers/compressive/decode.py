"""Decoding one output of an evaluated compressive plan: peel every round, then refit (private).

:func:`decode_output` is the per-output half of :class:`~.solver.CompressiveSolver`: the values of
all ``K`` outputs come from one evaluation of the plan, and each output is peeled and refitted on
its own column (:class:`SharedRefit` holds what the outputs share — the rounds' designs, the
uniform rows and, made once, the masks of the refit rows).
"""

from __future__ import annotations

import threading
from typing import Any

import jax.numpy as jnp
import numpy as np

from actspec_jax.problems.base import Problem
from actspec_jax.solvers.compressive.design import group_bins
from actspec_jax.solvers.compressive.hybrid import hybrid_refit
from actspec_jax.solvers.compressive.multiton import Code
from actspec_jax.solvers.compressive.peeling import peel, subtract
from actspec_jax.solvers.compressive.refit import CountedFit, fit_characters, peeled_characters, predict
from actspec_jax.solvers.compressive.stream import StageProgress, StructuredRows, UniformRows
from actspec_jax.spectrum import Spectrum

__all__ = ["EXACT_TOL", "SharedRefit", "decode_output"]

#: Tolerance of the exact factorization of bins (:mod:`~actspec_jax.solvers.compressive.sums`),
#: a share of ``rms f``: float32 round-off of the values and their FWHT, far below any tail.
EXACT_TOL = 1e-5


def decode_output(
    solver: Any,
    problem: Problem,
    k: int,
    values_by_stage: list[np.ndarray],
    codes: list[Code],
    shared: SharedRefit,
    plan: dict[str, int],
    code: str,
    syncs: dict[str, int],
    bar: StageProgress,
) -> Spectrum:
    """Peel every round of output ``k``, then refit (see the module docstring)."""
    n, b = int(problem.n), plan["bins_log2"]
    search = shared.search
    found: dict[tuple[int, ...], float] = {}
    round_stats = []
    for r, round_code in enumerate(codes):
        values = values_by_stage[r]
        bins = group_bins(jnp.asarray(values, jnp.float32), solver.groups, round_code.delays.shape[0], b)
        syncs["bins"] += 1
        subtract(bins, found, round_code)
        var = float(values.var())
        floor = max(solver.noise_level * var / (1 << b), 1e-12 * float((values**2).mean()) + 1e-30)
        new, stats = peel(
            bins, round_code, floor=floor,
            exact_tol=EXACT_TOL * float(np.sqrt((values**2).mean())) if code == "bch" else 0.0,
            search=search, deep=any(len(s) > 2 for s in found),
        )  # fmt: skip
        for subset, coef in new.items():
            found[subset] = found.get(subset, 0.0) + coef
        round_stats.append({"round": r, "new_terms": len(new), "evaluations": int(values.size), **stats})
        bar.stage("decode")
    held_values = values_by_stage[-1]
    values = held_values if solver.refit == "held" else np.concatenate(values_by_stage)
    held_rows = np.arange(values.shape[0] - plan["held"], values.shape[0])
    count_fit = CountedFit(solver._fit)
    if solver._dense_refit(n, values.shape[0], found):
        masks = shared.masks()
        subsets, coef, err, kept_low, keep_z = hybrid_refit(
            masks, values, found, n, singletons=solver.singletons, fit=count_fit, held_rows=held_rows
        )
        fitted = predict(masks[held_rows], list(subsets), coef, n)
        refit_mode = "low-degree"
    else:
        subsets = [(), *sorted({s for s in found if s}, key=lambda s: (len(s), s))]
        phi = peeled_characters([] if solver.refit == "held" else codes, shared.held, subsets, b)
        coef, err, _ = fit_characters(phi, values)
        fitted = phi[held_rows] @ coef
        kept_low, keep_z, refit_mode = 0, None, "peeled"
    syncs["refit"] += count_fit.syncs + 1
    bar.stage("refit")
    solver_info = {
        "rounds_run": round_stats,
        "peeled_terms": len([s for s in found if s]),
        "refit_columns": refit_mode,
        "low_degree_terms_added": kept_low,
        # their coefficients are shrunk (compressive.hybrid); their stderr are the fit's own
        "low_degree_shrinkage": "max(0, 1 - se^2/c^2)" if kept_low else None,
        # the keep rule |c| >= z·se of the added terms, z chosen on held-out uniform rows
        "low_degree_keep": None if keep_z is None else f"|c| >= {keep_z:g} se",
    }
    label = problem.output_labels[k] if problem.output_shape != () else None
    solver._report_unexplained(solver_info, fitted, held_values, stacklevel=5, output=label)
    return Spectrum.build(
        n,
        subsets,
        np.asarray(coef, np.float64),
        stderr=np.asarray(err, np.float64),
        labels=problem.labels,
        norm_sq=float((held_values**2).mean()) if held_values.size else float((values**2).mean()),
        problem=problem.describe(),
        solver=solver_info,
        output_label=problem.output_labels[k],
        output_index=k,
    )


class SharedRefit:
    """What every output's refit shares: the rounds' designs, the uniform rows, the joint-search mode
    and (made once, on first use) the masks of all refit rows."""

    def __init__(self, solver: Any, codes: list, held: UniformRows, n: int) -> None:
        self.solver, self.codes, self.held, self.n = solver, codes, held, n
        self.search = solver._search_mode(n, codes[0].delays) if codes else "all"
        self._masks: np.ndarray | None = None
        self._lock = threading.Lock()

    def masks(self) -> np.ndarray:
        with self._lock:
            return self._made_masks()

    def _made_masks(self) -> np.ndarray:
        if self._masks is None:
            rounds = (
                []
                if self.solver.refit == "held"
                else [StructuredRows(c.hashes, c.offsets, c.delays) for c in self.codes]
            )
            self._masks = np.concatenate([np.asarray(r.chunk(0, r.count)) for r in (*rounds, self.held)])
        return self._masks
