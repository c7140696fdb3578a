"""Solvers: configured objects called on a problem that return a Spectrum."""

from actspec_jax.solvers.exact import ExactSolver, evaluation_plan, exact_value_table
from actspec_jax.solvers.incremental import supports_incremental

__all__ = ["ExactSolver", "evaluation_plan", "exact_value_table", "supports_incremental"]
