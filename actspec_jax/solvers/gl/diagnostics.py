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
from actspec_jax.solvers.gl.settings import MAX_DEGREE_LIMIT

__all__ = ["diagnose", "report_full_beam"]


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
            _degree_fix(int(cfg["max_degree"])),
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


def _degree_fix(max_degree: int) -> str:
    """The advice for a degree cap: a larger cap while one is allowed, never the value already set."""
    if max_degree < MAX_DEGREE_LIMIT:
        larger = min(2 * max_degree, MAX_DEGREE_LIMIT)
        return f"raise max_degree (e.g. max_degree={larger}; at most {MAX_DEGREE_LIMIT})."
    return (
        f"max_degree is at its limit ({MAX_DEGREE_LIMIT}): raise tau so fewer high-degree buckets stay "
        "heavy, or use CompressiveSolver, which does not search bucket by bucket."
    )


def report_full_beam(solver_info: dict[str, Any], stats: dict[str, list], beam: int, pass_index: int) -> None:
    """Warn and record (``solver["diagnostics"]``, code ``beam_full``) when buckets above the
    threshold were dropped for lack of beam slots on two or more consecutive levels."""
    above, kept = stats.get("above_threshold", []), stats.get("kept", [])
    full = [int(a) > beam and int(k) >= beam for a, k in zip(above, kept)]
    longest = run = 0
    for is_full in full:
        run = run + 1 if is_full else 0
        longest = max(longest, run)
    if longest < 2:
        return
    dropped = sum(int(a) - beam for a, f in zip(above, full) if f)
    report_diagnostic(
        solver_info,
        "beam_full",
        f"Goldreich–Levin (pass {pass_index}): the beam of {beam} live buckets was full on "
        f"{sum(full)} of {len(full)} levels ({longest} consecutive); {dropped} buckets above the "
        "weight threshold were dropped there, so heavy coefficients may be missing from the result.",
        f"use a larger beam (e.g. GoldreichLevin(beam={4 * beam})) or a larger tau (fewer "
        "buckets clear tau^2/2).",
        stacklevel=5,
    )


# ------------------------------------------------------------------ leaves
