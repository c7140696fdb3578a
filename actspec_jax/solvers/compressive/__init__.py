"""Compressive sparse-spectrum solver (structured subsampling, aliasing, peeling, refit)."""

from actspec_jax.solvers.compressive.solver import CompressiveSolver

__all__ = ["CompressiveSolver"]
