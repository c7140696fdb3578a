"""Degree profiles attached to large-``n`` solvers' spectra (:mod:`.degree_profile` estimates them).

A solver decides before its search whether it will attach a profile (:func:`wants_degree_profile`,
which also validates the setting), then adds ``solver['degree_profile']`` to its result
(:func:`attach_degree_profile`; :func:`attach_degree_profiles` for the ``K`` outputs of one problem
from one estimate). The profile's masks are drawn from ``fold_in(key, PROFILE_TAG)`` and counted
apart from the search's evaluations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from actspec_jax.diagnostics import flag_additive_output
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.degree_profile import (
    DegreeProfileError,
    check_profile_arguments,
    estimate_degree_profile,
)

__all__ = [
    "ATTACH_ABOVE_N",
    "PROFILE_TAG",
    "SOLVER_EVALUATIONS",
    "attach_degree_profile",
    "attach_degree_profiles",
    "wants_degree_profile",
]

PROFILE_TAG = 0x5052  # fold_in tag of the profile's masks; distinct from every GL stage tag
ATTACH_ABOVE_N = 24  # below this the exact solver gives energy_by_degree itself
SOLVER_EVALUATIONS = 8192


def wants_degree_profile(
    problem: Problem, enabled: bool | None, evaluations: int, *, mask_mode: bool, many_outputs: bool = False
) -> bool:
    """Whether a large-n solver attaches a profile; validates its settings before the search runs.

    ``enabled=None`` (default): yes for mask-mode problems with ``n > 24`` (smaller problems have
    the exact ``energy_by_degree``) and one output — or several, for a solver that attaches one
    profile per output from one estimate (``many_outputs``, :func:`attach_degree_profiles`);
    ``True`` forces it (mask mode only), ``False`` turns it off.
    """
    if enabled is False:
        return False
    if enabled is not None and enabled is not True:
        raise DegreeProfileError(f"degree_profile must be None (auto), True or False, got {enabled!r}.")
    if not mask_mode or (problem.output_shape != () and not many_outputs):
        if enabled:
            raise DegreeProfileError(
                "degree_profile=True needs the mask estimator and a single output (the profile is the "
                "spectrum of the mask function under uniform masks)."
            )
        return False
    if enabled is None and problem.n <= ATTACH_ABOVE_N:
        return False
    check_profile_arguments(problem, 0, min(3, problem.n - 1), evaluations, 0.95)
    return True


def attach_degree_profile(
    spectrum: Any, problem: Problem, key: jax.Array, *, evaluations: int, memory_budget: int | None = None
) -> Any:
    """``spectrum`` with ``solver['degree_profile']`` (:meth:`DegreeProfile.to_dict`) added.

    The profile uses its own ``evaluations`` masks drawn from ``fold_in(key, PROFILE_TAG)``; they
    are *not* counted in ``solver['evaluations']`` (the search's own cost) but in
    ``solver['degree_profile']['evaluations']``. A constant function gets no profile.
    """
    budget = memory_budget
    return attach_degree_profiles([spectrum], problem, key, evaluations=evaluations, memory_budget=budget)[0]


def attach_degree_profiles(
    spectra: Sequence[Any],
    problem: Problem,
    key: jax.Array,
    *,
    evaluations: int,
    memory_budget: int | None = None,
) -> list[Any]:
    """:func:`attach_degree_profile` for the ``K`` outputs of one problem (``spectra[k]`` is output
    ``k``; one spectrum for a single-output problem): **one** estimate over all outputs (one set of
    ``evaluations`` masks), each spectrum given its own output's profile (:meth:`DegreeProfile.output`)
    and the additive-output flag judged on it. Constant outputs get none."""
    import dataclasses

    if all(s.solver.get("constant_function") for s in spectra):
        return list(spectra)
    profile = estimate_degree_profile(
        problem,
        key=jax.random.fold_in(key, PROFILE_TAG),
        max_degree=min(3, problem.n - 1),
        num_evaluations=evaluations,
        memory_budget=memory_budget,
    )
    single = problem.output_shape == ()
    out = []
    for k, spectrum in enumerate(spectra):
        if spectrum.solver.get("constant_function"):
            out.append(spectrum)
            continue
        own = profile if single else profile.output(k)
        solver = {**spectrum.solver, "degree_profile": own.to_dict()}
        if np.asarray(own.total).size == 1:  # one output: is it additive in the layer?
            flag_additive_output(solver, own.interaction_share()[2], float(own.variance))
        out.append(dataclasses.replace(spectrum, solver=solver))
    return out
