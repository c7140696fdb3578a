"""Solvers: configured objects called on a problem that return a Spectrum."""

from actspec_jax.solvers._gl_state import CheckpointError
from actspec_jax.solvers.exact import ExactSolver, exact_value_table
from actspec_jax.solvers.goldreich_levin import GoldreichLevin
from actspec_jax.solvers.redundancy import PostCheck, Prescreen, SpectralAliasing

__all__ = [
    "CheckpointError",
    "ExactSolver",
    "GoldreichLevin",
    "PostCheck",
    "Prescreen",
    "SpectralAliasing",
    "exact_value_table",
]
