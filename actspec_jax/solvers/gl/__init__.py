"""The Goldreich–Levin threshold search: every Fourier coefficient above τ, bucket by bucket.

The public face: :class:`GoldreichLevin`, its estimators (:class:`UniformMasks`,
:class:`PaperHybrids`) and its non-redundancy constraints (:class:`Prescreen`,
:class:`PostCheck`, :class:`SpectralAliasing`). Inside: ``search`` (the solver object), ``run``
(one search), ``batched`` and ``batched_passes`` (one search over ``K`` outputs), ``kernels``
and ``multi_kernels`` (the jitted level and leaf programs), ``leaves``, ``state`` (the resumable
search state), ``settings``, ``budget``, ``diagnostics``, ``residual`` (residual passes),
``estimators``, ``paper`` (the paper's estimator) and ``redundancy``.
"""

from actspec_jax.solvers.gl.estimators import Estimator, PaperHybrids, UniformMasks
from actspec_jax.solvers.gl.redundancy import PostCheck, Prescreen, SpectralAliasing
from actspec_jax.solvers.gl.search import GoldreichLevin
from actspec_jax.solvers.gl.state import CheckpointError

__all__ = [
    "CheckpointError",
    "Estimator",
    "GoldreichLevin",
    "PaperHybrids",
    "PostCheck",
    "Prescreen",
    "SpectralAliasing",
    "UniformMasks",
]
