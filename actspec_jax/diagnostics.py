"""Conditions under which a solver's answer may be incomplete, recorded and warned about.

Every such condition (a beam full on consecutive levels, an adaptive sample rule hitting its
cap, an exhausted evaluation budget, outputs with tiny variance, a suspicious argument) is
both *warned* (:class:`IncompleteResultWarning`, a ``UserWarning``) and *recorded* in the
result's solver metadata under ``spectrum.solver["diagnostics"]``: a list of
``{"code": str, "message": str, "fix": str}`` dicts, so a saved spectrum still says it.
"""

from __future__ import annotations

import warnings
from collections.abc import MutableMapping, MutableSequence
from typing import Any

__all__ = [
    "ADDITIVE_SHARE",
    "IncompleteResultWarning",
    "LowPrecisionWarning",
    "diagnostic",
    "flag_additive_output",
    "report_diagnostic",
]

#: Below this upper bound of the whole spectrum's interaction share an output is called additive.
ADDITIVE_SHARE = 1e-3


class IncompleteResultWarning(UserWarning):
    """A solver's answer may be incomplete or misleading; the message says why and the fix."""


class LowPrecisionWarning(UserWarning):
    """The model computes in bfloat16/float16: small coefficients carry its round-off."""


def diagnostic(code: str, message: str, fix: str) -> dict[str, str]:
    """One diagnostic record: a stable ``code``, what happened, and what to do about it."""
    return {"code": str(code), "message": str(message), "fix": str(fix)}


def report_diagnostic(
    sink: MutableSequence[dict[str, str]] | MutableMapping[str, Any],
    code: str,
    message: str,
    fix: str,
    *,
    stacklevel: int = 3,
) -> dict[str, str]:
    """Warn with :class:`IncompleteResultWarning` and append the record to ``sink``.

    ``sink`` is either a list of records or a solver-metadata mapping, in which case the record
    goes to its ``"diagnostics"`` list (created when missing).
    """
    record = diagnostic(code, message, fix)
    if isinstance(sink, MutableMapping):
        sink.setdefault("diagnostics", []).append(record)
    else:
        sink.append(record)
    warnings.warn(f"{message} Fix: {fix}", IncompleteResultWarning, stacklevel=stacklevel)
    return record


def flag_additive_output(solver: MutableMapping[str, Any], interaction_upper: float, variance: float) -> None:
    """Warn and record (code ``additive_output``) when the output is (near-)exactly additive in
    the cut layer — the upper bound of the whole spectrum's interaction share is below
    :data:`ADDITIVE_SHARE` — so every joint effect is zero by construction (usually: the model
    after the cut is linear in the layer)."""
    if interaction_upper >= ADDITIVE_SHARE or not variance > 0:
        return
    report_diagnostic(
        solver,
        "additive_output",
        f"the output is additive in this layer: at most {100 * interaction_upper:.2g} % of its variance "
        "is in interactions (|S| ≥ 2), so no joint subset can matter. This happens when the model after "
        "the cut is linear in the layer (e.g. a logit of a network whose last layer is linear, cut at "
        "the last hidden layer).",
        "explain a nonlinear output (e.g. 'log_prob:c' or 'prob:c' instead of 'logit:c'), or cut at an "
        "earlier layer.",
        stacklevel=5,
    )
