"""The exact solver: all ``2^n`` masks and one fast Walsh–Hadamard transform.

The public face: :class:`ExactSolver`, :func:`evaluation_plan`, :func:`exact_value_table` and
:func:`supports_incremental`. Inside: ``solver`` (the solver object, its checkpoints and device
split), ``table`` (the value table, chunk by chunk) and ``incremental`` (the table in Gray-code
order, one unit's change at a time, where the model allows it).
"""

from actspec_jax.solvers.exact.incremental import supports_incremental
from actspec_jax.solvers.exact.solver import ExactSolver, evaluation_plan, exact_value_table

__all__ = ["ExactSolver", "evaluation_plan", "exact_value_table", "supports_incremental"]
