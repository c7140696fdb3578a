"""Leaf estimates of the Goldreich–Levin search (private).

The surviving subsets (and ``∅``) are fitted on one design — fresh uniform masks (mask mode)
or the data rows (paper mode) — either by least squares on their characters with
heteroskedasticity-robust (HC1 sandwich) standard errors with a floor for the float32
rounding of the moments (:meth:`LeafFit.rounding_floor`), or as independent means (the
textbook errors of data correlations).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.solvers import _gl_kernels as K

__all__ = ["LeafFit"]


class LeafFit:
    """Leaf coefficients from one design (uniform masks, or the data rows in paper mode).

    The heavy work (``ΦᵀΦ``, ``Φᵀv`` and the sandwich's ``Φᵀ diag(e²) Φ``, with ``Φ`` the
    characters of every beam slot plus ∅) runs on device; the small ``K × K`` algebra in
    float64 on the host. ``ΦᵀΦ`` is exact in float32 (integer sums of ±1).
    """

    def __init__(
        self, run: Any, values_dev: jax.Array, values: np.ndarray, draws: jax.Array, members: jax.Array
    ):
        self.run, self.values_dev, self.draws, self.members = run, values_dev, draws, members
        self.total = values.shape[0]
        self.sum_sq = float((values * values).sum())
        kw = {"mode": run.mode, "c": run.c_chars, "n": run.n}
        gram, xty = K.leaf_moments(values_dev, draws, run.patterns, members, **kw)
        self.gram, self.xty = np.asarray(gram, np.float64), np.asarray(xty, np.float64)
        self.kw = kw

    def __call__(self, columns: np.ndarray, refit: bool) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients and standard errors of the characters in ``columns``.

        ``refit``: least squares with HC1 sandwich errors ``(ΦᵀΦ)⁻¹ Φᵀdiag(e²)Φ (ΦᵀΦ)⁻¹ · M/(M−K)``;
        otherwise independent means ``mean(v χ)`` with errors ``std(v χ)/√M``.
        """
        total, width = self.total, len(columns)
        xty = self.xty[columns]
        if not refit:
            coef = xty / total
            var = np.maximum(self.sum_sq / total - coef**2, 0.0) * total / max(total - 1, 1)
            return coef, np.sqrt(var / total)
        gram = self.gram[np.ix_(columns, columns)]
        vals, vecs = np.linalg.eigh(gram)  # symmetric PSD; pseudo-inverse if (near-)singular
        inv = np.where(vals > 1e-9 * max(vals.max(), 1.0), 1.0 / np.maximum(vals, 1e-300), 0.0)
        bread = (vecs * inv) @ vecs.T
        coef = bread @ xty
        full = np.zeros(self.gram.shape[0], np.float32)
        full[columns] = coef
        meat = K.leaf_meat(
            self.values_dev, self.draws, self.run.patterns, self.members, jnp.asarray(full), **self.kw
        )
        meat = np.asarray(meat, np.float64)[np.ix_(columns, columns)]
        cov = bread @ meat @ bread * total / max(total - width, 1)
        return coef, np.sqrt(np.maximum(np.diag(cov), 0.0) + self.rounding_floor() ** 2)

    def rounding_floor(self) -> float:
        """Smallest honest standard error: ``ε₃₂ · √M · rms(v)``.

        ``Φᵀv`` is a float32 sum of ``M`` terms of size ``~rms(v)``, so each coefficient carries
        a rounding error of about this scale whatever the sampling variance; when the listed
        terms explain ``f`` exactly the residuals vanish and the sandwich alone would report
        errors 10–100× smaller than the actual error. Added in quadrature.
        """
        return float(
            np.finfo(np.float32).eps * np.sqrt(self.total) * np.sqrt(self.sum_sq / max(self.total, 1))
        )
