"""Argument checks shared by the solvers' entry points (private).

Each names the argument, what it got and the fix, instead of a deep ``AttributeError``
(``key=0``). The solvers' settings are checked when a solver is built (:mod:`.settings`).
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = ["TRACER_ERRORS", "check_key"]

#: Errors JAX raises when host-side code meets a traced value (a solver object used inside jit).
TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
)


def check_key(key: Any, solver: str) -> None:
    """``key`` must be a JAX PRNG key (``jax.random.key(seed)``; legacy ``uint32[2]`` keys too)."""
    if isinstance(key, numbers.Integral | np.integer):
        raise ActSpecError(
            f"{solver} needs a JAX PRNG key, got the int {int(key)}: pass key=jax.random.key({int(key)})."
        )
    if isinstance(key, jax.Array | np.ndarray):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return
        if key.dtype == np.uint32 and key.shape[-1:] == (2,) and key.ndim == 1:
            return  # a legacy jax.random.PRNGKey
    raise ActSpecError(
        f"{solver} needs one JAX PRNG key, got {type(key).__name__} "
        f"{getattr(key, 'shape', '')} {getattr(key, 'dtype', '')}: pass key=jax.random.key(0) (any seed)."
    )
