"""A problem wrapper that counts the rows it is evaluated on (for budget tests)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import actspec_jax as asj


def counting(problem: asj.Problem) -> tuple[asj.FunctionProblem, list[int]]:
    """The same function, appending every evaluated batch's row count (padding included) to the
    returned list; call ``jax.effects_barrier()`` before reading it."""
    seen: list[int] = []

    def f(masks: jax.Array) -> jax.Array:
        jax.debug.callback(lambda k: seen.append(int(k)), jnp.int32(masks.shape[0]))
        return problem.evaluate_unchecked(masks)

    return asj.FunctionProblem(f, problem.n), seen
