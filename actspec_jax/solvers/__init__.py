"""Solvers: configured objects called on a problem that return a Spectrum."""

from actspec_jax.solvers._gl_state import CheckpointError
from actspec_jax.solvers.compressive import CompressiveSolver
from actspec_jax.solvers.degree_profile import DegreeProfile, DegreeProfileError, estimate_degree_profile
from actspec_jax.solvers.exact import ExactSolver, evaluation_plan, exact_value_table
from actspec_jax.solvers.goldreich_levin import GoldreichLevin
from actspec_jax.solvers.incremental import supports_incremental
from actspec_jax.solvers.redundancy import PostCheck, Prescreen, SpectralAliasing

__all__ = [
    "CheckpointError",
    "CompressiveSolver",
    "DegreeProfile",
    "DegreeProfileError",
    "ExactSolver",
    "GoldreichLevin",
    "PostCheck",
    "Prescreen",
    "SpectralAliasing",
    "estimate_degree_profile",
    "evaluation_plan",
    "exact_value_table",
    "supports_incremental",
]
