"""Non-redundancy constraints for the Goldreich–Levin search ("high-valued *and* non-redundant").

The paper's prototype keeps a subset of neurons only if it is heavy in the spectrum *and*
not redundant. Three pluggable constraints, each off unless passed to the solver (the
paper estimator turns on (a) and (b) by default), each reporting what it removed and why:

(a) :class:`Prescreen` — before the search, on the binarised activation patterns
    ``x_i = +1 if a_i > 0 else −1`` over the data rows (inputs × positions):
    drop neuron ``i`` if ``(mean_r x_i)² > γ`` (near-constant, e.g. a dead ReLU); then, in
    index order, drop ``j`` if ``(mean_r x_j x_k)² > γ`` for an already kept ``k``
    (near-duplicate of ``k``). The statistic is the raw second moment, as in the prototype.
    Dropped neurons are never split on: they stay in the un-searched part of every mask (mask
    mode: uniformly random, so the coefficients of the searched neurons keep their meaning;
    paper mode: taken from the base row of each hybrid).

(b) :class:`PostCheck` — when a subset grows by a new neuron ``j`` (every new neuron of the
    block when splitting several coordinates at once), reject it if ``x_j`` is predictable
    from the patterns of the other members ``O``:

        P(j | O) = Σ_p (s_p² − c_p) / Σ_p c_p (c_p − 1),

    where rows are grouped by their pattern ``p`` of ``O``, ``c_p`` counts the rows and ``s_p``
    sums ``x_j`` over them. This is the bucket-weight estimator ``E[x_j(r) x_j(r')]`` over
    pairs of distinct data rows that share the pattern of ``O`` (with uniform patterns it is
    the Fourier weight of ``x_j`` on subsets of ``O``): 1 when ``x_j`` is a function of the
    pattern, ``≈ mean(x_j)²`` when independent. Patterns that never occur, or occur once,
    contribute nothing, so it is defined for every subset (the prototype divides by the
    count of a pattern that may never occur). With no pair of rows sharing a pattern it is 0
    (no evidence of predictability). Computed on device by sorting pattern codes, vectorised
    over candidates, on at most ``max_rows`` data rows.

(c) :class:`SpectralAliasing` — after the leaves are estimated: when two reported terms
    ``S = U ∪ {i}`` and ``S' = U ∪ {j}`` differ by one neuron and ``i, j`` are near-duplicates
    (``(mean_r x_i x_j)² > γ`` on the binarised activations, or a user-given similarity
    matrix), keep the term with the larger ``|f̂|`` and record the other as its alias.

Every removal is a plain dict (JSON-ready) with ``constraint``, ``kind`` (``'neuron'`` or
``'subset'``), the neurons/subset, a human-readable ``reason``, the ``statistic`` and the
``threshold``; the solver stores the list in ``spectrum.solver['redundancy']['removed']``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = [
    "PostCheck",
    "Prescreen",
    "SpectralAliasing",
    "binarize",
    "paper_constraints",
    "patterns_from_problem",
    "predictability",
]

Removal = dict[str, Any]


def binarize(activations: Any, threshold: float = 0.0) -> np.ndarray:
    """``±1`` patterns: ``+1`` where the activation exceeds ``threshold`` (ReLU "active"), else ``−1``."""
    return np.where(np.asarray(activations) > threshold, 1.0, -1.0).astype(np.float32)


def patterns_from_problem(problem: Any, threshold: float = 0.0) -> np.ndarray:
    """Binarised activations ``float32[rows, n]`` of a :class:`~actspec_jax.MaskedProblem`.

    Rows are the inputs times any position axes (tokens, pixels); columns are the masked
    neurons (``problem.units`` when set). Raises :class:`ActSpecError` for problems that
    carry no activations (e.g. a plain ``FunctionProblem``).
    """
    while getattr(problem, "activations", None) is None and hasattr(problem, "base"):
        problem = problem.base  # a residual f − f̃ has the data of the problem it came from
    acts = getattr(problem, "activations", None)
    if acts is None:
        raise ActSpecError(
            f"this non-redundancy constraint reads the layer's activations over the data, but a "
            f"{type(problem).__name__} has none. Use a MaskedProblem (model cut at a layer), or "
            "turn the constraint off (redundancy=())."
        )
    acts = np.asarray(acts)
    flat = acts.reshape(-1, acts.shape[-1])
    units = getattr(problem, "units", None)
    if units is not None:
        flat = flat[:, np.asarray(units)]
    return binarize(flat, threshold)


def _validate_threshold(name: str, value: float, symbol: str) -> None:
    if not (isinstance(value, int | float) and 0.0 <= float(value) <= 1.0):
        raise ActSpecError(f"{name}: {symbol} must be in [0, 1], got {value!r}.")


@dataclasses.dataclass(frozen=True)
class Prescreen:
    """(a) Drop near-constant and near-duplicate neurons before the search (threshold ``gamma``)."""

    gamma: float = 0.2
    stage: ClassVar[str] = "prescreen"

    def __post_init__(self) -> None:
        _validate_threshold("Prescreen", self.gamma, "gamma")

    def describe(self) -> dict[str, Any]:
        return {"name": "prescreen", "gamma": float(self.gamma)}

    def apply(self, patterns: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, list[Removal]]:
        """Return ``keep bool[n]`` (a subset of ``candidates``) and the removal records.

        Args:
          patterns: ``±1 float[rows, n]`` binarised activations.
          candidates: ``bool[n]`` neurons still in the search.
        """
        x = np.asarray(patterns, np.float64)
        keep = np.asarray(candidates, bool).copy()
        removed: list[Removal] = []
        mean_sq = x.mean(axis=0) ** 2
        for i in np.flatnonzero(keep & (mean_sq > self.gamma)):
            keep[i] = False
            removed.append(
                {
                    "constraint": "prescreen",
                    "kind": "neuron",
                    "neurons": [int(i)],
                    "reason": f"near-constant: (mean of ±1 pattern)² = {mean_sq[i]:.3f} > γ = {self.gamma}",
                    "statistic": float(mean_sq[i]),
                    "threshold": float(self.gamma),
                }
            )
        gram_sq = (x.T @ x / x.shape[0]) ** 2
        kept: list[int] = []
        for j in np.flatnonzero(keep):
            if kept:
                sims = gram_sq[j, kept]
                worst = int(np.argmax(sims))
                if sims[worst] > self.gamma:
                    k = kept[worst]
                    keep[j] = False
                    removed.append(
                        {
                            "constraint": "prescreen",
                            "kind": "neuron",
                            "neurons": [int(j)],
                            "related": [int(k)],
                            "reason": (
                                f"near-duplicate of neuron {k}: (mean x_{j}·x_{k})² = {sims[worst]:.3f} "
                                f"> γ = {self.gamma}"
                            ),
                            "statistic": float(sims[worst]),
                            "threshold": float(self.gamma),
                        }
                    )
                    continue
            kept.append(int(j))
        return keep, removed


@jax.jit
def predictability(bits: jax.Array, members: jax.Array, new: jax.Array) -> jax.Array:
    """Post-check statistic ``P(j | O)`` for every candidate subset and new neuron (jittable).

    Args:
      bits: ``uint32[rows, n + 1]`` 0/1 patterns (1 = active), last column all 0 (padding).
      members: ``int32[C, D]`` member neurons of each candidate, padded with ``n``.
      new: ``int32[C, b]`` new neurons to check per candidate, padded with ``n`` (skipped).

    Returns:
      ``float32[C, b]``: the pair-agreement statistic of the module docstring for new neuron
      ``j`` against the other members ``O = members ∖ {j}``; 0 where ``j`` is padding or
      ``O`` is empty.
    """
    n = bits.shape[1] - 1
    rows = bits.shape[0]
    shifts = jnp.arange(members.shape[1], dtype=jnp.uint32)
    position = jnp.arange(rows)

    def one(member_row: jax.Array, j: jax.Array) -> jax.Array:
        others = (member_row != n) & (member_row != j)
        gathered = jnp.take(bits, member_row, axis=1)  # [rows, D]
        codes = jnp.sum(jnp.where(others[None, :], gathered << shifts[None, :], 0), axis=1, dtype=jnp.uint32)
        # One uint32 sort key per row: pattern code (≤ 31 bits) then x_j's bit; a single-array
        # sort is several times faster than sorting a payload along.
        keys = jnp.sort(codes * jnp.uint32(2) + jnp.take(bits, j, axis=1))
        codes = keys >> jnp.uint32(1)
        plus = jnp.cumsum((keys & jnp.uint32(1)).astype(jnp.float32))
        is_end = jnp.concatenate([codes[1:] != codes[:-1], jnp.ones((1,), bool)])
        last_end = jax.lax.cummax(jnp.where(is_end, position, -1))
        prev = jnp.concatenate([jnp.full((1,), -1, last_end.dtype), last_end[:-1]])
        prev_plus = jnp.where(prev >= 0, plus[jnp.maximum(prev, 0)], 0.0)
        count = (position - prev).astype(jnp.float32)  # rows in the group ending here
        total = 2.0 * (plus - prev_plus) - count  # Σ x_j over the group
        num = jnp.sum(jnp.where(is_end, total * total - count, 0.0))
        den = jnp.sum(jnp.where(is_end, count * (count - 1.0), 0.0))
        stat = jnp.where(den > 0, num / jnp.maximum(den, 1.0), 0.0)
        return jnp.where((j != n) & jnp.any(others), stat, 0.0)

    per_candidate = jax.vmap(one, in_axes=(None, 0))
    return jax.vmap(per_candidate, in_axes=(0, 0))(members, new)


@dataclasses.dataclass(frozen=True)
class PostCheck:
    """(b) Reject a growing subset whose new neuron is predictable from the others (``delta``).

    ``max_rows`` caps the data rows used (beyond it, a subsample drawn by numpy's generator
    seeded with the key's data, so the same key picks the same rows).
    """

    delta: float = 0.2
    max_rows: int = 2048
    stage: ClassVar[str] = "postcheck"

    def __post_init__(self) -> None:
        _validate_threshold("PostCheck", self.delta, "delta")
        if int(self.max_rows) < 2:
            raise ActSpecError(f"PostCheck: max_rows must be >= 2, got {self.max_rows}.")

    def describe(self) -> dict[str, Any]:
        return {"name": "postcheck", "delta": float(self.delta), "max_rows": int(self.max_rows)}

    def bits(self, patterns: np.ndarray, key: jax.Array) -> jax.Array:
        """``uint32[rows, n + 1]`` 0/1 patterns (padding column appended), subsampled to ``max_rows``."""
        x = np.asarray(patterns)
        if x.shape[0] > self.max_rows:
            seed = np.asarray(jax.random.key_data(key)).ravel().tolist()
            pick = np.random.default_rng(seed).choice(x.shape[0], self.max_rows, replace=False)
            x = x[np.sort(pick)]
        out = np.zeros((x.shape[0], x.shape[1] + 1), np.uint32)
        out[:, :-1] = x > 0
        return jnp.asarray(out)


@dataclasses.dataclass(frozen=True, eq=False)
class SpectralAliasing:
    """(c) Collapse reported terms that differ by one near-duplicate neuron into one (``gamma``).

    Args:
      gamma: neurons ``i, j`` are near-duplicates when ``similarity[i, j] > gamma``.
      similarity: optional ``float[n, n]`` similarity; default the squared second moment
        ``(mean_r x_i x_j)²`` of the binarised activations (needs a ``MaskedProblem``).
    """

    gamma: float = 0.2
    similarity: Any = None
    stage: ClassVar[str] = "postprocess"

    def __post_init__(self) -> None:
        _validate_threshold("SpectralAliasing", self.gamma, "gamma")

    def describe(self) -> dict[str, Any]:
        return {
            "name": "spectral_aliasing",
            "gamma": float(self.gamma),
            "similarity": "given" if self.similarity is not None else "binarised activations",
        }

    def similarity_matrix(self, problem: Any, n: int) -> np.ndarray:
        if self.similarity is not None:
            sim = np.asarray(self.similarity, np.float64)
            if sim.shape != (n, n):
                raise ActSpecError(
                    f"SpectralAliasing: similarity must have shape ({n}, {n}), got {sim.shape}."
                )
            return sim
        x = np.asarray(patterns_from_problem(problem), np.float64)
        return (x.T @ x / x.shape[0]) ** 2

    def apply(
        self,
        subsets: Sequence[tuple[int, ...]],
        coefficients: np.ndarray,
        stderr: np.ndarray,
        similarity: np.ndarray,
    ) -> tuple[np.ndarray, list[Removal]]:
        """Return ``keep bool[K]`` over the terms and the alias records."""
        coefficients = np.asarray(coefficients, np.float64)
        order = np.argsort(-np.abs(coefficients), kind="stable")
        keep = np.ones(len(subsets), bool)
        sets = [frozenset(s) for s in subsets]
        removed: list[Removal] = []
        for a_pos, a in enumerate(order):
            if not keep[a] or not sets[a]:
                continue
            for b in order[a_pos + 1 :]:
                if not keep[b] or len(sets[b]) != len(sets[a]):
                    continue
                only_a, only_b = sets[a] - sets[b], sets[b] - sets[a]
                if len(only_a) != 1:
                    continue
                (i,), (j,) = tuple(only_a), tuple(only_b)
                sim = float(similarity[i, j])
                if sim > self.gamma:
                    keep[b] = False
                    removed.append(
                        {
                            "constraint": "spectral_aliasing",
                            "kind": "subset",
                            "subset": sorted(sets[b]),
                            "alias_of": sorted(sets[a]),
                            "neurons": [int(j), int(i)],
                            "coefficient": float(coefficients[b]),
                            "stderr": float(stderr[b]),
                            "reason": (
                                f"alias of {sorted(sets[a])}: neuron {j} replaces its near-duplicate {i} "
                                f"(similarity {sim:.3f} > γ = {self.gamma})"
                            ),
                            "statistic": sim,
                            "threshold": float(self.gamma),
                        }
                    )
        return keep, removed


def paper_constraints(gamma: float = 0.2, delta: float = 0.2) -> tuple[Prescreen, PostCheck]:
    """The prototype's constraints: (a) prescreen with ``γ`` and (b) post-check with ``δ``."""
    return Prescreen(gamma=gamma), PostCheck(delta=delta)
