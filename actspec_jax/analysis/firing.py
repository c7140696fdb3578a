"""Where a subset of neurons "fires": the inputs it matters for and the tokens it is active on.

Two views of one subset ``S`` found by a spectrum of ``f = mean_j f_j`` (``f_j`` the output on
input ``j``):

* **Inputs** (:func:`per_input_coefficients`): ``f̂_j(S) = E_x[f_j(x) χ_S(x)]``, the subset's
  coefficient in input ``j``'s own spectrum; ``f̂(S)`` is their mean, so the inputs with the
  largest ``f̂_j(S)`` of the same sign are those that carry the term. Exact (all ``2^n``
  masks) for ``n ≤ exact_max_n``, else a mean over uniform random masks (with a standard error).
* **Tokens** (:func:`coactivation`): for layers with a token axis (``[m, T, …, N]``), the
  positions where *every* neuron of ``S`` is strongly active — each neuron's activity
  divided by its ``quantile`` over all real (non-padding) positions, ``score = min_{i∈S}``;
  ``score ≥ 1`` means all members are in their top ``1 − quantile`` at once. For attention
  heads (``[m, T, d_head, H]``) a head's activity is the L2 norm of its output vector.

:func:`snippet` renders a window of tokens around such positions with the tokens marked, as
Markdown (``**tok**``) and HTML (``<mark>``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.analysis.metrics import uniform_masks
from actspec_jax.errors import ActSpecError
from actspec_jax.problems.base import Problem
from actspec_jax.transforms.indexing import enumerate_masks

__all__ = ["Firing", "activity", "coactivation", "per_input_coefficients", "snippet"]


def per_input_coefficients(
    problem: Problem,
    subsets: Sequence[Sequence[int]],
    *,
    key: jax.Array | None = None,
    num_masks: int = 512,
    exact_max_n: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """``f̂_j(S)`` for every input ``j`` and subset ``S``: ``(coef float[m, K], stderr float[m, K])``.

    Args:
      problem: a per-input problem, ``output_shape == (m,)`` (``aggregate='none'`` with one
        scalar output per input).
      subsets: ``K`` subsets of neuron indices.
      key: PRNG key for the sampled estimate (``n > exact_max_n``).
      num_masks: uniform masks of the sampled estimate.
      exact_max_n: enumerate all ``2^n`` masks (zero standard error) up to this ``n``.
    """
    shape = problem.output_shape
    if len(shape) != 1:
        raise ActSpecError(
            f"per-input coefficients need one scalar output per input (aggregate='none' with a single "
            f"output); the problem's outputs have shape {shape}."
        )
    n = problem.n
    member = np.zeros((len(subsets), n), np.float32)
    for row, subset in enumerate(subsets):
        member[row, list(subset)] = 1.0
    if n <= exact_max_n:
        masks = enumerate_masks(jnp.int32(0), 1 << n, n)
    else:
        if key is None:
            raise ActSpecError(f"n={n} > exact_max_n: pass key= for the sampled per-input coefficients.")
        masks = uniform_masks(key, int(num_masks), n)
    values = np.asarray(problem.evaluate(masks), np.float64)  # [k, m]
    negative = (np.asarray(masks) < 0).astype(np.float32) @ member.T  # ablated members per subset
    chi = np.where(np.mod(negative, 2) == 1, -1.0, 1.0)  # [k, K]
    products = values[:, :, None] * chi[:, None, :]  # [k, m, K]
    coef = products.mean(axis=0)
    if n <= exact_max_n:
        return coef, np.zeros_like(coef)
    return coef, products.std(axis=0, ddof=1) / np.sqrt(products.shape[0])


def activity(activations: Any) -> np.ndarray:
    """Per-token activity ``float[m, T, N]`` of a layer ``[m, T, N]`` or ``[m, T, d, N]`` (L2 over ``d``)."""
    acts = np.asarray(activations, np.float64)
    if acts.ndim == 3:
        return acts
    if acts.ndim == 4:
        return np.sqrt((acts**2).sum(axis=2))
    raise ActSpecError(
        f"token activity needs activations [inputs, tokens, (d,) neurons], got shape {acts.shape}."
    )


class Firing(NamedTuple):
    """Positions where all neurons of a subset are strongly active: ``input``, ``position``,
    ``score`` (min over members of activity / member's quantile), sorted by score."""

    input: np.ndarray
    position: np.ndarray
    score: np.ndarray


def coactivation(
    activations: Any,
    lengths: Any,
    subset: Sequence[int],
    *,
    quantile: float = 0.9,
    inputs: Sequence[int] | None = None,
) -> Firing:
    """Token positions where every neuron of ``subset`` is active together (module docstring).

    Args:
      activations: ``[m, T, N]`` or ``[m, T, d, N]`` layer activations.
      lengths: ``int[m]`` real tokens per input (positions ``≥ length`` are padding, ignored).
      subset: neuron indices (non-empty).
      quantile: per-neuron reference quantile over all real positions of all inputs.
      inputs: restrict the returned positions to these inputs (quantiles still use all).
    """
    subset = [int(i) for i in subset]
    if not subset:
        raise ActSpecError("coactivation needs a non-empty subset of neurons.")
    act = activity(activations)
    m, t, _ = act.shape
    lengths = np.asarray(lengths)
    real = np.arange(t)[None, :] < lengths[:, None]
    member = act[:, :, subset]  # [m, T, |S|]
    ref = np.quantile(member[real], quantile, axis=0)
    ref = np.where(ref > 0, ref, np.maximum(member[real].max(axis=0), 1e-12))
    score = np.where(real, (member / ref).min(axis=-1), -np.inf)
    if inputs is not None:
        keep = np.zeros(m, bool)
        keep[list(inputs)] = True
        score = np.where(keep[:, None], score, -np.inf)
    flat = np.argsort(-score, axis=None, kind="stable")
    flat = flat[np.isfinite(score.reshape(-1)[flat])]
    rows, cols = np.unravel_index(flat, score.shape)
    return Firing(rows, cols, score[rows, cols])


def snippet(
    tokens: Sequence[str], marked: Sequence[int], *, window: int = 8, max_tokens: int = 60
) -> tuple[str, str]:
    """A window of ``tokens`` around the ``marked`` positions: ``(markdown, html)``.

    Marked tokens are bold in Markdown and ``<mark>``-ed in HTML; gaps are ``…``.
    """
    marked_set = {int(p) for p in marked if 0 <= int(p) < len(tokens)}
    show = np.zeros(len(tokens), bool)
    for p in marked_set:
        show[max(0, p - window) : p + window + 1] = True
    if not marked_set:
        show[: min(len(tokens), 2 * window)] = True
    md: list[str] = []
    page: list[str] = []
    previous = -1
    for i in np.flatnonzero(show)[:max_tokens]:
        if i != previous + 1:
            md.append("…")
            page.append("…")
        previous = int(i)
        tok = tokens[i]
        escaped = tok.replace("*", "\\*").replace("|", "\\|").replace("<", "&lt;")
        md.append(f"**{escaped}**" if i in marked_set else escaped)
        page.append(f"<mark>{html.escape(tok)}</mark>" if i in marked_set else html.escape(tok))
    if previous < len(tokens) - 1:
        md.append("…")
        page.append("…")
    return " ".join(md), " ".join(page)
