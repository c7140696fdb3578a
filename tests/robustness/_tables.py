"""A value-table problem for fuzzing: ``f(x) = table[index(x)]`` with the table a pytree leaf.

Tables of equal size share one compiled program (a :class:`FunctionProblem` closure would
recompile for every new table), so many random problems stay cheap.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.problems.base import Problem


@jax.tree_util.register_pytree_node_class
class TableProblem(Problem):
    """``f(x) = table[Σ_i [x_i = −1] 2^i]`` for ``x ∈ {−1,+1}^n`` (the library's mask order)."""

    def __init__(self, table) -> None:
        self.table = table
        self._n = int(np.log2(np.shape(table)[0]))

    @property
    def n(self) -> int:
        return self._n

    @property
    def output_shape(self) -> tuple[int, ...]:
        return ()

    def evaluate_unchecked(self, masks: jax.Array) -> jax.Array:
        bits = (masks < 0).astype(jnp.int32)
        index = bits @ (jnp.int32(1) << jnp.arange(self._n, dtype=jnp.int32))
        return jnp.asarray(self.table, jnp.float32)[index]

    def describe(self) -> dict:
        return {"kind": "TableProblem", "n": self._n}

    def tree_flatten(self):
        return (self.table,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0])


def polynomial_table(n: int, terms: dict[tuple[int, ...], float]) -> np.ndarray:
    """``float64[2^n]`` values of ``Σ_S c_S χ_S`` in mask order (χ_S = (−1)^{|S ∩ ablated|})."""
    k = np.arange(1 << n)
    out = np.zeros(1 << n)
    for subset, coef in terms.items():
        parity = np.zeros(1 << n, dtype=np.int64)
        for i in subset:
            parity ^= (k >> i) & 1
        out += coef * (1 - 2 * parity)
    return out


def random_terms(rng: np.random.Generator, n: int, count: int, max_degree: int = 4) -> dict:
    """``count`` distinct subsets of size 1..max_degree, |c| in [0.3, 1], random signs."""
    terms: dict[tuple[int, ...], float] = {}
    while len(terms) < count:
        size = int(rng.integers(1, min(max_degree, n) + 1))
        subset = tuple(sorted(rng.choice(n, size=size, replace=False).tolist()))
        terms.setdefault(subset, float(rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.0)))
    return terms
