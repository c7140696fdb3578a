"""actspec_jax — Activation Spectroscopy in JAX.

Treat the sub-network between one layer and an output as a pseudo-Boolean function of a
neuron mask and read its Fourier (Walsh) spectrum: exactly, by a fast Walsh–Hadamard
transform, for small layers; by a vectorised Goldreich–Levin search for large ones.

Sign convention: ``x_i = +1`` keeps neuron ``i``, ``−1`` ablates it; see
:mod:`actspec_jax.transforms.indexing` for the full statement.

The contract::

    import actspec_jax as asj
    problem = asj.FunctionProblem(f, n)      # f: float32[k, n] of ±1 -> float32[k]
    spec = asj.ExactSolver()(problem)        # -> asj.Spectrum
    spec = asj.GoldreichLevin(tau=0.1)(problem, key=jax.random.key(0))   # large layers
    spec.to_dict()                           # {tuple(sorted neuron indices): coefficient}
"""

from actspec_jax import (
    concepts,
    errors,
    layers,
    problems,
    runner,
    solvers,
    transforms,
)
from actspec_jax.analysis import ablation, firing, indices, metrics
from actspec_jax.errors import (
    ActSpecError,
    DeviceCountError,
    MaskError,
    MemoryBudgetError,
    NonFiniteOutputError,
    ProblemTooLargeError,
    SpectrumFormatError,
    UnknownLayerError,
)
from actspec_jax.problems import (
    CutModel,
    FunctionProblem,
    MaskedProblem,
    MultiLayerProblem,
    Problem,
    cut_functions,
    cut_linen,
    cut_model,
    cut_nnx,
    list_layers,
    masked_problem,
)
from actspec_jax.problems.cut_pytree import cut_equinox, cut_penzai
from actspec_jax.problems.sites import AxisError, Site, site
from actspec_jax.solvers import (
    CheckpointError,
    CompressiveSolver,
    DegreeProfile,
    Estimator,
    ExactSolver,
    GLState,
    GoldreichLevin,
    PaperHybrids,
    PostCheck,
    Prescreen,
    ResidualPasses,
    SpectralAliasing,
    UniformMasks,
    estimate_degree_profile,
    estimate_moments,
    exact_spectrum,
    gl_init,
    gl_search,
    gl_update,
    sharding,
    top_terms,
)
from actspec_jax.spectrum import Spectrum, SpectrumBatch, load_results
from actspec_jax.transforms import fwht, ifwht

__version__ = "0.1.0"

__all__ = [
    "ActSpecError",
    "AxisError",
    "CheckpointError",
    "CompressiveSolver",
    "CutModel",
    "DegreeProfile",
    "DeviceCountError",
    "Estimator",
    "ExactSolver",
    "FunctionProblem",
    "GLState",
    "GoldreichLevin",
    "MaskError",
    "MaskedProblem",
    "MemoryBudgetError",
    "MultiLayerProblem",
    "NonFiniteOutputError",
    "PaperHybrids",
    "PostCheck",
    "Prescreen",
    "Problem",
    "ProblemTooLargeError",
    "ResidualPasses",
    "Site",
    "SpectralAliasing",
    "Spectrum",
    "SpectrumBatch",
    "SpectrumFormatError",
    "UniformMasks",
    "UnknownLayerError",
    "__version__",
    "ablation",
    "concepts",
    "cut_equinox",
    "cut_functions",
    "cut_linen",
    "cut_model",
    "cut_nnx",
    "cut_penzai",
    "errors",
    "estimate_degree_profile",
    "estimate_moments",
    "exact_spectrum",
    "firing",
    "fwht",
    "gl_init",
    "gl_search",
    "gl_update",
    "ifwht",
    "indices",
    "layers",
    "list_layers",
    "load_results",
    "masked_problem",
    "metrics",
    "problems",
    "runner",
    "sharding",
    "site",
    "solvers",
    "top_terms",
    "transforms",
]
