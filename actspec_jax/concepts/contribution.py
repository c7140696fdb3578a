"""The decision-contribution test (Colin et al. 2024) and exemplars of units and concepts.

For every input ``j`` with activations ``A_j`` at a layer (``float[N]``, or ``[T, N]``
with tokens) and target class ``t_j`` (the model's own prediction by default):

* **top unit**: the neuron ``i*`` with the largest activation (pooled over tokens: the
  mean over real tokens); nulling it sets ``A_j[..., i*] = 0`` at every position;
* **top concept**: the concept ``l*`` with the largest code (pooled the same way; the
  dictionary rows have unit norm, so a code is the length of the concept's contribution
  ``u_l W_l``, directly comparable with a neuron's activation); nulling it subtracts
  ``u_{j,l*} W_{l*}`` at every position — the residual is kept, so nothing else changes.

The *decision contribution* of either is the drop of the target logit ``z_t`` (and of
the target probability ``p_t``) when it is nulled; we also report how often the decision
flips (argmax changes) and the L2 norm of what was removed. A concept usually removes
more activation than one unit, so a third, **norm-matched** arm nulls the most active
units (in order of pooled activation) until at least the concept's removed norm is
reached — it separates "a concept matters more" from "a concept removes more". Colin et al. find that nulling
the top concept changes the decision more than nulling the top unit, increasingly with
depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.concepts.basis import ConceptBasis
from actspec_jax.errors import ActSpecError
from actspec_jax.problems.cut import CutModel

__all__ = ["decision_contribution", "pooled_scores", "top_exemplars"]


def pooled_scores(values: jax.Array, token_mask: jax.Array | None = None) -> jax.Array:
    """Per-input score ``float[m, K]`` of ``values float[m, ..., K]``: the mean over all
    middle (token / position) axes, weighted by ``token_mask float[m, T]`` if given."""
    values = jnp.asarray(values, jnp.float32)
    m, K = values.shape[0], values.shape[-1]
    if values.ndim == 2:
        return values
    flat = values.reshape(m, -1, K)
    if token_mask is None:
        return flat.mean(axis=1)
    w = jnp.asarray(token_mask, jnp.float32).reshape(m, -1)
    if w.shape[1] != flat.shape[1]:
        raise ActSpecError(
            f"token_mask has {w.shape[1]} positions per input but the layer has {flat.shape[1]}."
        )
    return (flat * w[:, :, None]).sum(axis=1) / jnp.maximum(w.sum(axis=1), 1.0)[:, None]


def _onehot_rows(index: jax.Array, size: int, shape: tuple[int, ...]) -> jax.Array:
    """``float[m, 1…, size]`` one-hot per input, broadcastable to the activation shape."""
    onehot = jax.nn.one_hot(index, size, dtype=jnp.float32)
    return onehot.reshape((shape[0],) + (1,) * (len(shape) - 2) + (size,))


def decision_contribution(
    cut: CutModel,
    inputs: Any,
    basis: ConceptBasis,
    *,
    targets: Sequence[int] | np.ndarray | None = None,
    token_mask: jax.Array | None = None,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Null the top unit vs the top concept of each input; measure the decision change.

    Args:
      cut: the model cut at the layer the basis was fitted on.
      inputs: evaluation inputs (leading axis ``m``); ideally not the basis' fitting inputs.
      basis: the layer's concept basis (:func:`fit_basis`).
      targets: class per input (default: the model's prediction on the unmodified input).
      token_mask: ``float[m, T]`` real-token mask for pooling (token layers).
      batch_size: inputs per forward pass.

    Returns:
      ``{'per_input': {...arrays [m]...}, 'summary': {...floats...}}``. Per input:
      ``target``, ``unit``, ``concept`` (the nulled indices), ``unit_activation``,
      ``concept_code`` (pooled scores), ``drop_logit_unit``, ``drop_logit_concept``,
      ``drop_prob_unit``, ``drop_prob_concept``, ``flip_unit``, ``flip_concept``,
      ``removed_norm_unit``, ``removed_norm_concept`` (Frobenius norm of the change of
      ``A_j``), and for the norm-matched arm ``drop_logit_matched``, ``drop_prob_matched``,
      ``flip_matched``, ``removed_norm_matched``, ``units_matched`` (units nulled). The
      summary averages them and adds ``concept_wins`` / ``concept_wins_matched`` (share of
      inputs where the concept's logit drop is larger), ``relative_error`` and sizes.
    """
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves:
        raise ActSpecError("the input set is empty.")
    m = int(np.shape(leaves[0])[0])
    if targets is not None and len(targets) != m:
        raise ActSpecError(f"got {len(targets)} targets for {m} inputs.")
    W = basis.dictionary

    @jax.jit
    def run(params, batch, mask, tgt):
        A = jnp.asarray(cut.features(params, batch), jnp.float32)
        if A.shape[-1] != W.shape[1]:
            raise ActSpecError(
                f"layer {cut.layer!r} has {A.shape[-1]} neurons but the basis has {W.shape[1]}."
            )
        U = basis.codes(A)
        unit_scores = pooled_scores(A, mask)
        concept_scores = pooled_scores(U, mask)
        unit = jnp.argmax(unit_scores, axis=-1)
        concept = jnp.argmax(concept_scores, axis=-1)
        unit_hot = _onehot_rows(unit, A.shape[-1], A.shape)
        A_unit = A * (1.0 - unit_hot)
        chosen_code = jnp.sum(U * _onehot_rows(concept, W.shape[0], U.shape), axis=-1, keepdims=True)
        A_concept = A - chosen_code * W[concept].reshape((A.shape[0],) + (1,) * (A.ndim - 2) + (W.shape[1],))
        norm = lambda d: jnp.sqrt(jnp.sum(d.reshape(d.shape[0], -1) ** 2, axis=1))  # noqa: E731
        # norm-matched arm: top units by pooled activation until the concept's norm is reached
        target_sq = norm(A - A_concept) ** 2
        column_sq = jnp.sum((A**2).reshape(A.shape[0], -1, A.shape[-1]), axis=1)  # [m, N]
        order = jnp.argsort(-unit_scores, axis=-1)
        before = jnp.cumsum(jnp.take_along_axis(column_sq, order, axis=-1), axis=-1) - jnp.take_along_axis(
            column_sq, order, axis=-1
        )
        take_sorted = before < target_sq[:, None]  # a unit is taken while the norm is still short
        take_sorted = take_sorted.at[:, 0].set(True)
        take = jnp.zeros_like(take_sorted).at[jnp.arange(A.shape[0])[:, None], order].set(take_sorted)
        A_matched = A * (1.0 - take.reshape((A.shape[0],) + (1,) * (A.ndim - 2) + (A.shape[-1],)))
        # one head call on the four variants stacked along the batch axis (one traced copy)
        stacked = jnp.concatenate([A, A_unit, A_concept, A_matched], axis=0)
        tiled = jax.tree_util.tree_map(lambda a: jnp.concatenate([a] * 4, axis=0), batch)
        logits = jnp.split(cut.head(params, stacked, tiled), 4, axis=0)
        pred = jnp.argmax(logits[0], axis=-1)
        t = jnp.where(tgt < 0, pred, tgt)
        z = [jnp.take_along_axis(lg, t[:, None], axis=-1)[:, 0] for lg in logits]
        p = [jnp.take_along_axis(jax.nn.softmax(lg, -1), t[:, None], axis=-1)[:, 0] for lg in logits]
        flips = [jnp.argmax(lg, axis=-1) != pred for lg in logits[1:]]
        return {
            "target": t,
            "unit": unit,
            "concept": concept,
            "unit_activation": jnp.take_along_axis(unit_scores, unit[:, None], axis=1)[:, 0],
            "concept_code": jnp.take_along_axis(concept_scores, concept[:, None], axis=1)[:, 0],
            "drop_logit_unit": z[0] - z[1],
            "drop_logit_concept": z[0] - z[2],
            "drop_prob_unit": p[0] - p[1],
            "drop_prob_concept": p[0] - p[2],
            "drop_logit_matched": z[0] - z[3],
            "drop_prob_matched": p[0] - p[3],
            "flip_unit": flips[0],
            "flip_concept": flips[1],
            "flip_matched": flips[2],
            "removed_norm_unit": norm(A - A_unit),
            "removed_norm_concept": norm(A - A_concept),
            "removed_norm_matched": norm(A - A_matched),
            "units_matched": jnp.sum(take, axis=-1),
            "sq_error": jnp.sum((A - basis.offset - U @ W) ** 2),
            "sq_total": jnp.sum((A - basis.offset) ** 2),
        }

    tgt_all = np.full(m, -1, np.int32) if targets is None else np.asarray(targets, np.int32)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, m, batch_size):
        batch = jax.tree_util.tree_map(lambda a, s=start: a[s : s + batch_size], inputs)
        mask = None if token_mask is None else jnp.asarray(token_mask)[start : start + batch_size]
        parts.append(
            jax.device_get(run(cut.params, batch, mask, jnp.asarray(tgt_all[start : start + batch_size])))
        )
    per_input = {
        key: np.concatenate([p[key] for p in parts])
        for key in parts[0]
        if key not in ("sq_error", "sq_total")
    }
    sq_error = float(sum(p["sq_error"] for p in parts))
    sq_total = float(sum(p["sq_total"] for p in parts))
    summary = {
        "layer": cut.layer,
        "inputs": m,
        "neurons": int(W.shape[1]),
        "concepts": int(W.shape[0]),
        "relative_error": float(np.sqrt(sq_error / max(sq_total, 1e-30))),
        "drop_logit_unit": float(per_input["drop_logit_unit"].mean()),
        "drop_logit_concept": float(per_input["drop_logit_concept"].mean()),
        "drop_prob_unit": float(per_input["drop_prob_unit"].mean()),
        "drop_prob_concept": float(per_input["drop_prob_concept"].mean()),
        "drop_logit_matched": float(per_input["drop_logit_matched"].mean()),
        "drop_prob_matched": float(per_input["drop_prob_matched"].mean()),
        "flip_unit": float(per_input["flip_unit"].mean()),
        "flip_concept": float(per_input["flip_concept"].mean()),
        "flip_matched": float(per_input["flip_matched"].mean()),
        "concept_wins": float(np.mean(per_input["drop_logit_concept"] > per_input["drop_logit_unit"])),
        "concept_wins_matched": float(
            np.mean(per_input["drop_logit_concept"] > per_input["drop_logit_matched"])
        ),
        "removed_norm_unit": float(per_input["removed_norm_unit"].mean()),
        "removed_norm_concept": float(per_input["removed_norm_concept"].mean()),
        "removed_norm_matched": float(per_input["removed_norm_matched"].mean()),
        "units_matched": float(per_input["units_matched"].mean()),
    }
    return {"per_input": per_input, "summary": summary}


def top_exemplars(scores: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Most and least activating inputs per unit / concept.

    Args:
      scores: ``float[m, K]`` per-input score of each of ``K`` units or concepts
        (:func:`pooled_scores`).
      k: exemplars per side.

    Returns:
      ``(most int[K, k], least int[K, k])`` input indices, most activating first / least
      activating first.
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2:
        raise ActSpecError(f"scores must be [inputs, units or concepts], got shape {scores.shape}.")
    k = int(min(k, scores.shape[0]))
    order = np.argsort(-scores, axis=0, kind="stable")
    return order[:k].T.copy(), order[::-1][:k].T.copy()
