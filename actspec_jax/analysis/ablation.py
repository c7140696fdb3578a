"""Ablation checks that make a spectrum actionable: the faithfulness (deletion) curve.

Start from the intact model (every neuron kept, mask ``1``) and ablate the first ``k``
neurons of an *ordering* together (``x_i = −1`` for them, every other neuron kept). The
curve of an ordering is the output **drop**

    D(k) = f(1) − f(x_k),      x_k = −1 on the first k neurons of the ordering, +1 elsewhere,

in the output's own units (nats for ``log_prob``, logits for ``logit_diff``), against ``k`` =
the number of neurons ablated. Every ordering tries to remove what *supports* the output
(largest drop first); random orderings give the chance level. Orderings compared:

* **spectral, top subsets** (:func:`spectral_order`): the spectrum's subsets ranked by the drop
  the spectrum itself predicts for ablating that subset alone, members added subset by
  subset (``k`` counts neurons; subset boundaries are recorded);
* **spectral, greedy** (:func:`greedy_spectral_order`): neurons added one at a time, each the
  one whose ablation (with the ones already chosen) the spectrum predicts to drop ``f`` most;
* **attribution** (:func:`attribution_scores`): single neurons by the first-order
  (gradient × activation) predicted drop ``∂f/∂α_i`` at ``α = 1``, where the masked layer is
  ``fill + α ⊙ (a − fill)``;
* **leave-one-out** (:func:`single_ablation_drops`): single neurons by their *measured* drop
  ``f(1) − f(1 with i ablated)`` — the strongest single-neuron ranking;
* **random**: uniformly random orderings (mean and a 10–90 % band).

The spectrum predicts every such drop exactly when it is complete: ablating a set ``A`` flips
``χ_S`` for the ``S`` with an odd number of members in ``A``, so
``D(A) = 2 Σ_{S : |S ∩ A| odd} f̂(S)`` (:func:`predicted_drop`). Interactions matter when this
differs from the sum of the single-neuron drops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.problems.base import Problem
from actspec_jax.spectrum import Spectrum

__all__ = [
    "FaithfulnessCurve",
    "attribution_scores",
    "faithfulness_curve",
    "greedy_spectral_order",
    "predicted_drop",
    "ranking_order",
    "single_ablation_drops",
    "spectral_order",
]


def _map_units(order: list[int], units: Sequence[int] | None, n: int) -> list[int]:
    if units is None:
        return order
    units = [int(u) for u in units]
    if len(units) != n:
        raise ActSpecError(f"units lists {len(units)} neurons but the spectrum has n={n}.")
    return [units[i] for i in order]


def predicted_drop(spectrum: Spectrum, ablated: Any) -> np.ndarray:
    """``D(A) = 2 Σ_{S: |S∩A| odd} f̂(S)`` from the listed terms, for ablation sets ``bool[..., n]``."""
    ablated = np.asarray(ablated, bool)
    member = spectrum.membership.astype(np.int64)  # [K, n]
    odd = (ablated.astype(np.int64) @ member.T) % 2  # [..., K]
    return 2.0 * odd @ np.asarray(spectrum.coefficients, np.float64)


def spectral_order(
    spectrum: Spectrum,
    *,
    rank: str = "drop",
    max_subsets: int | None = None,
    units: Sequence[int] | None = None,
) -> tuple[list[int], list[int]]:
    """Neurons of the spectrum's subsets, subset by subset.

    Args:
      spectrum: any spectrum (∅ is skipped).
      rank: ``'drop'`` — subsets whose predicted drop :func:`predicted_drop` is positive, largest
        first; ``'magnitude'`` — every subset in stored order (``|f̂(S)|`` descending).
      max_subsets: use at most this many subsets.
      units: map the spectrum's neuron ``i`` to ``units[i]`` (a spectrum over some of a layer's
        neurons, e.g. ``MaskedProblem(units=…)``, applied to the whole layer).

    Returns:
      ``(order, boundaries)``: neuron indices, and the length of ``order`` after each subset
      that added at least one neuron. Within a subset, members come in the order that keeps the
      predicted drop of the partial set largest.
    """
    if rank not in ("drop", "magnitude"):
        raise ActSpecError(f"rank must be 'drop' or 'magnitude', got {rank!r}.")
    subsets = spectrum.subset_tuples()
    nonempty = [j for j, s in enumerate(subsets) if s]
    if rank == "drop" and nonempty:
        drops = predicted_drop(spectrum, spectrum.membership[nonempty])
        nonempty = [j for neg, j in sorted(zip(-drops, nonempty)) if neg < 0]
    order: list[int] = []
    taken = np.zeros(spectrum.n, bool)
    boundaries: list[int] = []
    for used, j in enumerate(nonempty):
        if max_subsets is not None and used >= max_subsets:
            break
        new = [i for i in subsets[j] if not taken[i]]
        if not new:
            continue
        while new:  # members one at a time, each the one whose ablation drops f most (predicted)
            trials = np.repeat(taken[None, :], len(new), axis=0)
            trials[np.arange(len(new)), new] = True
            pick = new[int(np.argmax(predicted_drop(spectrum, trials)))]
            taken[pick] = True
            order.append(pick)
            new.remove(pick)
        boundaries.append(len(order))
    return _map_units(order, units, spectrum.n), boundaries


def greedy_spectral_order(spectrum: Spectrum, k: int, *, units: Sequence[int] | None = None) -> list[int]:
    """Up to ``k`` neurons, each the one that makes the spectrum's predicted drop of the set
    chosen so far largest (:func:`predicted_drop`); candidates are the neurons that appear in a
    listed subset, so the order ends when they run out.
    """
    member = spectrum.membership
    candidates = [int(i) for i in np.flatnonzero(member.any(axis=0))]
    chosen: list[int] = []
    current = np.zeros(spectrum.n, bool)
    for _ in range(min(int(k), len(candidates))):
        left = [c for c in candidates if not current[c]]
        trials = np.repeat(current[None, :], len(left), axis=0)
        trials[np.arange(len(left)), left] = True
        best = left[int(np.argmax(predicted_drop(spectrum, trials)))]
        current[best] = True
        chosen.append(best)
    return _map_units(chosen, units, spectrum.n)


def ranking_order(scores: Any, *, by: str = "value") -> list[int]:
    """Neuron indices by decreasing ``score`` (``by='value'``) or ``|score|`` (``'magnitude'``).

    Ties go to the lower index.
    """
    scores = np.asarray(scores, np.float64)
    if by == "magnitude":
        scores = np.abs(scores)
    elif by != "value":
        raise ActSpecError(f"by must be 'value' or 'magnitude', got {by!r}.")
    return [int(i) for i in np.lexsort((np.arange(scores.size), -scores))]


def attribution_scores(problem: Any) -> np.ndarray:
    """First-order (gradient × activation) predicted drops ``∂f/∂α_i`` at ``α = 1``, ``float[n]``.

    The masked layer is relaxed to ``fill + α ⊙ (a − fill)`` (``α_i = 1`` kept, ``0`` ablated),
    so ``f(1) − f(ablate i) ≈ ∂f/∂α_i = Σ_{inputs, positions} (a − fill)_i ∂f/∂a_i`` (averaged
    over inputs). Needs a :class:`~actspec_jax.MaskedProblem` with ``aggregate='mean'`` and a
    differentiable output (``log_prob``, ``logit``, ``logit_diff``, ``prob``); a class indicator
    has zero gradient almost everywhere.
    """
    needed = ("head", "params", "activations", "fill_values", "inputs", "selector", "units")
    if any(not hasattr(problem, a) for a in needed) or getattr(problem, "aggregate", None) != "mean":
        raise ActSpecError(
            "gradient attribution needs a MaskedProblem (a model cut at one layer) with "
            f"aggregate='mean'; got {type(problem).__name__}. Use single_ablation_drops instead."
        )
    if problem.selector.describe().startswith("indicator"):
        raise ActSpecError(
            "a class indicator has zero gradient: compute attributions on a differentiable output "
            "such as 'log_prob:c' or 'logit:c'."
        )
    acts, fill = problem.activations, problem.fill_values
    n_layer = acts.shape[-1]

    def value(alpha: jax.Array) -> jax.Array:
        full = (
            alpha if problem.units is None else jnp.ones((n_layer,), acts.dtype).at[problem.units].set(alpha)
        )
        masked = fill + full * (acts - fill)
        return jnp.mean(problem.selector(problem.head(problem.params, masked, problem.inputs)))

    grad = jax.jit(jax.grad(value))(jnp.ones((problem.n,), acts.dtype))
    return np.asarray(grad, np.float64)


def single_ablation_drops(problem: Problem) -> np.ndarray:
    """Measured single-neuron drops ``f(1) − f(1 with i ablated)``, ``float[n]`` (``n + 1`` evaluations)."""
    _check_scalar(problem)
    n = problem.n
    masks = np.ones((n + 1, n), np.float32)
    masks[np.arange(1, n + 1), np.arange(n)] = -1.0
    values = np.asarray(problem.evaluate(jnp.asarray(masks)), np.float64)
    return values[0] - values[1:]


def _check_scalar(problem: Problem) -> None:
    if problem.output_shape != ():
        raise ActSpecError(
            f"ablation curves explain one output, but the problem has outputs of shape "
            f"{problem.output_shape}; choose one output with aggregate='mean'."
        )


@dataclasses.dataclass(frozen=True)
class FaithfulnessCurve:
    """Output drops ``D(k) = f(1) − f(x_k)`` per ordering (see the module docstring).

    Attributes:
      ks: ``int[K]`` numbers of neurons ablated.
      baseline: ``f(1)``, the intact output.
      drops: ``{name: float[K]}`` ``D(k)``; NaN where the ordering is shorter than ``k``.
      random_drops: ``float[R, K]`` ``D(k)`` of each random ordering.
      orders: ``{name: neuron indices}``.
      boundaries: ``{name: cumulative neuron counts after each subset}`` (subset orderings).
      output: the output's description (e.g. ``'log_prob:7'``).
    """

    ks: np.ndarray
    baseline: float
    drops: dict[str, np.ndarray]
    random_drops: np.ndarray
    orders: dict[str, list[int]]
    boundaries: dict[str, list[int]]
    output: str

    def random_band(self, low: float = 10.0, high: float = 90.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, ``low`` and ``high`` percentiles of ``D(k)`` over the random orderings."""
        r = self.random_drops
        return r.mean(axis=0), np.percentile(r, low, axis=0), np.percentile(r, high, axis=0)

    def at(self, k: int) -> dict[str, float]:
        """``D(k)`` of every ordering (and the random mean) at one ``k``."""
        idx = int(np.searchsorted(self.ks, k))
        if idx >= self.ks.size or self.ks[idx] != k:
            raise ActSpecError(f"k={k} is not on the curve; ks are {self.ks.tolist()}.")
        out = {name: float(v[idx]) for name, v in self.drops.items()}
        out["random (mean)"] = float(self.random_drops[:, idx].mean())
        return out

    def to_dict(self) -> dict[str, Any]:
        mean, low, high = self.random_band()
        return {
            "definition": "D(k) = f(all kept) - f(first k neurons of the ordering ablated, others kept)",
            "output": self.output,
            "ks": self.ks.tolist(),
            "baseline": self.baseline,
            "drops": {k: [None if np.isnan(x) else float(x) for x in v] for k, v in self.drops.items()},
            "random_mean": mean.tolist(),
            "random_p10": low.tolist(),
            "random_p90": high.tolist(),
            "random_orderings": int(self.random_drops.shape[0]),
            "random_drops": self.random_drops.tolist(),
            "orders": {k: list(map(int, v)) for k, v in self.orders.items()},
            "boundaries": {k: list(map(int, v)) for k, v in self.boundaries.items()},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FaithfulnessCurve:
        """Rebuild from :meth:`to_dict`."""
        return cls(
            ks=np.asarray(doc["ks"], np.int64),
            baseline=float(doc["baseline"]),
            drops={
                k: np.asarray([np.nan if x is None else x for x in v], np.float64)
                for k, v in doc["drops"].items()
            },
            random_drops=np.asarray(doc["random_drops"], np.float64),
            orders={k: list(v) for k, v in doc["orders"].items()},
            boundaries={k: list(v) for k, v in doc["boundaries"].items()},
            output=str(doc["output"]),
        )


def faithfulness_curve(
    problem: Problem,
    orders: Mapping[str, Sequence[int]],
    *,
    ks: Sequence[int],
    key: jax.Array,
    num_random: int = 20,
    boundaries: Mapping[str, Sequence[int]] | None = None,
) -> FaithfulnessCurve:
    """Evaluate ``D(k)`` for every named ordering and ``num_random`` random ones, in one batch.

    Args:
      problem: a single-output problem (``output_shape == ()``) over ``n`` neurons.
      orders: ``{name: neuron indices}``; an ordering shorter than ``k`` gives NaN at ``k``.
      ks: numbers of neurons to ablate (``0 ≤ k ≤ n``).
      key: PRNG key of the random orderings.
      num_random: number of random orderings (≥ 1).
      boundaries: optional subset boundaries to keep with the result (for plots).
    """
    _check_scalar(problem)
    n = problem.n
    ks_arr = np.asarray(sorted({int(k) for k in ks}), np.int64)
    if ks_arr.size == 0 or ks_arr[0] < 0 or ks_arr[-1] > n:
        raise ActSpecError(f"ks must be numbers of neurons in 0..{n}, got {list(ks)}.")
    if int(num_random) < 1:
        raise ActSpecError(f"num_random must be >= 1, got {num_random}.")
    named = {}
    for name, order in orders.items():
        order = [int(i) for i in order]
        if len(set(order)) != len(order) or any(not 0 <= i < n for i in order):
            raise ActSpecError(f"ordering {name!r} must list distinct neuron indices in 0..{n - 1}.")
        named[name] = order
    keys = jax.random.split(key, int(num_random))
    randoms = [np.asarray(jax.random.permutation(k, n)).tolist() for k in keys]

    rows: list[np.ndarray] = [np.ones(n, np.float32)]
    index: list[tuple[str | int, int]] = []
    for label, order in [*named.items(), *enumerate(randoms)]:
        for k in ks_arr:
            if k > len(order):
                continue
            mask = np.ones(n, np.float32)
            mask[order[:k]] = -1.0
            rows.append(mask)
            index.append((label, int(k)))
    values = np.asarray(problem.evaluate(jnp.asarray(np.stack(rows))), np.float64)
    baseline = float(values[0])
    drops = {name: np.full(ks_arr.size, np.nan) for name in named}
    random_drops = np.full((len(randoms), ks_arr.size), np.nan)
    position = {int(k): j for j, k in enumerate(ks_arr)}
    for (label, k), value in zip(index, values[1:]):
        if isinstance(label, str):
            drops[label][position[k]] = baseline - value
        else:
            random_drops[label, position[k]] = baseline - value
    return FaithfulnessCurve(
        ks=ks_arr,
        baseline=baseline,
        drops=drops,
        random_drops=random_drops,
        orders=named,
        boundaries={k: [int(b) for b in v] for k, v in (boundaries or {}).items()},
        output=str(problem.describe().get("output", "f")),
    )
