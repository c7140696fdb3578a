"""Never silent: conditions under which a Goldreich–Levin answer may be incomplete (private).

:func:`diagnose` reads a finished search's solver metadata and, for each condition found,
warns (:class:`~actspec_jax.diagnostics.IncompleteResultWarning`) and records it under
``spectrum.solver["diagnostics"]`` (:func:`~actspec_jax.diagnostics.report_diagnostic`):

* ``adaptive_cap`` — with ``adaptive=True``, a level stopped at ``max_samples`` while some
  buckets were still undecided (kept or dropped on an unconfident estimate);
* ``degree_cap`` — children beyond ``max_degree`` were dropped (their weight never searched);
* ``tiny_variance`` — the output's variance is below the squared heaviness threshold, so no
  non-constant term could ever be reported (e.g. a relative τ dominated by a large mean).
"""

from __future__ import annotations

from typing import Any

from actspec_jax.diagnostics import report_diagnostic

__all__ = ["diagnose"]


def _levels(solver: dict[str, Any]) -> dict[str, list]:
    levels = solver.get("levels") or {}
    return levels if isinstance(levels, dict) else {}


def diagnose(spectrum: Any, cfg: dict[str, Any]) -> Any:
    """Warn about and record (in ``spectrum.solver``) every incompleteness condition found."""
    solver = spectrum.solver
    levels = _levels(solver)
    if cfg.get("adaptive"):
        capped = [
            (lvl, und)
            for lvl, und, used in zip(
                levels.get("level", []), levels.get("undecided", []), levels.get("samples", [])
            )
            if und and used >= cfg["max_samples"]
        ]
        if capped:
            report_diagnostic(
                solver,
                "adaptive_cap",
                f"the adaptive sample rule hit max_samples={cfg['max_samples']} on {len(capped)} level(s) "
                f"(first: level {capped[0][0]}, {capped[0][1]} bucket(s) still undecided), so some "
                "buckets were kept or dropped on unconfident estimates.",
                "raise max_samples (or num_samples), or lower confidence.",
            )
    dropped = sum(levels.get("degree_dropped", []) or [])
    if dropped:
        report_diagnostic(
            solver,
            "degree_cap",
            f"{dropped} heavy bucket(s) would have grown beyond max_degree={cfg['max_degree']} and were "
            "dropped unsearched; terms of higher degree are missing.",
            "raise max_degree (up to 32).",
        )
    mean, second = solver.get("mean_estimate"), solver.get("norm_sq_estimate")
    tau_abs = solver.get("tau_abs")
    if None not in (mean, second, tau_abs) and not solver.get("constant_function"):
        variance = max(float(second) - float(mean) ** 2, 0.0)
        if variance < float(tau_abs) ** 2 and cfg.get("tau_mode") != "centered":
            report_diagnostic(
                solver,
                "tiny_variance",
                f"the output's variance ({variance:.3g}) is below the squared threshold "
                f"(τ_abs² = {float(tau_abs) ** 2:.3g}): the mean dominates ‖f‖₂, so no non-constant "
                "term can be reported.",
                "use tau_mode='centered' (τ relative to the standard deviation) or a smaller tau.",
            )
    return spectrum
