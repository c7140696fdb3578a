"""The compressive sparse-Walsh solver: aliasing, peeling and a least-squares refit.

**Method** (SPEX-class; Kang et al.'s sparse-transform framework as described for SPEX —
the formulas, not their code). Each *round* draws ``C`` groups; group ``c`` evaluates ``f`` at
``M_c ℓ ⊕ o_c ⊕ d_p`` for all ``ℓ ∈ {0,1}^b`` and ``P + 1`` delays ``d_p``
(:mod:`~actspec_jax.solvers.compressive.design`): all ``C·(P+1)·2^b`` masks of a round go to
the problem in **one** batched call, and one batched FWHT maps them to ``C·(P+1)`` aliased
spectra of ``2^b`` bins. Singletons are detected and their support read from the delays
(:mod:`~actspec_jax.solvers.compressive.peeling`); the delays are

* degree-bounded (``max_degree = t``): the ``p = m·t`` binary rows of a ``t``-error-correcting
  BCH parity-check matrix (``2^m − 1 ≥ n``; :mod:`~actspec_jax.solvers.compressive.bch`), so a
  support of size ``≤ t`` costs ``≈ t·log₂ n`` delays — or the ``n`` unit vectors when that
  is fewer (small ``n``);
* unbounded (``max_degree=None``): the ``n`` unit vectors (bit ``i`` of ``k`` read directly).

Bins where 2–3 terms collide are decoded too (:mod:`~actspec_jax.solvers.compressive.multiton`:
Chase decoding of the signs, a joint fit inside the bin, the dominant term confirmed by the other
groups, one term from two groups' bins added) — at SPEX's b = 3 design (2.5 terms per bin) this
took 20 planted terms from 6 found to all 20. On an exactly sparse function a bin is also
*factored* from its real values (:mod:`~actspec_jax.solvers.compressive.sums`: each value is a
signed sum of the bin's magnitudes): at half that budget (4 bins per group, ≈ 5 terms a bin) all 20
were found, where the sign decoders found none. Under noise, terms whose bins' signs no decoder
reads are found by a *joint search* over all groups' bins at once
(:mod:`~actspec_jax.solvers.compressive.search`): with a 10 % dense tail at half of SPEX's budget,
recall 0.70 / 0.85 / 0.45 → 1.00 at n = 100 / 500 / 1000.
Peeling subtracts every accepted term from all groups' bins. Later rounds use fresh hashes and
start by subtracting every term found so far, so collisions of one round are resolved in the
next. Real functions are not exactly sparse: the noise floor of the singleton tests is a
low quantile of the bin energies (re-estimated every sweep), a decoded support is verified against its bin
index and the residual over all delays, and a wrongly accepted term gets a near-zero
coefficient in the refit.

**Refit (and the hybrid).** All evaluated masks — the structured rounds and ``held`` uniform
masks — enter one least-squares fit of the found support plus ``∅``, with HC1 sandwich standard
errors (as GL's leaf refit). Every structured mask is marginally uniform (random offset), so
the fit targets ``f̂(S)``; the uniform masks also give ``E[f²]`` unbiasedly. ``singletons``
adds all ``n`` degree-1 characters to the fit (``'auto'``: when there are at least
``8·(n + K)`` masks; all pairs as well when ``8·(n + n(n−1)/2 + K)`` fit — small layers):
real layers have a long tail of small first-order terms that no bin resolves alone but that a
regression on the same samples estimates almost for free; when that leaves room (``N/8``
columns in all) the pairs most correlated with the residual are screened in as well, in two
passes, and the added coefficients are kept at ``|ĉ| ≥ z·se`` (``z ∈ {1, 2, 3}`` chosen on
held-out uniform masks) and ``≥ 10⁻⁶·rms f``, then shrunk by ``max(0, 1 − se²/ĉ²)``
(:mod:`~actspec_jax.solvers.compressive.hybrid`; ``solver['low_degree_keep']`` says which). Terms found
by peeling are always reported.

**Budget.** ``max_evaluations`` is respected by construction: the plan
(:meth:`CompressiveSolver.plan`) fixes ``b`` (the largest that fits), the rounds and the
uniform masks before anything is evaluated, and the solver evaluates exactly the plan.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.diagnostics import report_diagnostic
from actspec_jax.errors import ActSpecError, NonFiniteOutputError
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.compressive import bch
from actspec_jax.solvers.compressive.design import draw_groups, group_bins, group_masks, uniform_masks
from actspec_jax.solvers.compressive.hybrid import hybrid_refit
from actspec_jax.solvers.compressive.peeling import peel, subtract
from actspec_jax.solvers.compressive.refit import least_squares, predict
from actspec_jax.solvers.compressive.search import MAX_COST, search_cost
from actspec_jax.solvers.degree_profile import (
    SOLVER_EVALUATIONS,
    attach_degree_profile,
    wants_degree_profile,
)
from actspec_jax.spectrum import Spectrum

__all__ = ["CompressiveSolver"]

MIN_BITS, MAX_BITS, MIN_HELD = 2, 16, 16
#: Below this share of Var f explained on its uniform masks the result carries an ``unexplained`` diagnostic.
MIN_EXPLAINED = 0.5
#: Chase depth of the BCH decoding: the 6 least reliable signs of a bin are flipped in all
#: 63 patterns (on 20 planted terms with a 10 % dense tail, depth 4 → 6 raised recall at
#: n = 1000, 2160 evaluations from 0.90 to 0.95; 16 bins per group, 37–41 delays).
CHASE_DEPTH = 6
#: Tolerance of the exact factorization of bins (:mod:`~actspec_jax.solvers.compressive.sums`),
#: a share of ``rms f``: float32 round-off of the values and their FWHT, far below any tail.
EXACT_TOL = 1e-5


@dataclasses.dataclass(frozen=True)
class CompressiveSolver:
    """Sparse Walsh spectrum from structured subsampling (see the module docstring).

    Args:
      max_degree: largest ``|S|`` recovered (BCH delays, ``t = max_degree``), ``1 ≤ t < n``;
        ``None``: any degree (unit delays, ``n`` per group).
      max_evaluations: total budget of problem evaluations (never exceeded); ``None``: the
        default plan of ``bins_log2``, ``rounds`` and ``held``.
      bins_log2: ``b``, bins ``2^b`` per group; default: the largest within the budget
        (``6`` without one), at most ``n``.
      groups: ``C`` groups per round (``≥ 1``; 3 as in SPEX).
      rounds: rounds of fresh groups (default 2).
      held: uniform masks added to the refit (default ``max(64, budget/8)``; 1024 without a budget).
      noise_level: lower bound of the non-sparse share of ``Var f`` in ``[0, 1)`` (e.g. 0.1 for
        additive noise of 10 % of the energy); the measured floor is used when higher.
      singletons: ``'auto'``: add all degree-1 characters to the refit when there are ``8×`` as
        many masks as columns, and all degree-2 ones too when those fit as well;
        ``'always'``: degree 1 regardless; ``'never'``: only the peeled terms.
      refit: ``'all'`` (every evaluated mask; most data) or ``'held'`` (the uniform masks only:
        unbiased with honest sandwich errors even when unfound terms correlate with found ones on
        the structured cosets — on a dense 12-neuron MLP the ``'all'`` fit was off by ~5 se on a
        1e-3 coefficient).
      degree_profile: attach the whole spectrum's degree profile as ``solver['degree_profile']``,
        as GoldreichLevin does (``None``: for ``n > 24`` without a budget; never under
        ``max_evaluations``, which it would exceed); its ``profile_evaluations`` are counted apart.
    """

    max_degree: int | None = 4
    max_evaluations: int | None = None
    bins_log2: int | None = None
    groups: int = 3
    rounds: int | None = None
    held: int | None = None
    noise_level: float = 0.0
    singletons: str = "auto"
    refit: str = "all"
    degree_profile: bool | None = None
    profile_evaluations: int = SOLVER_EVALUATIONS

    # ------------------------------------------------------------------ planning
    def delays(self, n: int) -> tuple[np.ndarray, str]:
        """``bool[P+1, n]`` delays (row 0 is zero) and the code used (``'bch'`` | ``'unit'``)."""
        t = self.max_degree
        if t is not None and bch.field_bits(n) * t < n:
            rows, code = bch.bch_delays(n, t), "bch"
        else:
            rows, code = np.eye(n, dtype=bool), "unit"
        return np.concatenate([np.zeros((1, n), bool), rows]), code

    def _check(self, n: int) -> None:
        if self.max_degree is not None and not 1 <= int(self.max_degree) < n:
            raise ActSpecError(
                f"max_degree must be in 1..{n - 1} for n={n} neurons (got {self.max_degree}); "
                "use max_degree=None for no degree bound."
            )
        if not 0.0 <= float(self.noise_level) < 1.0:
            raise ActSpecError(
                f"noise_level is the non-sparse share of Var f and must be in [0, 1), got {self.noise_level}."
            )
        if self.groups < 1 or (self.rounds is not None and self.rounds < 1):
            raise ActSpecError(f"groups and rounds must be >= 1, got {self.groups} and {self.rounds}.")
        if self.refit not in ("all", "held"):
            raise ActSpecError(f"refit must be 'all' or 'held', got {self.refit!r}.")
        if self.singletons not in ("auto", "always", "never"):
            raise ActSpecError(f"singletons must be 'auto', 'always' or 'never', got {self.singletons!r}.")
        if self.bins_log2 is not None and not MIN_BITS <= self.bins_log2 <= min(n, MAX_BITS):
            raise ActSpecError(f"bins_log2 must be in {MIN_BITS}..{min(n, MAX_BITS)}, got {self.bins_log2}.")

    def minimum_evaluations(self, n: int) -> int:
        """The smallest budget this configuration accepts at ``n``: one round at ``b = 2``."""
        delays = self.delays(n)[0].shape[0]
        b = MIN_BITS if self.bins_log2 is None else self.bins_log2
        return self.groups * delays * (1 << b) + MIN_HELD

    def plan(self, n: int) -> dict[str, int]:
        """``{'bins_log2', 'rounds', 'held', 'per_round', 'total'}`` — fixed before any evaluation."""
        self._check(n)
        delays = self.delays(n)[0].shape[0]
        rounds = self.rounds or 2
        budget = self.max_evaluations
        if budget is None:
            b = min(self.bins_log2 or 6, n)
            held = 1024 if self.held is None else int(self.held)
        else:
            minimum = self.minimum_evaluations(n)
            if budget < minimum:
                raise ActSpecError(
                    f"max_evaluations={budget} is below this solver's minimum of {minimum} evaluations at "
                    f"n={n} ({self.groups} groups × {delays} delays × 2^{self.bins_log2 or MIN_BITS} bins "
                    f"+ {MIN_HELD} uniform masks); raise the budget or lower max_degree / groups."
                )
            held = max(MIN_HELD, budget // 8) if self.held is None else max(MIN_HELD, int(self.held))
            held = min(held, budget - (minimum - MIN_HELD))
            room = budget - held
            # bins first: the most one round can afford (collisions fall like 2^-b). A default
            # reserve of B/8 uniform masks yields to them — at small budgets it halved the bins
            # (4 bins per group for 20 terms at B = 792, n = 100) and recall fell to zero.
            room_bins = budget - MIN_HELD if self.held is None else room
            if self.bins_log2 is not None:
                b = self.bins_log2
            else:
                b = MIN_BITS
                while b < min(n, MAX_BITS) and self.groups * delays * (2 << b) <= room_bins:
                    b += 1
            per = self.groups * delays * (1 << b)
            if self.rounds is None:
                rounds = max(1, room // per)
            if per * rounds + MIN_HELD > budget:
                raise ActSpecError(
                    f"max_evaluations={budget} cannot fit {rounds} round(s) of {per} evaluations "
                    f"(b={b}) plus {MIN_HELD} uniform masks; minimum is {per * rounds + MIN_HELD}."
                )
            held = budget - per * rounds  # the rest of the budget goes to the refit
        per = self.groups * delays * (1 << b)
        return {
            "bins_log2": b,
            "rounds": rounds,
            "held": held,
            "per_round": per,
            "total": per * rounds + held,
        }

    # ------------------------------------------------------------------ entry point
    def __call__(self, problem: Problem, *, key: jax.Array | None = None) -> Spectrum:
        """Recover the sparse spectrum of ``problem`` (single output) as a :class:`Spectrum`."""
        started = time.perf_counter()
        if key is None:
            raise ActSpecError("CompressiveSolver samples at random: pass key=jax.random.key(0) (any seed).")
        if problem.output_shape != ():
            raise ActSpecError(
                f"CompressiveSolver explains one function at a time; this problem has outputs of shape "
                f"{problem.output_shape}. Choose a single output (e.g. output='log_prob:7')."
            )
        n = int(problem.n)
        plan = self.plan(n)
        if self.max_evaluations is not None and self.degree_profile:
            raise ActSpecError(
                "degree_profile=True would spend evaluations beyond max_evaluations; leave it unset under a "
                "budget and call actspec_jax.estimate_degree_profile separately if you want the profile."
            )
        profile = self.max_evaluations is None and wants_degree_profile(
            problem, self.degree_profile, self.profile_evaluations, mask_mode=True
        )
        delays, code = self.delays(n)
        b, t = plan["bins_log2"], (self.max_degree or n)
        decode = (lambda bits: bch.decode_syndrome(bits, n, t)) if code == "bch" else (
            lambda bits: tuple(int(i) for i in np.flatnonzero(bits))
        )  # fmt: skip
        # the joint search: every support while affordable, else the matching (compressive.search)
        search = "all" if search_cost(n, t, self.groups, delays.shape[0]) <= MAX_COST else "match"
        found: dict[tuple[int, ...], float] = {}
        masks_all, values_all, round_stats = [], [], []
        for r in range(plan["rounds"]):
            hashes, offsets = draw_groups(jax.random.fold_in(key, r), self.groups, n, b)
            masks = group_masks(hashes, offsets, delays, b)
            values = self._evaluate(problem, masks)
            masks_all.append(masks)
            values_all.append(values)
            bins = group_bins(jnp.asarray(values, jnp.float32), self.groups, delays.shape[0], b)
            subtract(bins, found, n, hashes, offsets, delays)
            var = float(values.var())
            floor = max(self.noise_level * var / (1 << b), 1e-12 * float((values**2).mean()) + 1e-30)
            new, stats = peel(
                bins, n=n, hashes=hashes, offsets=offsets, delays=delays, decode=decode,
                max_degree=t, floor=floor, chase=CHASE_DEPTH if code == "bch" else 0,
                exact_tol=EXACT_TOL * float(np.sqrt((values**2).mean())) if code == "bch" else 0.0,
                search=search,
            )  # fmt: skip
            for subset, coef in new.items():
                found[subset] = found.get(subset, 0.0) + coef
            round_stats.append(
                {"round": r, "new_terms": len(new), "evaluations": int(masks.shape[0]), **stats}
            )
        held_masks = uniform_masks(jax.random.fold_in(key, 10_000), plan["held"], n)
        held_values = self._evaluate(problem, held_masks)
        if self.refit == "held":
            masks, values = held_masks, held_values
        else:
            masks = np.concatenate([np.asarray(m) for m in (*masks_all, held_masks)])
            values = np.concatenate([*values_all, held_values])
        held_rows = np.arange(values.shape[0] - plan["held"], values.shape[0])
        subsets, coef, err, kept_low, keep_z = self._refit(n, masks, values, found, held_rows)
        stages = {"rounds": plan["per_round"] * plan["rounds"], "held": plan["held"]}
        solver_info = {
            "name": "compressive",
            **{k: v for k, v in dataclasses.asdict(self).items() if k != "degree_profile"},
            "plan": plan,
            "code": code,
            "delays": num_delays_of(delays),
            "evaluations": int(plan["total"]),
            "evaluations_by_stage": stages,
            "rounds_run": round_stats,
            "peeled_terms": len([s for s in found if s]),
            "joint_search": search,  # rounds_run[*]['search_capped']: its cap stopped it finding more
            "low_degree_terms_added": kept_low,
            # their coefficients are shrunk (compressive.hybrid); their stderr are the fit's own
            "low_degree_shrinkage": "max(0, 1 - se^2/c^2)" if kept_low else None,
            # the keep rule |c| >= z·se of the added terms, z chosen on held-out uniform rows
            "low_degree_keep": None if keep_z is None else f"|c| >= {keep_z:g} se",
            "key": np.asarray(jax.random.key_data(key)).tolist()
            if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
            else np.asarray(key).tolist(),
            "wall_time_s": time.perf_counter() - started,
            "backend": jax.default_backend(),
        }
        self._report_unexplained(solver_info, n, subsets, coef, held_masks, held_values)
        spectrum = Spectrum.build(
            n,
            subsets,
            np.asarray(coef, np.float64),
            stderr=np.asarray(err, np.float64),
            labels=problem.labels,
            norm_sq=float((held_values**2).mean()) if held_values.size else float((values**2).mean()),
            problem=problem.describe(),
            solver=solver_info,
            output_label=problem.output_labels[0],
            output_index=0,
        )
        if not profile:
            return spectrum
        return attach_degree_profile(spectrum, problem, key, evaluations=self.profile_evaluations)

    def start_passes(self, problem: Problem, *, key: jax.Array | None, passes: int, **options: Any) -> Any:
        """The residual-pass protocol (:class:`~actspec_jax.solvers.residual.ResidualPasses`): the
        first pass and the hooks; budgets and refits in :mod:`~actspec_jax.solvers.compressive.passes`."""
        from actspec_jax.solvers.compressive.passes import start_passes

        return start_passes(self, problem, key=key, passes=passes, **options)

    # ------------------------------------------------------------------ stages
    @staticmethod
    def _report_unexplained(info: dict, n: int, subsets: Any, coef: Any, masks: Any, values: Any) -> None:
        """Record ``explained_share = 1 − mean (f − f̃)² / Var f`` on the uniform masks and, below
        :data:`MIN_EXPLAINED`, an ``unexplained`` diagnostic: the decoder left most of ``f`` unfound
        (too few bins for the terms, or a dense spectrum) — the listed terms may be incomplete."""
        values = np.asarray(values, np.float64)
        var = float(values.var())
        if values.size < 2 or var <= 1e-12 * float((values**2).mean()) + 1e-30:
            return
        fitted = predict(masks, list(subsets), coef, n)
        share = 1.0 - float(((values - fitted) ** 2).mean()) / var
        info["explained_share"] = share
        if share < MIN_EXPLAINED:
            report_diagnostic(
                info,
                "unexplained",
                f"the recovered terms explain only {100 * share:.0f} % of Var f on the solver's uniform "
                "masks, "
                "so terms are likely missing (too few bins for the number of terms, or a dense spectrum).",
                "raise max_evaluations (more bins and rounds), or check the degree profile for a dense tail.",
                stacklevel=4,
            )

    @staticmethod
    def _evaluate(problem: Problem, masks: jax.Array) -> np.ndarray:
        """Values at exactly these masks — no padded rows, so a budget counts real evaluations.

        ``Problem.evaluate`` pads its last chunk to the chunk size (to compile once); here the
        batch is cut into power-of-two pieces (the binary digits of its length, each at most
        the memory budget's chunk), so at most ``log₂`` of the chunk sizes ever compile.
        """
        from actspec_jax.solvers._memory import (
            _evaluate_compiled,
            bytes_per_mask,
            chunk_size_for_budget,
            default_memory_budget,
        )

        count = int(masks.shape[0])
        chunk = chunk_size_for_budget(
            bytes_per_mask(problem.evaluate_unchecked, problem.n),
            default_memory_budget(),
            limit=max(count, 1),
        )
        masks = jnp.asarray(masks)
        parts, start = [], 0
        while start < count:
            size = min(chunk, 1 << int(math.log2(count - start)))
            parts.append(_evaluate_compiled(problem, masks[start : start + size]))
            start += size
        values = np.asarray(jnp.concatenate(parts), np.float64) if parts else np.zeros(0)
        if not np.all(np.isfinite(values)):
            raise NonFiniteOutputError(
                f"the model output is NaN/inf on {int((~np.isfinite(values)).sum())} of {values.size} masks; "
                "check the fill values and the output selector (e.g. log of a zero probability)."
            )
        return values

    def _refit(
        self, n: int, masks: jax.Array, values: np.ndarray, found: dict, held_rows: np.ndarray | None = None
    ) -> tuple:
        """Least squares of ``∅``, the peeled terms and (hybrid) screened low-degree terms, kept by
        a rule chosen on ``held_rows`` and shrunk
        (:func:`~actspec_jax.solvers.compressive.hybrid.hybrid_refit`)."""
        return hybrid_refit(
            masks, values, found, n, singletons=self.singletons, fit=self._fit, held_rows=held_rows
        )

    @staticmethod
    def _fit(
        masks: jax.Array, values: np.ndarray, subsets: list, n: int, stderr: str = "hc1"
    ) -> tuple[np.ndarray, np.ndarray]:
        support = np.zeros((len(subsets), n), bool)
        for row, subset in enumerate(subsets):
            support[row, list(subset)] = True
        coef, err, _ = least_squares(masks, values, support, stderr=stderr)
        return coef, err


def num_delays_of(delays: np.ndarray) -> int:
    """Delays per group, ``d_0 = 0`` included."""
    return int(delays.shape[0])
