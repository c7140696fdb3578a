"""``actspec run``: one analysis of a shipped model, from configuration to report folder.

The run's steps, one module each:

* :mod:`~actspec_jax.runs.config` — :class:`RunConfig`, the solvers and :data:`PRESETS`;
* :mod:`~actspec_jax.runs.inputs` — loading the inputs and building the problem;
* :mod:`~actspec_jax.runs.pipeline` — :func:`run`: solve, faithfulness, deletion curve, firing;
* :mod:`~actspec_jax.runs.report_writer` — the report folder of a run, :func:`load_run`;
* :mod:`~actspec_jax.runs.safety` and :mod:`~actspec_jax.runs.locks` — writable, locked
  outputs and a rescued spectrum when the report cannot be written.

This layer may import everything below it (core, analysis, reports); only the command line
imports it (docs/architecture.md).
"""

from typing import TYPE_CHECKING, Any

#: Public names and their modules, imported on first use (PEP 562), so that ``actspec --help``
#: (which reads :data:`PRESETS`) does not import JAX.
_NAMES = {
    "GL_FIELDS": "actspec_jax.runs.config",
    "Inputs": "actspec_jax.runs.inputs",
    "PRESETS": "actspec_jax.runs.config",
    "RunConfig": "actspec_jax.runs.config",
    "RunResult": "actspec_jax.runs.pipeline",
    "SOLVERS": "actspec_jax.runs.config",
    "build_problem": "actspec_jax.runs.inputs",
    "config_from_preset": "actspec_jax.runs.config",
    "default_output": "actspec_jax.runs.inputs",
    "deletion_curve": "actspec_jax.runs.pipeline",
    "exact_top_r2": "actspec_jax.runs.pipeline",
    "heatmap_shape": "actspec_jax.runs.report_writer",
    "load_inputs": "actspec_jax.runs.inputs",
    "load_run": "actspec_jax.runs.report_writer",
    "paper_data_r2": "actspec_jax.runs.pipeline",
    "run": "actspec_jax.runs.pipeline",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name not in _NAMES:
        raise AttributeError(f"module 'actspec_jax.runs' has no attribute {name!r}")
    value = getattr(importlib.import_module(_NAMES[name]), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from actspec_jax.runs.config import GL_FIELDS, PRESETS, SOLVERS, RunConfig, config_from_preset
    from actspec_jax.runs.inputs import Inputs, build_problem, default_output, load_inputs
    from actspec_jax.runs.pipeline import RunResult, deletion_curve, exact_top_r2, paper_data_r2, run
    from actspec_jax.runs.report_writer import heatmap_shape, load_run

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
