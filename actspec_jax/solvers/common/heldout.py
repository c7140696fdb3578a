"""Held-out uniform masks and the R² of a spectrum on them: the core's own check of a fit.

:meth:`actspec_jax.Spectrum.r2` uses :func:`faithfulness_r2`; the richer faithfulness
measures (protocols, size-stratified masks, prefix curves) are in
:mod:`actspec_jax.analysis.metrics`, which re-exports these three. Here so that the core
(``spectrum``) needs nothing from the analyses.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError, NonFiniteOutputError

__all__ = ["faithfulness_r2", "r2_score", "uniform_masks"]


def uniform_masks(key: jax.Array, num_masks: int, n: int) -> jax.Array:
    """``float32[num_masks, n]`` masks with i.i.d. uniform ±1 entries."""
    return jnp.where(jax.random.bernoulli(key, 0.5, (num_masks, n)), 1.0, -1.0).astype(jnp.float32)


def r2_score(truth: Any, approx: Any) -> float:
    """``1 − Σ(y − ŷ)² / Σ(y − ȳ)²``; 1.0 for an exact fit of a constant, −inf-safe."""
    y = np.asarray(truth, np.float64)
    yhat = np.asarray(approx, np.float64)
    sse = float(((y - yhat) ** 2).sum())
    sst = float(((y - y.mean()) ** 2).sum())
    if sst == 0.0:
        return 1.0 if sse == 0.0 else float("-inf")
    return 1.0 - sse / sst


def _held_out_values(problem: Any, key: jax.Array, num_masks: int) -> tuple[jax.Array, np.ndarray]:
    """``num_masks`` fresh uniform masks and the problem's values there, ``[num_masks, K]``."""
    masks = uniform_masks(key, num_masks, problem.n)
    return masks, np.asarray(problem.evaluate_unchecked(masks)).reshape(num_masks, -1)


def _refuse_non_finite(values: np.ndarray) -> None:
    """The R² is undefined where the compared values hold NaN/inf: say where and why."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise NonFiniteOutputError(
            f"the problem's output is NaN/inf on {int(bad.sum())} of {len(values)} held-out masks, so the "
            "R² is undefined; check the fill values and the output selector (e.g. log of a zero "
            "probability)."
        )


def faithfulness_r2(spectrum: Any, problem: Any, *, key: jax.Array, num_masks: int = 2048) -> float:
    """R² of ``spectrum.evaluate`` against ``problem`` on ``num_masks`` held-out uniform masks.

    For a batched problem the spectrum's ``output_index`` picks the output it explains; a
    single-output problem is compared as it is (e.g. one output of a batch against the problem of
    that output alone).
    """
    if spectrum.n != problem.n:
        raise ValueError(f"spectrum has n={spectrum.n} but the problem has n={problem.n}.")
    masks, values = _held_out_values(problem, key, num_masks)
    column = (spectrum.output_index or 0) if values.shape[1] > 1 else 0
    if column >= values.shape[1]:
        raise ActSpecError(
            f"the spectrum explains output {column}, but the problem has {values.shape[1]} outputs; pass the "
            "problem the spectrum was computed from."
        )
    _refuse_non_finite(values[:, column])
    return r2_score(values[:, column], spectrum.evaluate(masks))


def faithfulness_r2_batch(spectra: Any, problem: Any, *, key: jax.Array, num_masks: int = 2048) -> np.ndarray:
    """``float64[K]``: the R² of each of ``K`` spectra against output ``k`` of one ``K``-output
    problem, on the same ``num_masks`` held-out uniform masks (the model is evaluated once)."""
    spectra = list(spectra)
    if any(s.n != problem.n for s in spectra):
        sizes = sorted({s.n for s in spectra})
        raise ValueError(f"the spectra have n={sizes} but the problem has n={problem.n}.")
    masks, values = _held_out_values(problem, key, num_masks)
    if values.shape[1] != len(spectra):
        raise ActSpecError(
            f"{len(spectra)} spectra but the problem has {values.shape[1]} outputs; pass the problem the "
            "batch was computed from."
        )
    _refuse_non_finite(values)
    return np.array([r2_score(values[:, k], s.evaluate(masks)) for k, s in enumerate(spectra)])
