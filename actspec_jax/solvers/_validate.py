"""Argument checks shared by the solvers' entry points (private).

Each names the argument, what it got and the fix, instead of a truncation (``beam=2.5`` → 2),
a silent default (``memory_budget=0``) or a deep ``AttributeError`` (``key=0``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = ["check_integers", "check_key", "check_memory_budget"]


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


def check_memory_budget(value: Any, solver: str) -> None:
    """``None`` (the device's default) or a positive whole number of bytes."""
    if value is None:
        return
    whole = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if not whole or value != int(value) or value <= 0:
        raise ActSpecError(
            f"{solver}: memory_budget must be a positive number of bytes (e.g. 2**28 for 256 MiB) or "
            f"None for the device's default, got {value!r}."
        )


def check_integers(obj: Any, names: tuple[str, ...], solver: str) -> None:
    """Each named setting is ``None`` or a whole number (``2.0`` passes; ``2.5``, ``True`` do not)."""
    for name in names:
        value = getattr(obj, name, None)
        if value is None:
            continue
        whole = isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer()
        if not whole:
            raise ActSpecError(f"{solver}: {name} must be a whole number, got {value!r}.")
