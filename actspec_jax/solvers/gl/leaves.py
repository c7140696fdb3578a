"""Leaf estimates of the Goldreich–Levin search (private).

The surviving subsets (and ``∅``) are fitted on one design of the estimator's — fresh uniform
masks (mask mode) or the data rows (paper mode) — either by least squares on their characters with
heteroskedasticity-robust (HC1 sandwich) standard errors with a floor for the float32
rounding of the moments (:meth:`LeafFit.rounding_floor`), or as independent means (the
textbook errors of data correlations). :func:`leaf_stage` runs the leaves of a finished search
and builds its :class:`~actspec_jax.Spectrum` with the solver's metadata.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.solvers.common.sharding import mesh_size
from actspec_jax.solvers.gl import kernels as K
from actspec_jax.solvers.gl.diagnostics import report_full_beam
from actspec_jax.solvers.gl.settings import TAG_LEAVES, key_data
from actspec_jax.solvers.gl.state import SearchSetup, SearchState
from actspec_jax.spectrum import Spectrum

__all__ = ["LeafFit", "leaf_stage"]


class LeafFit:
    """Leaf coefficients from one design (uniform masks, or the data rows in paper mode).

    The heavy work (``ΦᵀΦ``, ``Φᵀv`` and the sandwich's ``Φᵀ diag(e²) Φ``, with ``Φ`` the
    characters of every beam slot plus ∅) runs on device; the small ``K × K`` algebra in
    float64 on the host. ``ΦᵀΦ`` is exact in float32 (integer sums of ±1).
    """

    def __init__(
        self, run: Any, values_dev: jax.Array, values: np.ndarray, draws: jax.Array, members: jax.Array
    ):
        self.run, self.values_dev, self.draws, self.members = run, values_dev, draws, members
        self.total = values.shape[0]
        self.sum_sq = float((values * values).sum())
        kw = {"estimator": run.estimator, "c": run.c_chars, "n": run.n}
        gram, xty = K.leaf_moments(values_dev, draws, run.patterns, members, **kw)
        self.gram, self.xty = np.asarray(gram, np.float64), np.asarray(xty, np.float64)
        self.kw = kw

    def __call__(self, columns: np.ndarray, refit: bool) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients and standard errors of the characters in ``columns``.

        ``refit``: least squares with HC1 sandwich errors ``(ΦᵀΦ)⁻¹ Φᵀdiag(e²)Φ (ΦᵀΦ)⁻¹ · M/(M−K)``;
        otherwise independent means ``mean(v χ)`` with errors ``std(v χ)/√M``.
        """
        total, width = self.total, len(columns)
        xty = self.xty[columns]
        if not refit:
            coef = xty / total
            var = np.maximum(self.sum_sq / total - coef**2, 0.0) * total / max(total - 1, 1)
            return coef, np.sqrt(var / total)
        gram = self.gram[np.ix_(columns, columns)]
        vals, vecs = np.linalg.eigh(gram)  # symmetric PSD; pseudo-inverse if (near-)singular
        inv = np.where(vals > 1e-9 * max(vals.max(), 1.0), 1.0 / np.maximum(vals, 1e-300), 0.0)
        bread = (vecs * inv) @ vecs.T
        coef = bread @ xty
        full = np.zeros(self.gram.shape[0], np.float32)
        full[columns] = coef
        meat = K.leaf_meat(
            self.values_dev, self.draws, self.run.patterns, self.members, jnp.asarray(full), **self.kw
        )
        meat = np.asarray(meat, np.float64)[np.ix_(columns, columns)]
        cov = bread @ meat @ bread * total / max(total - width, 1)
        return coef, np.sqrt(np.maximum(np.diag(cov), 0.0) + self.rounding_floor() ** 2)

    def rounding_floor(self) -> float:
        """Smallest honest standard error: ``ε₃₂ · √M · rms(v)``.

        ``Φᵀv`` is a float32 sum of ``M`` terms of size ``~rms(v)``, so each coefficient carries
        a rounding error of about this scale whatever the sampling variance; when the listed
        terms explain ``f`` exactly the residuals vanish and the sandwich alone would report
        errors 10–100× smaller than the actual error. Added in quadrature.
        """
        return float(
            np.finfo(np.float32).eps * np.sqrt(self.total) * np.sqrt(self.sum_sq / max(self.total, 1))
        )


def fit_and_trim(
    fit: LeafFit, leaves: list[tuple[int, ...]], columns: np.ndarray, refit: bool, tau_abs: float
) -> tuple[list[tuple[int, ...]], np.ndarray, np.ndarray, int]:
    """Fit the leaves, drop those with ``|f̂(S)| < τ/√2`` (``∅`` always kept) and refit the kept
    ones together (``refit``) → ``(subsets, coef, stderr, number dropped)``."""
    coef, err = fit(columns, refit)
    keep = np.array([s == () or abs(c) >= tau_abs / math.sqrt(2.0) for s, c in zip(leaves, coef)])
    dropped = int((~keep).sum())
    if dropped and refit:
        coef, err = fit(columns[keep], True)
    else:
        coef, err = coef[keep], err[keep]
    return [s for s, k in zip(leaves, keep) if k], coef, err, dropped


