"""Problems: pseudo-Boolean functions of a neuron mask, as pytrees."""

from actspec_jax.problems.base import FunctionProblem, Problem, check_masks
from actspec_jax.problems.cut import (
    CutModel,
    cut_functions,
    cut_linen,
    cut_model,
    cut_nnx,
    list_layers,
)
from actspec_jax.problems.cut_haiku import cut_haiku
from actspec_jax.problems.cut_pytree import cut_equinox, cut_penzai
from actspec_jax.problems.masked import FILLS, MaskedProblem, masked_problem
from actspec_jax.problems.multi import MultiLayerProblem, multi_layer_problem
from actspec_jax.problems.outputs import (
    AllLogits,
    AllLogProbs,
    At,
    ClassIndicator,
    Custom,
    Logit,
    LogitDiff,
    LogProb,
    OutputSelector,
    Prob,
    parse_output,
)
from actspec_jax.problems.sites import AxisError, Site, site

__all__ = [
    "FILLS",
    "AllLogProbs",
    "AllLogits",
    "At",
    "AxisError",
    "ClassIndicator",
    "Custom",
    "CutModel",
    "FunctionProblem",
    "LogProb",
    "Logit",
    "LogitDiff",
    "MaskedProblem",
    "MultiLayerProblem",
    "OutputSelector",
    "Prob",
    "Problem",
    "Site",
    "check_masks",
    "cut_equinox",
    "cut_functions",
    "cut_haiku",
    "cut_linen",
    "cut_model",
    "cut_nnx",
    "cut_penzai",
    "list_layers",
    "masked_problem",
    "multi_layer_problem",
    "parse_output",
    "site",
]
