"""Settings of the Goldreich–Levin search (private): constants, defaults filled in from the
estimator, validation, and the non-redundancy constraints in effect.

:func:`resolve_settings` turns a :class:`~actspec_jax.GoldreichLevin` and its estimator
(:mod:`actspec_jax.solvers.gl.estimators`) into the JSON-ready dict ``cfg`` that the search reads,
that ``spectrum.solver`` records and that a checkpoint's fingerprint hashes.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError
from actspec_jax.solvers.gl.estimators import Estimator
from actspec_jax.solvers.gl.paper import PAPER_DEFAULTS
from actspec_jax.solvers.gl.redundancy import PostCheck, Prescreen, SpectralAliasing, paper_constraints

__all__ = [
    "LEVEL_STATS",
    "MAX_DEGREE_LIMIT",
    "MAX_RECORDS",
    "TAU_MODES",
    "UNDER_JIT_HINT",
    "key_data",
    "resolve_constraints",
    "resolve_settings",
    "wants_info",
]

Progress = Callable[..., None]

TAG_LEVELS, TAG_NORM, TAG_INFLUENCE, TAG_LEAVES, TAG_POSTCHECK, TAG_REFIT = 0, 1, 2, 3, 4, 50
TAU_MODES = ("relative", "centered", "absolute")
LEVEL_STATS = (
    "level",
    "prefix",
    "live_in",
    "children",
    "above_threshold",
    "kept",
    "rejected_postcheck",
    "unchecked_postcheck",
    "degree_dropped",
    "undecided",
    "samples",
    "rounds",
    "evaluations",
    "max_weight",
    "min_kept_weight",
    "seconds",
)
MAX_RECORDS = 10_000  # removal records kept in the result (the count is always exact)
UNDER_JIT_HINT = (
    "inside jax.jit / vmap / grad (it checks values and builds its result on the host). Inside "
    "traced code use the functional form: state = actspec_jax.gl_init(n, key=key, "
    "threshold=tau_abs**2 / 2); state = actspec_jax.gl_search(problem.evaluate_unchecked, state) "
    "(or one level at a time with actspec_jax.gl_update); survivors: state.members[state.valid]."
)

#: The largest ``max_degree`` GL accepts.
MAX_DEGREE_LIMIT = 32


def key_data(key: jax.Array) -> np.ndarray:
    """The raw ``uint32`` data of a typed or raw PRNG key (for fingerprints and metadata)."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


def wants_info(progress: Progress) -> bool:
    """Whether a progress callback accepts ``info=`` (a keyword of that name or ``**kwargs``)."""
    try:
        params = inspect.signature(progress).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "info" or p.kind == p.VAR_KEYWORD for p in params)


