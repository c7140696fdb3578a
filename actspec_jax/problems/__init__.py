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
from actspec_jax.problems.masked import FILLS, MaskedProblem, masked_problem
from actspec_jax.problems.multi import MultiLayerProblem, multi_layer_problem
from actspec_jax.problems.outputs import (
    AllLogits,
    AllLogProbs,
    ClassIndicator,
    Logit,
    LogitDiff,
    LogProb,
    OutputSelector,
    Prob,
    parse_output,
)

__all__ = [
    "FILLS",
    "AllLogProbs",
    "AllLogits",
    "ClassIndicator",
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
    "check_masks",
    "cut_functions",
    "cut_linen",
    "cut_model",
    "cut_nnx",
    "list_layers",
    "masked_problem",
    "multi_layer_problem",
    "parse_output",
]
