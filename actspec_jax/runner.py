"""Moved to :mod:`actspec_jax.runs` (split into config, inputs, pipeline and report_writer).

This old import path re-exports the public names of the former ``runner`` module.
"""

from actspec_jax.runs import (
    GL_FIELDS,
    PRESETS,
    SOLVERS,
    Inputs,
    RunConfig,
    RunResult,
    build_problem,
    config_from_preset,
    default_output,
    deletion_curve,
    exact_top_r2,
    heatmap_shape,
    load_inputs,
    load_run,
    paper_data_r2,
    run,
)

__all__ = [
    "GL_FIELDS",
    "PRESETS",
    "SOLVERS",
    "Inputs",
    "RunConfig",
    "RunResult",
    "build_problem",
    "config_from_preset",
    "default_output",
    "deletion_curve",
    "exact_top_r2",
    "heatmap_shape",
    "load_inputs",
    "load_run",
    "paper_data_r2",
    "run",
]
