"""The paper's data-hybrid estimator (``GoldreichLevin(estimator="paper")``).

Reing, Ver Steeg & Galstyan's prototype does not mask neurons: it searches the spectrum of
the model's decision as a function of the layer's *binarised activations* on real data,
sampling **hybrids of data rows**. For a bucket ``(k, S)`` (``S`` among the first ``k``
neurons of the search order) its weight estimate is

    Ŵ(k, S) = mean over triples (r₁, r₂, r₃) of  f(h₁₃) χ_S(x(h₁₃)) · f(h₂₃) χ_S(x(h₂₃)),

where ``h_{a3}`` is the activation vector of row ``r_a`` on the first ``k`` neurons and of row
``r₃`` on the rest, ``f(h)`` is the model output with the layer's activations *patched* to
``h`` (the prototype's hook meant to do this but silently did nothing), and
``x(h) = +1 where h > 0 else −1`` (ReLU "active"). Because ``S`` lies in the prefix,
``χ_S(x(h_{a3})) = χ_S(x(a_{r_a}))``. Rows are drawn uniformly with replacement from the
problem's inputs. We generalise the pair ``(r₁, r₂)`` to ``draws_per_z`` prefix rows sharing
one base row ``r₃`` (the U-statistic over all pairs; 2 = the prototype).

**How this differs from the mask mode** (the default, ``estimator="mask"``):

* *Variables.* Mask mode: a uniformly random keep/ablate mask ``x ∈ {−1,+1}^n`` that we set;
  paper mode: the neurons' own on/off state on data, which we only observe. χ_S is taken on
  the hybrid's activation signs, not on a mask.
* *Distribution.* Mask mode averages over uniform masks, so the characters are orthonormal,
  ``f̂(S)`` are genuine Fourier coefficients, Parseval holds and the GL guarantees apply.
  Paper mode averages over the data distribution of activation patterns, which is neither
  uniform nor a product measure: ``E[χ_S]`` need not be 0, characters of correlated neurons
  overlap, and "coefficients" are data correlations ``E_data[f(a) χ_S(x(a))]``. That is why the
  prototype adds non-redundancy constraints (near-constant and near-duplicate neurons break
  orthogonality) — on by default here: :class:`~actspec_jax.solvers.gl.redundancy.Prescreen` and
  :class:`~actspec_jax.solvers.gl.redundancy.PostCheck` with ``γ = δ = 0.2``.
* *Values of f.* Mask mode evaluates ``f`` = the problem's output aggregated over all its
  inputs for one mask; paper mode evaluates the problem's output selector on *one* hybrid
  row at a time (``aggregate`` and ``fill`` are ignored). The paper used the ±1 class
  indicator (``output='indicator:7'``); any scalar selector works.
* *Context inputs.* The head also receives the inputs (residual models read them): a
  hybrid is "row ``r₃`` run normally, with the layer's prefix neurons patched from row
  ``r_a``", so it receives row ``r₃``'s inputs. An MLP head ignores them.
* *Leaves.* Each surviving subset's coefficient is the data correlation
  ``mean_r f(a_r) χ_S(x(a_r))`` over all data rows (unpatched), with the standard error of
  that mean; no least-squares refit (the characters are not orthogonal under the data).
* *No centring.* ``E_data[χ_S] ≠ 0``, so subtracting a constant from ``f`` would bias the
  bucket weights; the estimator uses ``f`` as is.

Defaults of the mode (from the prototype): ``τ = 0.2``, 1000 triples per level, beam 128,
one coordinate per level, index order, ``γ = δ = 0.2``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from actspec_jax.errors import ActSpecError
from actspec_jax.solvers.gl.redundancy import patterns_from_problem

__all__ = ["PAPER_DEFAULTS", "check_paper_problem", "paper_patterns", "paper_rows", "paper_values"]

PAPER_DEFAULTS: dict[str, Any] = {
    "tau": 0.2,
    "num_samples": 1000,
    "beam": 128,
    "draws_per_z": 2,
    "block_size": 1,
    "order": "index",
    "refit": False,
    "gamma": 0.2,
    "delta": 0.2,
    "passes": 1,
}


def check_paper_problem(problem: Any) -> None:
    """Raise a clear :class:`ActSpecError` unless ``problem`` carries what the paper mode needs."""
    needed = ("activations", "head", "params", "inputs", "selector")
    if any(not hasattr(problem, a) for a in needed):
        raise ActSpecError(
            f"estimator='paper' builds hybrids of real data rows, so it needs a MaskedProblem (a model "
            f"cut at a layer with its inputs); got a {type(problem).__name__}. Build one with "
            "MaskedProblem.from_cut(cut, inputs, output='indicator:7'), or use estimator='mask'."
        )
    acts = problem.activations
    if acts.ndim != 2:
        raise ActSpecError(
            f"estimator='paper' binarises one activation vector per data row, but layer activations "
            f"have shape {tuple(acts.shape)} (extra position axes). Cut at a layer of shape "
            "[inputs, neurons] (e.g. after pooling), or use estimator='mask'."
        )
    if acts.shape[0] < 2:
        raise ActSpecError("estimator='paper' needs at least 2 data rows to form hybrids.")
    probe = jax.eval_shape(lambda a: problem.selector(problem.head(problem.params, a, problem.inputs)), acts)
    if probe.shape != (acts.shape[0],):
        raise ActSpecError(
            f"estimator='paper' explains one scalar per data row, but the output selector "
            f"{problem.selector.describe()!r} gives shape {tuple(probe.shape[1:])} per row. Choose one "
            "output, e.g. output='indicator:7'."
        )


def paper_patterns(problem: Any, threshold: float = 0.0) -> jax.Array:
    """``float32[rows, n]`` ±1 binarised activations (``+1`` where ``a > threshold``)."""
    return jnp.asarray(patterns_from_problem(problem, threshold))


def _full_prefix(problem: Any, prefix: jax.Array) -> jax.Array:
    """Prefix over all ``N`` neurons of the layer from the prefix over the ``n`` masked units."""
    if problem.units is None:
        return prefix
    return jnp.zeros((problem.activations.shape[-1],), bool).at[problem.units].set(prefix)


def _outputs(problem: Any, activations: jax.Array, rows: jax.Array) -> jax.Array:
    context = jax.tree_util.tree_map(lambda a: a[rows], problem.inputs)
    return problem.selector(problem.head(problem.params, activations, context))


def paper_values(problem: Any, base: jax.Array, source: jax.Array, prefix: jax.Array) -> jax.Array:
    """``f`` on hybrids (jittable): base rows ``int32[c]``, prefix rows ``int32[c, r]`` → ``float32[c, r]``.

    Hybrid ``(j, a)`` is row ``base[j]``'s activation vector with the prefix neurons replaced by
    row ``source[j, a]``'s, run through the head with row ``base[j]``'s inputs.
    """
    c, r = source.shape
    acts = problem.activations
    full = _full_prefix(problem, prefix)
    hybrid = jnp.where(full, acts[source], acts[base][:, None, :])  # [c, r, N]
    values = _outputs(problem, hybrid.reshape(c * r, -1), jnp.repeat(base, r)).reshape(c, r)
    return values.astype(jnp.float32)


def paper_rows(problem: Any, rows: jax.Array) -> jax.Array:
    """``f`` on unpatched data rows ``int32[k]`` → ``float32[k]`` (jittable)."""
    return _outputs(problem, problem.activations[rows], rows).astype(jnp.float32)
