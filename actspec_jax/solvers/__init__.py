"""Solvers: configured objects called on a problem that return a Spectrum."""

from actspec_jax.solvers.exact import ExactSolver, exact_value_table

__all__ = ["ExactSolver", "exact_value_table"]
