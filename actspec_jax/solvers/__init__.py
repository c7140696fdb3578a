"""Solvers: configured objects called on a problem that return a Spectrum.

One sub-package per solver — :mod:`~actspec_jax.solvers.exact`,
:mod:`~actspec_jax.solvers.compressive`, :mod:`~actspec_jax.solvers.gl` — and
:mod:`~actspec_jax.solvers.common` for what they share; :mod:`~actspec_jax.solvers.functional`
is the jittable functional core (exact spectra and GL levels as pure functions).
"""

from actspec_jax.solvers.common.degree_profile import (
    DegreeProfile,
    DegreeProfileError,
    estimate_degree_profile,
)
from actspec_jax.solvers.common.residual import ResidualPasses
from actspec_jax.solvers.compressive import CompressiveSolver
from actspec_jax.solvers.exact import ExactSolver, evaluation_plan, exact_value_table, supports_incremental
from actspec_jax.solvers.functional import (
    GLState,
    estimate_moments,
    exact_spectrum,
    gl_init,
    gl_num_levels,
    gl_search,
    gl_update,
    top_terms,
)
from actspec_jax.solvers.gl import (
    CheckpointError,
    Estimator,
    GoldreichLevin,
    PaperHybrids,
    PostCheck,
    Prescreen,
    SpectralAliasing,
    UniformMasks,
)

__all__ = [
    "CheckpointError",
    "CompressiveSolver",
    "DegreeProfile",
    "DegreeProfileError",
    "Estimator",
    "ExactSolver",
    "GLState",
    "GoldreichLevin",
    "PaperHybrids",
    "PostCheck",
    "Prescreen",
    "ResidualPasses",
    "SpectralAliasing",
    "UniformMasks",
    "estimate_degree_profile",
    "estimate_moments",
    "evaluation_plan",
    "exact_spectrum",
    "exact_value_table",
    "gl_init",
    "gl_num_levels",
    "gl_search",
    "gl_update",
    "supports_incremental",
    "top_terms",
]
