"""The compressive solver's side of the residual-pass protocol (private).

Under :class:`~actspec_jax.solvers.common.residual.ResidualPasses` every pass is a complete
:class:`~actspec_jax.solvers.compressive.CompressiveSolver` call with the same settings: pass
``p`` decodes the residual ``f − f̃_{p−1}`` with fresh hashes (its key is ``fold_in(key, 100 + p)``);
the terms found before no longer collide in the bins, so the ones they hid can be peeled.
Refits are least squares (:func:`~actspec_jax.solvers.compressive.refit.least_squares`, HC1
errors) of every subset found so far on **one** design of ``R`` fresh uniform masks, drawn
from ``fold_in(key, 20_000)`` and evaluated once per call, so every refit of the call shares
(and counts once) the same ``R`` evaluations. The trim threshold is ``10⁻³·std f`` (``std f``
from the first pass's uniform masks; the solver's own rule for added terms): a residual that is
already round-off gets "terms" peeled from it, which are neither new nor reported. There is no
post-processing.

**Budget.** With ``ResidualPasses(..., max_evaluations=B)`` (the inner solver then has none)
each of the ``P`` passes gets ``b = ⌊(B − R₀)/P⌋`` with ``R₀ = max(16, ⌊B/8⌋)``, and the refit
design takes the rest, ``R = B − P·b``; a pass spends exactly its plan, so the call never
exceeds ``B``. Without it each pass costs the inner solver's own plan (its ``max_evaluations``
if set) and ``R`` is that plan's ``held``: ``P·b + R`` in all when every pass runs. ``finish``
recomputes ``explained_share`` on the refit design (the passes' own reports are on their
residuals) and attaches the degree profile when the solver would.

**When it helps.** Measured on planted sparse polynomials (exactly sparse): two passes at a
small per-pass budget recover more terms than one pass at that budget (n = 32, 20 terms, 400
a pass: recall 0.65 → 1.00, 972 evaluations in all), but one pass at the *total* budget did as
well (1.00 at 972; at n = 64, 60 terms, B = 3000 split over 1, 2 or 3 passes: 1.00 each) —
within one call the solver's rounds already subtract what was found. The passes add a joint refit on fresh
uniform masks and a fresh decode of whatever the first pass left.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.diagnostics import IncompleteResultWarning
from actspec_jax.errors import ActSpecError
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.profile_attach import (
    attach_degree_profile,
    attach_degree_profiles,
    wants_degree_profile,
)
from actspec_jax.solvers.common.residual import MultiResidualProblem, pass_key, run_output_passes
from actspec_jax.solvers.common.validate import check_key
from actspec_jax.solvers.compressive.refit import predict
from actspec_jax.solvers.compressive.stream import UniformRows, evaluate_rows
from actspec_jax.spectrum import Spectrum, SpectrumBatch

__all__ = ["CompressivePasses", "start_passes"]

TAG_REFIT_DESIGN = 20_000
MIN_REFIT = 16
ROUND_OFF = 1e-3  # terms below this share of std f are round-off, as in CompressiveSolver._refit


def start_passes(
    solver: Any,
    problem: Problem,
    *,
    key: jax.Array | None,
    passes: int,
    max_evaluations: int | None = None,
    progress: Any = None,
    checkpoint_path: str | Path | None = None,
) -> CompressivePasses:
    """Plan the passes (and the budget split), run the first pass, return the hooks."""
    if progress is not None or checkpoint_path is not None:
        raise ActSpecError(
            "ResidualPasses with CompressiveSolver takes no progress or checkpoint_path yet; one "
            "CompressiveSolver(...)(problem, key=..., progress=..., checkpoint_path=...) call takes both."
        )
    if key is None:
        raise ActSpecError("CompressiveSolver samples at random: pass key=jax.random.key(0) (any seed).")
    check_key(key, "ResidualPasses(CompressiveSolver)")
    n = int(problem.n)
    if max_evaluations is not None:
        if solver.max_evaluations is not None:
            raise ActSpecError(
                "set the budget once: ResidualPasses(CompressiveSolver(...), max_evaluations=B) splits B "
                "over the passes and the refit; CompressiveSolver(max_evaluations=b) is a per-pass budget."
            )
        # passes=1 runs no joint refit: the one pass gets the whole budget.
        refit = max(MIN_REFIT, max_evaluations // 8) if passes > 1 else 0
        per_pass = (max_evaluations - refit) // passes
        minimum = solver.minimum_evaluations(n)
        if per_pass < minimum:
            raise ActSpecError(
                f"max_evaluations={max_evaluations} over {passes} passes leaves {per_pass} per pass after "
                f"{refit} refit masks, below the solver's minimum of {minimum} at n={n}; raise the budget "
                f"to at least {minimum * passes + refit} or use fewer passes."
            )
        if solver.degree_profile:
            raise ActSpecError(
                "degree_profile=True would spend evaluations beyond max_evaluations; leave it unset under a "
                "budget and call actspec_jax.estimate_degree_profile separately if you want the profile."
            )
        inner = dataclasses.replace(solver, max_evaluations=per_pass)
        refit = max_evaluations - per_pass * passes
    else:
        inner = solver
        refit = int(inner.plan(n)["held"])
    profile = inner.max_evaluations is None and wants_degree_profile(
        problem, solver.degree_profile, solver.profile_evaluations, mask_mode=True, many_outputs=True
    )
    inner = dataclasses.replace(inner, degree_profile=False)  # attached once, by finish
    key = key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)
    with warnings.catch_warnings():
        if passes > 1:  # its share of Var f is re-judged on the final fit
            warnings.simplefilter("ignore", IncompleteResultWarning)
        spectrum = inner(problem, key=key)
    run = CompressivePasses(inner, problem, key, spectrum, passes, refit, key if profile else None)
    run.budget = max_evaluations
    return run


class CompressivePasses:
    """The residual-pass hooks of one compressive call (see the module docstring)."""

    def __init__(
        self,
        solver: Any,
        problem: Problem,
        key: jax.Array,
        spectrum: Spectrum,
        passes: int,
        refit: int,
        profile_key: jax.Array | None,
    ) -> None:
        self.solver, self.problem, self.key, self.spectrum = solver, problem, key, spectrum
        self.n, self.passes, self.refit = int(problem.n), int(passes), int(refit)
        self.profile_key = profile_key
        firsts = list(spectrum) if isinstance(spectrum, SpectrumBatch) else [spectrum]
        #: per output: ``ROUND_OFF · std f_k`` (its first pass's uniform masks)
        self.thresholds = np.asarray([_round_off(s) for s in firsts])
        self.threshold = float(self.thresholds[0])
        self.design: tuple[Any, np.ndarray] | None = None  # masks [R, n], values [R, K]
        self.budget: int | None = None  # ResidualPasses(max_evaluations=): recorded by finish
        if passes > 1:
            firsts = [_without_unexplained_spectrum(s) for s in firsts]
            self.spectrum = (
                dataclasses.replace(spectrum, spectra=tuple(firsts))
                if isinstance(spectrum, SpectrumBatch)
                else firsts[0]
            )

    def search_residual(
        self, residual: Problem, *, key: jax.Array, index: int, checkpoint_path: Path | None
    ) -> Spectrum:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IncompleteResultWarning)
            extra = self.solver(residual, key=key)
        return self._kept(extra, self.threshold)

    def _kept(self, extra: Spectrum, threshold: float) -> Spectrum:
        """Only the terms above round-off count as found (the loop reads subsets, solver, norm_sq)."""
        kept = {s: c for s, c in extra.to_dict().items() if s == () or abs(c) >= threshold}
        out = Spectrum.build(self.n, list(kept), np.asarray(list(kept.values()), np.float64))
        return dataclasses.replace(out, norm_sq=extra.norm_sq, solver=_without_unexplained(extra.solver))

    def fit_subsets(
        self, subsets: Sequence[tuple[int, ...]], *, tag: int, output: int = 0
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Least squares of output ``output`` on the call's one refit design (evaluated for every
        output, and counted, at the call's first fit)."""
        used = 0
        if self.design is None:
            rows = UniformRows(jax.random.fold_in(self.key, TAG_REFIT_DESIGN), self.refit, self.n)
            outputs = int(np.prod(self.problem.output_shape))
            chunk = self.solver._chunk(self.problem)
            values = evaluate_rows(self.problem, rows, chunk=chunk, outputs=outputs)
            self.design = (np.asarray(rows.chunk(0, rows.count)), values.reshape(rows.count, outputs))
            used = self.refit
        masks, values = self.design
        coef, err = self.solver._fit(masks, values[:, output], list(subsets), self.n)
        return coef, err, used

    # ------------------------------------------------------------ many outputs (one design)
    def search_outputs(self, current: list[Spectrum], index: int, active: np.ndarray) -> list:
        """Pass ``index`` of every active output: one compressive call on their residuals (one
        evaluation of its plan for all of them), terms below each output's round-off dropped."""
        outputs = [int(k) for k in np.flatnonzero(active)]
        residual = MultiResidualProblem(self.problem, [current[k] for k in outputs], outputs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IncompleteResultWarning)
            batch = self.solver(residual, key=pass_key(self.key, index))
        found: list = [None] * len(current)
        for position, k in enumerate(outputs):
            found[k] = self._kept(batch[position], float(self.thresholds[k]))
        return found

    def fit_outputs(self, subsets: dict[int, list[tuple[int, ...]]], tag: int) -> tuple[dict, int]:
        """Every given output's least squares on the call's one refit design."""
        fits, used = {}, 0
        for k, chosen in subsets.items():
            coef, err, spent = self.fit_subsets(chosen, tag=tag, output=k)
            fits[k], used = (coef, err), used + spent
        return fits, used

    def finish_outputs(self, started: float) -> SpectrumBatch:
        """The passes of every output (:func:`~actspec_jax.solvers.common.residual.run_output_passes`),
        then each output's :meth:`finish`."""
        batch = self.spectrum
        spectra = run_output_passes(
            list(batch), self.problem, passes=self.passes, thresholds=self.thresholds,
            search=self.search_outputs, fit=self.fit_outputs, started=started,
        )  # fmt: skip
        spectra = [self.finish(s, output=k, profile=False) for k, s in enumerate(spectra)]
        if self.profile_key is not None:  # one estimate for every output
            spectra = attach_degree_profiles(
                spectra, self.problem, self.profile_key, evaluations=self.solver.profile_evaluations
            )
        return dataclasses.replace(batch, spectra=tuple(spectra))

    def postprocess(self, subsets: list[tuple[int, ...]]) -> None:
        return None

    def finish(self, spectrum: Spectrum, output: int = 0, profile: bool = True) -> Spectrum:
        if self.design is not None:  # passes ran: judge the final fit on the refit design
            info = dict(spectrum.solver)
            info.pop("explained_share", None)
            info = _without_unexplained(info)
            masks, values = self.design
            fitted = predict(masks, spectrum.subset_tuples(), np.asarray(spectrum.coefficients), self.n)
            label = spectrum.output_label if self.problem.output_shape != () else None
            self.solver._report_unexplained(info, fitted, values[:, output], output=label)
            spectrum = dataclasses.replace(spectrum, solver=info)
        if self.budget is not None:  # the call's budget; the passes' own is max_evaluations_per_pass
            per_pass = spectrum.solver["max_evaluations"]
            info = dict(spectrum.solver, max_evaluations=self.budget, max_evaluations_per_pass=per_pass)
            spectrum = dataclasses.replace(spectrum, solver=info)
        if self.profile_key is None or not profile:
            return spectrum
        return attach_degree_profile(
            spectrum, self.problem, self.profile_key, evaluations=self.solver.profile_evaluations
        )


def _round_off(spectrum: Spectrum) -> float:
    """``ROUND_OFF · std f`` from a first pass (its norm and constant term)."""
    constant = float(spectrum.to_dict().get((), 0.0))
    return ROUND_OFF * float(np.sqrt(max(spectrum.norm_sq - constant**2, 0.0)))


def _without_unexplained_spectrum(spectrum: Spectrum) -> Spectrum:
    """``spectrum`` without ``unexplained`` diagnostics (re-judged on the final fit)."""
    if not spectrum.solver.get("diagnostics"):
        return spectrum
    return dataclasses.replace(spectrum, solver=_without_unexplained(spectrum.solver))


def _without_unexplained(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` without ``unexplained`` diagnostics (a residual's share is not the result's)."""
    kept = [d for d in info.get("diagnostics", []) if d.get("code") != "unexplained"]
    info = dict(info)
    if kept:
        info["diagnostics"] = kept
    else:
        info.pop("diagnostics", None)
    return info