def resolve_settings(solver: Any, estimator: Estimator) -> dict[str, Any]:
    """Every setting of ``solver`` with ``estimator``'s defaults filled in, validated (JSON-ready)."""
    d = estimator.defaults
    pick = lambda name: d[name] if getattr(solver, name) is None else getattr(solver, name)  # noqa: E731
    tau = float(pick("tau"))
    tau_mode = solver.tau_mode
    out: dict[str, Any] = {"estimator": estimator.name}
    own = estimator.describe()
    if own:  # a custom estimator's settings (the shipped ones have none beyond their name)
        out["estimator_settings"] = own
    out.update(
        {
            "tau": tau,
            "tau_mode": tau_mode,
            "beam": int(solver.beam),
            "num_samples": int(pick("num_samples")),
            "draws_per_z": int(pick("draws_per_z")),
            "block_size": int(pick("block_size")),
            "order": pick("order") if isinstance(pick("order"), str) else [int(i) for i in pick("order")],
            "prune": bool(solver.prune),
            "influence_samples": int(solver.influence_samples),
            "adaptive": bool(solver.adaptive),
            "max_samples": int(solver.max_samples or 16 * int(pick("num_samples"))),
            "confidence": float(solver.confidence),
            "leaf_samples": int(solver.leaf_samples),
            "refit": bool(pick("refit")),
            "max_degree": int(solver.max_degree),
            "center": bool(solver.center) and estimator.centres,
            "passes": int(pick("passes")),
            "binarize_threshold": float(solver.binarize_threshold),
        }
    )
    if tau_mode not in TAU_MODES:
        raise ActSpecError(f"tau_mode must be one of {TAU_MODES}, got {tau_mode!r}.")
    if tau_mode == "absolute":
        if not (math.isfinite(tau) and tau > 0):
            raise ActSpecError(f"tau must be a positive threshold in the output's units, got {tau}.")
    elif not 0.0 < tau <= 1.0:
        raise ActSpecError(
            f"tau must be in (0, 1] (a fraction of ‖f‖₂ with tau_mode={tau_mode!r}), got {tau}. "
            "For a threshold in the output's units use tau_mode='absolute'."
        )
    if out["passes"] < 1 or (out["passes"] > 1 and not estimator.masks):
        raise ActSpecError(
            f"passes must be >= 1, and 1 with the {estimator.name} estimator (got {out['passes']}); "
            "residual passes need a function of masks."
        )
    if out["beam"] < 1:
        raise ActSpecError(f"beam must be >= 1 (live buckets kept per level), got {solver.beam}.")
    for name in ("num_samples", "draws_per_z", "leaf_samples", "influence_samples"):
        if out[name] < 2:
            raise ActSpecError(
                f"{name} must be >= 2 (an estimate needs at least two samples), got {out[name]}."
            )
    if out["max_samples"] < out["num_samples"]:
        raise ActSpecError(
            f"max_samples ({out['max_samples']}) must be >= num_samples ({out['num_samples']})."
        )
    if not 1 <= out["block_size"] <= 8:
        raise ActSpecError(f"block_size must be in 1..8 (2^b children per bucket), got {out['block_size']}.")
    if not 1 <= out["max_degree"] <= MAX_DEGREE_LIMIT:
        raise ActSpecError(f"max_degree must be in 1..{MAX_DEGREE_LIMIT}, got {solver.max_degree}.")
    if not 0.0 < out["confidence"] < 1.0:
        raise ActSpecError(f"confidence must be in (0, 1), got {solver.confidence}.")
    if isinstance(out["order"], str) and out["order"] not in ("index", "influence"):
        raise ActSpecError(
            f"order must be 'index', 'influence' or a sequence of neurons, got {out['order']!r}."
        )
    if out["order"] == "influence" and not estimator.masks:
        raise ActSpecError(
            f"order='influence' measures mask influences; the {estimator.name} estimator uses 'index'."
        )
    out["redundancy"] = [c.describe() for c in resolve_constraints(solver.redundancy, estimator)]
    return out


def resolve_constraints(spec: Any, estimator: Estimator) -> tuple[Any, ...]:
    """The non-redundancy constraints in effect for ``redundancy=spec`` (``None``: the estimator's)."""
    if spec is None:
        return estimator.default_constraints()
    if isinstance(spec, str):
        if spec == "none":
            return ()
        if spec == "paper":
            return paper_constraints(PAPER_DEFAULTS["gamma"], PAPER_DEFAULTS["delta"])
        raise ActSpecError(
            f"redundancy must be None, 'none', 'paper' or a sequence of constraints, got {spec!r}."
        )
    items = tuple(spec)
    for item in items:
        if not isinstance(item, Prescreen | PostCheck | SpectralAliasing):
            raise ActSpecError(
                f"redundancy entries must be Prescreen, PostCheck or SpectralAliasing objects, got "
                f"{type(item).__name__}."
            )
    stages = [c.stage for c in items]
    if len(set(stages)) != len(stages):
        raise ActSpecError("pass each kind of redundancy constraint at most once.")
    return items
