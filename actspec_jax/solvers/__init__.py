"""Solvers: configured objects called on a problem that return a Spectrum."""

from actspec_jax.solvers._gl_state import CheckpointError
from actspec_jax.solvers.compressive import CompressiveSolver
from actspec_jax.solvers.degree_profile import DegreeProfile, DegreeProfileError, estimate_degree_profile
from actspec_jax.solvers.estimators import Estimator, PaperHybrids, UniformMasks
from actspec_jax.solvers.exact import ExactSolver, evaluation_plan, exact_value_table
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
from actspec_jax.solvers.goldreich_levin import GoldreichLevin
from actspec_jax.solvers.incremental import supports_incremental
from actspec_jax.solvers.redundancy import PostCheck, Prescreen, SpectralAliasing
from actspec_jax.solvers.residual import ResidualPasses

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
