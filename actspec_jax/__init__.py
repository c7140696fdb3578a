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

from typing import TYPE_CHECKING, Any

#: Public names and the modules they live in, imported on first use (PEP 562): ``import
#: actspec_jax`` and ``actspec --help`` stay fast; ``asj.ExactSolver`` loads the solvers (and JAX).
_NAMES = {
    "ActSpecError": "actspec_jax.errors",
    "AxisError": "actspec_jax.problems.sites",
    "CheckpointError": "actspec_jax.solvers",
    "CompressiveSolver": "actspec_jax.solvers",
    "CutModel": "actspec_jax.problems",
    "DegreeProfile": "actspec_jax.solvers",
    "DeviceCountError": "actspec_jax.errors",
    "Estimator": "actspec_jax.solvers",
    "ExactSolver": "actspec_jax.solvers",
    "FunctionProblem": "actspec_jax.problems",
    "GLState": "actspec_jax.solvers",
    "GoldreichLevin": "actspec_jax.solvers",
    "MaskError": "actspec_jax.errors",
    "MaskedProblem": "actspec_jax.problems",
    "MemoryBudgetError": "actspec_jax.errors",
    "MultiLayerProblem": "actspec_jax.problems",
    "NonFiniteOutputError": "actspec_jax.errors",
    "PaperHybrids": "actspec_jax.solvers",
    "PostCheck": "actspec_jax.solvers",
    "Prescreen": "actspec_jax.solvers",
    "Problem": "actspec_jax.problems",
    "ProblemTooLargeError": "actspec_jax.errors",
    "ResidualPasses": "actspec_jax.solvers",
    "Site": "actspec_jax.problems.sites",
    "SpectralAliasing": "actspec_jax.solvers",
    "Spectrum": "actspec_jax.spectrum",
    "SpectrumBatch": "actspec_jax.spectrum",
    "SpectrumFormatError": "actspec_jax.errors",
    "UniformMasks": "actspec_jax.solvers",
    "UnknownLayerError": "actspec_jax.errors",
    "cut_equinox": "actspec_jax.problems.cut_pytree",
    "cut_functions": "actspec_jax.problems",
    "cut_haiku": "actspec_jax.problems",
    "cut_linen": "actspec_jax.problems",
    "cut_model": "actspec_jax.problems",
    "cut_nnx": "actspec_jax.problems",
    "cut_penzai": "actspec_jax.problems.cut_pytree",
    "estimate_degree_profile": "actspec_jax.solvers",
    "estimate_moments": "actspec_jax.solvers",
    "exact_spectrum": "actspec_jax.solvers",
    "fwht": "actspec_jax.transforms",
    "gl_init": "actspec_jax.solvers",
    "gl_search": "actspec_jax.solvers",
    "gl_update": "actspec_jax.solvers",
    "ifwht": "actspec_jax.transforms",
    "list_layers": "actspec_jax.problems",
    "load_results": "actspec_jax.spectrum",
    "masked_problem": "actspec_jax.problems",
    "site": "actspec_jax.problems.sites",
    "top_terms": "actspec_jax.solvers",
}
_MODULES = {
    "ablation": "actspec_jax.analysis.ablation",
    "concepts": "actspec_jax.concepts",
    "errors": "actspec_jax.errors",
    "firing": "actspec_jax.analysis.firing",
    "indices": "actspec_jax.analysis.indices",
    "layers": "actspec_jax.layers",
    "metrics": "actspec_jax.analysis.metrics",
    "problems": "actspec_jax.problems",
    "sharding": "actspec_jax.solvers.common.sharding",
    "solvers": "actspec_jax.solvers",
    "transforms": "actspec_jax.transforms",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'actspec_jax' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the eager imports, for type checkers and editors
    from actspec_jax import (
        concepts,
        errors,
        layers,
        problems,
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
        cut_haiku,
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
    "cut_haiku",
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
    "sharding",
    "site",
    "solvers",
    "top_terms",
    "transforms",
]