def leaf_stage(
    run: Any,
    state: SearchState,
    setup: SearchSetup,
    meta: dict[str, Any],
    prior_wall: float,
    call_start: float,
    resumed_from: int | None,
) -> Spectrum:
    """The leaves of a finished search (module docstring) and the result: coefficients of the
    surviving subsets and ``∅`` on one fresh design, the ``|f̂(S)| ≥ τ/√2`` cut, spectral
    aliasing, and ``spectrum.solver`` (``run``: the :class:`~actspec_jax.solvers.gl.run.SearchRun`)."""
    cfg, n = run.cfg, run.n
    center, mean, second, tau_abs = (float(v) for v in setup.scalars)
    valid = np.asarray(state.valid)
    members = np.asarray(state.members)
    # Column 0 is ∅ (all padding); column 1 + row is live bucket `row` (∅ itself is column 0).
    design_members = np.full((run.beam + 1, run.depth), n, np.int32)
    design_members[1:] = members
    columns, leaves = [0], [()]
    for row in np.flatnonzero(valid):
        subset = tuple(sorted(int(i) for i in members[row] if i != n))
        if subset:
            columns.append(row + 1)
            leaves.append(subset)
    draws = run.design_draws(TAG_LEAVES)
    values_dev = K.evaluate_design(run.problem, draws, estimator=run.estimator, c=run.c_design, mesh=run.mesh)
    values = run._checked(values_dev)
    meta["evaluations"]["leaves"] = run.estimator.design_cost(int(values.shape[0]))
    fit = LeafFit(run, values_dev, values, draws, jnp.asarray(design_members))
    subsets, coef_k, err_k, dropped = fit_and_trim(fit, leaves, np.asarray(columns), cfg["refit"], tau_abs)
    removed = list(meta["removed"])
    removed_count = int(meta["removed_count"])
    if "postprocess" in run.constraints:
        alias = run.constraints["postprocess"]
        sim = alias.similarity_matrix(run.problem, n)
        keep_a, records = alias.apply(subsets, coef_k, err_k, sim)
        subsets = [s for s, k in zip(subsets, keep_a) if k]
        coef_k, err_k = coef_k[keep_a], err_k[keep_a]
        removed.extend(records)
        removed_count += len(records)
    norm_sq = run.estimator.norm_sq(second, values, run.design_total)
    evaluations = dict(meta["evaluations"])
    wall = prior_wall + (time.perf_counter() - call_start)
    solver_info = {
        "name": "goldreich_levin",
        **{k: v for k, v in cfg.items()},
        "key": key_data(run.key).tolist(),
        "evaluations": int(sum(evaluations.values())),
        "evaluations_by_stage": evaluations,
        "evaluation_unit": run.estimator.evaluation_unit,
        "wall_time_s": wall,
        "resumed_from_level": resumed_from,
        "backend": jax.default_backend(),
        "devices": 1 if run.mesh is None else mesh_size(run.mesh),
        "chunks": dict(zip(("eval", "stats", "design", "leaf", "influence"), run.chunk_sizes())),
        "tau_abs": tau_abs,
        "weight_threshold": tau_abs**2 / 2.0,
        "center_value": center,
        "mean_estimate": mean,
        "norm_sq_estimate": second,
        "constant_function": bool(meta.get("constant_function", False)),
        "searched_neurons": int(meta["searched"]),
        "pruned_by_influence": int(meta["pruned"]),
        "search_order": [int(i) for i in np.asarray(setup.order) if i != n],
        "influence": [float(v) for v in np.asarray(setup.influence)] if cfg["order"] == "influence" else None,
        "levels": dict(meta["stats"]),
        "num_levels": int(meta["levels_total"]),
        "leaves": {"found": len(leaves), "reported": len(subsets), "below_threshold": dropped},
        "redundancy": {
            "constraints": cfg["redundancy"],
            "removed_count": removed_count,
            "removed": removed,
        },
    }
    report_full_beam(solver_info, meta["stats"], run.beam, run.pass_index)
    return Spectrum.build(
        n,
        subsets,
        np.asarray(coef_k, np.float64),
        stderr=np.asarray(err_k, np.float64),
        labels=run.problem.labels,
        norm_sq=norm_sq,
        problem=run.problem.describe(),
        solver=solver_info,
        output_label=run.problem.output_labels[0],
        output_index=0,
    )
