"""Functions with known spectra (ground truth for tests and benchmarks).

Plain problems: :func:`dictator`, :func:`parity`, :func:`and_function`, :func:`or_function`,
:func:`majority`, :func:`sparse_polynomial`, :func:`random_sparse_polynomial`. Each returns a
:class:`Planted` pair ``(problem, truth)`` where ``truth`` is ``{subset: f̂(S)}`` computed
independently of the library's transforms (closed forms or a float64 sum over ``2^k``
terms of the ``k`` variables a term depends on).

Planted models: :func:`planted_mlp` builds a small Flax MLP whose hidden ReLU layer of
``n`` neurons feeds gadgets that realise chosen functions of chosen neuron subsets, so
tests run the full model path (cut → mask → head → output) against a known spectrum.
All symbols follow :mod:`actspec_jax.transforms.indexing` (+1 = kept).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.problems.base import FunctionProblem
from actspec_jax.problems.cut import cut_linen
from actspec_jax.problems.masked import MaskedProblem

__all__ = [
    "Planted",
    "PlantedMLP",
    "and_function",
    "dictator",
    "majority",
    "or_function",
    "parity",
    "planted_mlp",
    "random_sparse_polynomial",
    "sparse_polynomial",
    "symmetric_term_spectrum",
]

Truth = dict[tuple[int, ...], float]


class Planted(NamedTuple):
    """A problem and its true spectrum ``{sorted subset tuple: coefficient}`` (zeros omitted)."""

    problem: Any
    truth: Truth


def _subset(subset: Sequence[int], n: int) -> tuple[int, ...]:
    out = tuple(sorted(int(i) for i in subset))
    if len(set(out)) != len(out) or any(not 0 <= i < n for i in out):
        raise ValueError(f"subset {tuple(subset)} must hold distinct neurons in 0..{n - 1}.")
    return out


def symmetric_term_spectrum(subset: Sequence[int], g: Sequence[float]) -> Truth:
    """Spectrum of ``x ↦ g[#kept neurons in S]`` by an explicit float64 sum over ``2^|S|`` masks.

    ``g`` has ``|S| + 1`` entries (``g[j]`` for ``j`` kept neurons). Independent of any FWHT.
    """
    subset = tuple(subset)
    k = len(subset)
    if len(g) != k + 1:
        raise ValueError(f"g needs {k + 1} values for a subset of {k} neurons, got {len(g)}.")
    masks = np.array(list(itertools.product([1.0, -1.0], repeat=k))).reshape(-1, k)
    values = np.asarray(g, np.float64)[(masks > 0).sum(axis=1)]
    truth: Truth = {}
    for size in range(k + 1):
        for local in itertools.combinations(range(k), size):
            chi = np.prod(masks[:, list(local)], axis=1) if local else np.ones(len(masks))
            coef = float(np.mean(values * chi))
            if abs(coef) > 1e-12:
                truth[tuple(subset[i] for i in local)] = coef
    return truth


def _add(into: Truth, terms: Mapping[tuple[int, ...], float], scale: float = 1.0) -> Truth:
    for key, value in terms.items():
        into[key] = float(into.get(key, 0.0) + scale * value)
    return {k: v for k, v in into.items() if abs(v) > 1e-12}


def dictator(n: int, i: int, sign: float = 1.0) -> Planted:
    """``f(x) = sign · x_i``: one coefficient ``sign`` at ``{i}``."""
    (i,) = _subset([i], n)
    return Planted(FunctionProblem(lambda x: sign * x[:, i], n, name=f"dictator({i})"), {(i,): float(sign)})


def parity(n: int, subset: Sequence[int]) -> Planted:
    """``f(x) = χ_S(x) = ∏_{i∈S} x_i``: one coefficient 1 at ``S``."""
    s = _subset(subset, n)
    idx = jnp.asarray(s, jnp.int32)
    return Planted(FunctionProblem(lambda x: jnp.prod(x[:, idx], axis=1), n, name=f"parity{s}"), {s: 1.0})


def and_function(n: int, subset: Sequence[int]) -> Planted:
    """``f(x) = 1`` iff every neuron of ``S`` is kept, else 0: ``f̂(T) = 2^{−|S|}`` for ``T ⊆ S``."""
    s = _subset(subset, n)
    idx = jnp.asarray(s, jnp.int32)
    truth = {t: 2.0 ** -len(s) for r in range(len(s) + 1) for t in itertools.combinations(s, r)}
    f = lambda x: jnp.all(x[:, idx] > 0, axis=1).astype(jnp.float32)  # noqa: E731
    return Planted(FunctionProblem(f, n, name=f"and{s}"), truth)


def or_function(n: int, subset: Sequence[int]) -> Planted:
    """``f(x) = 1`` iff some neuron of ``S`` is kept: ``f = 1 − ∏(1 − x_i)/2``."""
    s = _subset(subset, n)
    idx = jnp.asarray(s, jnp.int32)
    truth = {
        t: -((-1.0) ** len(t)) * 2.0 ** -len(s)
        for r in range(len(s) + 1)
        for t in itertools.combinations(s, r)
    }
    truth[()] = 1.0 + truth[()]
    f = lambda x: jnp.any(x[:, idx] > 0, axis=1).astype(jnp.float32)  # noqa: E731
    return Planted(FunctionProblem(f, n, name=f"or{s}"), {k: v for k, v in truth.items() if v})


def majority(n: int, subset: Sequence[int]) -> Planted:
    """``f(x) = sign(Σ_{i∈S} x_i)`` for odd ``|S|`` (majority of 3: ½ on singletons, −½ on the triple)."""
    s = _subset(subset, n)
    if len(s) % 2 == 0:
        raise ValueError(f"majority needs an odd number of neurons, got {len(s)}.")
    idx = jnp.asarray(s, jnp.int32)
    g = [1.0 if 2 * j > len(s) else -1.0 for j in range(len(s) + 1)]
    f = lambda x: jnp.sign(jnp.sum(x[:, idx], axis=1))  # noqa: E731
    return Planted(FunctionProblem(f, n, name=f"majority{s}"), symmetric_term_spectrum(s, g))


def sparse_polynomial(n: int, terms: Mapping[Sequence[int], float]) -> Planted:
    """``f(x) = Σ_S c_S χ_S(x)`` for the given ``{subset: c_S}``."""
    clean: Truth = {}
    for subset, coef in terms.items():
        clean = _add(clean, {_subset(subset, n): float(coef)})
    keys = list(clean)
    member = np.zeros((len(keys), n), np.float32)
    for row, key in enumerate(keys):
        member[row, list(key)] = 1.0
    member_j = jnp.asarray(member)
    coefs = jnp.asarray([clean[k] for k in keys], jnp.float32)

    def f(x: jax.Array) -> jax.Array:
        ablated = (x < 0).astype(jnp.float32)
        counts = ablated @ member_j.T
        return (1.0 - 2.0 * jnp.mod(counts, 2.0)) @ coefs

    return Planted(FunctionProblem(f, n, name="sparse_polynomial"), clean)


def random_sparse_polynomial(
    key: jax.Array,
    n: int,
    num_terms: int,
    *,
    max_degree: int = 4,
    min_abs: float = 0.3,
    max_abs: float = 1.0,
) -> Planted:
    """``num_terms`` distinct random subsets of size ``1…max_degree`` with random-sign
    coefficients of magnitude uniform in ``[min_abs, max_abs]``."""
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    terms: dict[tuple[int, ...], float] = {}
    while len(terms) < num_terms:
        size = int(rng.integers(1, max_degree + 1))
        subset = tuple(sorted(rng.choice(n, size=size, replace=False).tolist()))
        if subset not in terms:
            terms[subset] = float(rng.choice([-1.0, 1.0]) * rng.uniform(min_abs, max_abs))
    return sparse_polynomial(n, terms)


# --------------------------------------------------------------------------- planted MLPs

GADGETS: dict[str, Callable[[int], list[float]]] = {
    "parity": lambda k: [(-1.0) ** (k - j) for j in range(k + 1)],
    "and": lambda k: [1.0 if j == k else 0.0 for j in range(k + 1)],
    "or": lambda k: [0.0 if j == 0 else 1.0 for j in range(k + 1)],
    "majority": lambda k: [1.0 if 2 * j > k else -1.0 for j in range(k + 1)],
}


class _PlantedNet(nn.Module):
    """x → relu(Dense(n)) =: 'hidden' → ReLU gadget layer → linear read-out (1 logit)."""

    n: int
    num_gadget_units: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(nn.Dense(self.n, name="hidden_dense")(x))
        h = _Identity(name="hidden")(h)
        u = nn.relu(nn.Dense(self.num_gadget_units, name="gadgets")(h))
        skip = nn.Dense(1, use_bias=False, name="skip")(h)
        return nn.Dense(1, name="readout")(u) + skip


class _Identity(nn.Module):
    """Named no-op marking a cut point (the post-ReLU hidden activations)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return x


@dataclasses.dataclass(frozen=True, eq=False)
class PlantedMLP:
    """A Flax MLP whose ``'hidden'`` layer (``n`` ReLU neurons, all active with value 1)
    drives one output logit ``f = Σ_terms c_T · g_T(#kept neurons of T) + Σ_i d_i h_i``.

    With ``fill='zero'`` (the only fill under which the gadgets see kept/ablated as 1/0)
    the spectrum of ``logit:0`` is exactly ``truth`` (``d_i`` = ``distractor`` weights
    add ``d_i / 2`` at ``{i}`` and to the constant).
    """

    module: nn.Module
    variables: Any
    inputs: jax.Array
    layer: str
    truth: Truth

    def problem(self, **kwargs: Any) -> MaskedProblem:
        kwargs.setdefault("output", "logit:0")
        kwargs.setdefault("fill", "zero")
        cut = cut_linen(self.module, self.variables, self.layer)
        return MaskedProblem.from_cut(cut, self.inputs, **kwargs)


def planted_mlp(
    n: int,
    terms: Mapping[Sequence[int], float],
    *,
    gadget: str | Mapping[Sequence[int], str] = "parity",
    distractor: float = 0.0,
    key: jax.Array | None = None,
    num_inputs: int = 4,
    input_dim: int = 8,
) -> PlantedMLP:
    """Build a :class:`PlantedMLP` with ``{subset: coefficient}`` terms.

    Args:
      n: hidden neurons (the layer to analyse).
      terms: planted subsets and their output weights ``c_T``.
      gadget: ``'parity'`` (``c_T χ_T``), ``'and'``, ``'or'``, ``'majority'`` — for all terms or
        per term. Each gadget is an exact piecewise-linear ReLU interpolation of
        ``j ↦ g(j)`` over the kept count ``j``.
      distractor: scale of random direct read-out weights from every neuron (adds small
        first-order terms ``±distractor/2``; 0 = none).
      key: PRNG key for the inputs and the distractor weights.
    """
    key = key if key is not None else jax.random.key(0)
    k_in, k_skip = jax.random.split(key)
    planted = {_subset(s, n): float(c) for s, c in terms.items()}
    if isinstance(gadget, str):
        kinds = dict.fromkeys(planted, gadget)
    else:
        kinds = {_subset(s, n): name for s, name in gadget.items()}
    unknown = {name for name in kinds.values() if name not in GADGETS}
    if unknown or set(kinds) != set(planted):
        raise ValueError(f"gadget must name one of {sorted(GADGETS)} for every planted subset.")
    units = sum(len(s) for s in planted)  # one ReLU per kink: relu(s − t), t = 0..k−1
    kernel = np.zeros((n, units), np.float32)
    bias = np.zeros((units,), np.float32)
    readout = np.zeros((units, 1), np.float32)
    const = 0.0
    truth: Truth = {}
    col = 0
    for subset, coef in planted.items():
        g = np.asarray(GADGETS[kinds[subset]](len(subset)), np.float64) * coef
        truth = _add(truth, symmetric_term_spectrum(subset, g))
        # g(s) = g0 + Σ_t (Δ_t − Δ_{t−1}) relu(s − t) on integers s = 0..k, Δ_t = g(t+1) − g(t).
        const += g[0]
        slopes = np.diff(g)
        previous = 0.0
        for t, slope in enumerate(slopes):
            kernel[list(subset), col] = 1.0
            bias[col] = -float(t)
            readout[col, 0] = slope - previous
            previous = slope
            col += 1
    skip = np.zeros((n, 1), np.float32)
    if distractor:
        skip[:, 0] = distractor * np.asarray(jax.random.normal(k_skip, (n,)))
        truth = _add(truth, {(i,): float(skip[i, 0]) / 2 for i in range(n)})
        truth = _add(truth, {(): float(skip[:, 0].sum()) / 2})
    module = _PlantedNet(n=n, num_gadget_units=units)
    variables = {
        "params": {
            "hidden_dense": {"kernel": jnp.zeros((input_dim, n)), "bias": jnp.ones((n,))},
            "gadgets": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)},
            "skip": {"kernel": jnp.asarray(skip)},
            "readout": {"kernel": jnp.asarray(readout), "bias": jnp.asarray([const], jnp.float32)},
        }
    }
    inputs = jax.random.normal(k_in, (num_inputs, input_dim))
    return PlantedMLP(module=module, variables=variables, inputs=inputs, layer="hidden", truth=truth)
