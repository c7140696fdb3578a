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

Size: the method's description above, the planner and memory arithmetic that must be stated before
any evaluation, and the call that sequences the stages; the stages themselves live in ``stream``
(masks), ``ledger`` (resumption), ``decode`` (one output) and the decoder modules.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import numbers
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.diagnostics import report_diagnostic
from actspec_jax.errors import ActSpecError, MemoryBudgetError, format_bytes
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.checkpoint import problem_digest
from actspec_jax.solvers.common.memory import (
    available_memory,
    bytes_per_mask,
    chunk_size_for_budget,
    default_memory_budget,
)
from actspec_jax.solvers.common.profile_attach import (
    SOLVER_EVALUATIONS,
    attach_degree_profiles,
    wants_degree_profile,
)
from actspec_jax.solvers.common.settings import Bytes, Devices, check_settings
from actspec_jax.solvers.common.sharding import DeviceSpec, mask_mesh, mesh_size
from actspec_jax.solvers.common.validate import check_key
from actspec_jax.solvers.compressive import bch
from actspec_jax.solvers.compressive.decode import SharedRefit, decode_output
from actspec_jax.solvers.compressive.design import draw_groups
from actspec_jax.solvers.compressive.ledger import QueryLedger
from actspec_jax.solvers.compressive.multiton import Code, unit_decoder
from actspec_jax.solvers.compressive.refit import (
    least_squares,
)
from actspec_jax.solvers.compressive.search import (
    MATCHES,
    MAX_COST,
    MAX_PAIR_HALVES,
    pairs_affordable,
    search_cost,
)
from actspec_jax.solvers.compressive.stream import (
    StageProgress,
    StructuredRows,
    UniformRows,
    _evaluate,
    evaluate_rows,
)
from actspec_jax.spectrum import Spectrum, SpectrumBatch

__all__ = ["CompressiveSolver"]

MIN_BITS, MAX_BITS, MIN_HELD = 2, 16, 16
#: Below this share of Var f explained on its uniform masks the result carries an ``unexplained`` diagnostic.
MIN_EXPLAINED = 0.5
#: Chase depth of the BCH decoding: the 6 least reliable signs of a bin are flipped in all
#: 63 patterns (on 20 planted terms with a 10 % dense tail, depth 4 → 6 raised recall at
#: n = 1000, 2160 evaluations from 0.90 to 0.95; 16 bins per group, 37–41 delays).
CHASE_DEPTH = 6
#: Threads decoding the outputs of a many-output problem side by side (each output's peeling and
#: refit are independent; the results do not depend on the thread count).
DECODE_THREADS = max(1, min(8, os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True, kw_only=True)
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
        A problem with several outputs gets one estimate on one set of masks, and each output's
        spectrum its own profile.
      memory_budget: bytes of working memory per chunk of evaluated masks (default: half of a
        device's free memory, 1 GiB on a host); the solve's estimated peak (:meth:`memory`) must fit
        the available memory, or it is refused before any evaluation.
      devices: devices every chunk of masks is split over — ``None`` (every device JAX sees, rounded
        down to a power of two), a count, a list of devices, or a :class:`jax.sharding.Mesh` with an
        axis ``"masks"`` (as :class:`~actspec_jax.solvers.ExactSolver` takes it). The plan and the
        decoding do not change; values may differ from one device's in float round-off only.
      checkpoint_every_s: with ``checkpoint_path=`` (a call argument, the query ledger), the least
        seconds between two ledger writes while masks are evaluated (``0``: after every chunk); the
        ledger is also written at the end of every stage and when the run is interrupted.
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
    memory_budget: int | None = None
    devices: DeviceSpec = None
    checkpoint_every_s: float = 30.0

    def __post_init__(self) -> None:
        """Validate every setting's type and range up front (:func:`whole_settings`); whole floats
        such as ``1e4`` become ints."""
        for name, value in whole_settings(self, _WHOLE).items():
            object.__setattr__(self, name, value)
        for name, low in _WHOLE.items():
            value = getattr(self, name)
            if value is not None and low is not None and value < low:
                raise ActSpecError(f"CompressiveSolver: {name} must be at least {low}, got {value}.")
            high = _MOST.get(name)
            if value is not None and high is not None and value > high:
                raise ActSpecError(f"CompressiveSolver: {name} must be at most {high:,}, got {value:,}.")
        for name in ("groups", "profile_evaluations"):
            if getattr(self, name) is None:
                raise ActSpecError(f"CompressiveSolver: {name} must be a whole number, got None.")
        level = self.noise_level
        if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 <= float(level) < 1.0:
            raise ActSpecError(
                f"CompressiveSolver: noise_level is the non-sparse share of Var f and must be a number in "
                f"[0, 1), got {level!r}."
            )
        if self.degree_profile not in (None, True, False):
            raise ActSpecError(
                f"CompressiveSolver: degree_profile must be None, True or False, got {self.degree_profile!r}."
            )
        if self.refit not in ("all", "held"):
            raise ActSpecError(f"CompressiveSolver: refit must be 'all' or 'held', got {self.refit!r}.")
        if self.singletons not in ("auto", "always", "never"):
            raise ActSpecError(
                f"CompressiveSolver: singletons must be 'auto', 'always' or 'never', got {self.singletons!r}."
            )
        check_checkpoint_every(self.checkpoint_every_s)
        check_settings(self, {"devices": Devices(), "memory_budget": Bytes()}, "CompressiveSolver")

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

    def memory(self, n: int) -> dict[str, int]:
        """Estimated peak bytes of a solve at ``n`` units, by part, before anything is evaluated.

        ``design``: every round's hashes, offsets, delays and element tables (kept for the refit),
        ``O(n·(P + C·b))``; ``evaluation``: one chunk of masks and the model's work on it (at most
        the memory budget's chunk); ``search``: the joint search's keys (linear in ``n``, pairs of
        units only for small ``n``); ``refit``: the masks and Gram of the low-degree refit when
        ``n ≤ N/8`` (so ``N·n ≤ N²/8``), else the peeled support's characters (``N·K``);
        ``peak``: ``design + values + max(evaluation, search, refit)``.
        """
        plan = self.plan(n)
        delays, _ = self.delays(n)
        width, groups, b, rounds = delays.shape[0], self.groups, plan["bins_log2"], plan["rounds"]
        total = plan["total"]
        per_round = n * (groups * (b + 1 + 8 + 1 + (width + 7) // 8) + 2 * width)
        design = rounds * per_round
        if self.max_degree is not None and delays.shape[0] > 1 and n > 1:
            design += 3 * (1 << bch.field_bits(n)) * 4 if bch.field_bits(n) * self.max_degree < n else 0
        values = 3 * total * 8
        evaluation = self.memory_budget if self.memory_budget is not None else default_memory_budget()
        halves = n + 1 if not pairs_affordable(n, True) else n + 1 + n * (n - 1) // 2
        search = 80 * min(halves, MAX_PAIR_HALVES + n + 1) + 64 * MATCHES
        dense = self.singletons != "never" and (self.singletons == "always" or total >= 8 * (n + 1))
        if dense:
            refit = 3 * total * n * 4 + 4 * (total // 8 + 1) ** 2 * 8 + n * n * 4
        else:
            support = min(rounds * groups << b, 1 << 14) + 1
            refit = 2 * total * support * 8
        return {
            "design": int(design),
            "values": int(values),
            "evaluation": int(evaluation),
            "search": int(search),
            "refit": int(refit),
            "peak": int(design + values + max(evaluation, search, refit)),
        }

    # ------------------------------------------------------------------ entry point
    def __call__(
        self,
        problem: Problem,
        *,
        key: jax.Array | None = None,
        progress: Callable[..., None] | bool | None = None,
        checkpoint_path: str | os.PathLike | None = None,
    ) -> Spectrum | SpectrumBatch:
        """Recover the sparse spectrum of ``problem`` as a :class:`Spectrum` — or, for a problem with
        ``K`` outputs (``output_shape != ()``), a :class:`SpectrumBatch` of ``K`` spectra decoded from
        **one** evaluation of the plan (the design does not depend on the values).

        ``progress``: ``True`` for progress bars (tqdm: the evaluations, then the decoding), or a
        callable ``progress(done, total)`` called as masks are evaluated; if it takes a third argument
        (``stage``) it is called per stage as ``progress(done, total, stage)`` with ``stage`` in
        ``'evaluate'`` (masks), ``'decode'`` (rounds × outputs), ``'refit'`` (outputs), counts
        monotone within a stage.

        ``checkpoint_path``: a query ledger (:mod:`~actspec_jax.solvers.compressive.ledger`): every
        evaluated piece of the plan is kept there; a rerun with the same problem, key and design
        settings evaluates only what the ledger lacks — after a kill it returns the uninterrupted
        run's spectrum; with a larger ``max_evaluations`` it re-uses every mask of the smaller plan.
        """
        started = time.perf_counter()
        if key is None:
            raise ActSpecError("CompressiveSolver samples at random: pass key=jax.random.key(0) (any seed).")
        check_key(key, "CompressiveSolver")
        if not isinstance(problem, Problem):
            raise ActSpecError(
                f"CompressiveSolver needs a Problem, got {type(problem).__name__}: wrap a function of masks "
                "as asj.FunctionProblem(f, n), or build one with asj.masked_problem(cut, inputs, output=...)."
            )
        check_ledger_path(checkpoint_path)
        n = int(problem.n)
        plan = self.plan(n)
        if self.max_evaluations is not None and self.degree_profile:
            raise ActSpecError(
                "degree_profile=True would spend evaluations beyond max_evaluations; leave it unset under a "
                "budget and call actspec_jax.estimate_degree_profile separately if you want the profile."
            )
        check_checkpoint_every(self.checkpoint_every_s)
        memory = self._check_memory(n)
        multi = problem.output_shape != ()
        outputs = int(np.prod(problem.output_shape)) if multi else 1
        profile = self.max_evaluations is None and wants_degree_profile(
            problem, self.degree_profile, self.profile_evaluations, mask_mode=True, many_outputs=True
        )
        mesh = resolve_mask_mesh(self.devices)
        delays, code = self.delays(n)
        t = self.max_degree or n
        decode = bch.Decoder(n, t) if code == "bch" else unit_decoder
        syncs: dict[str, int] = {"evaluate": 0, "bins": 0, "refit": 0}
        ledger = QueryLedger(
            checkpoint_path,
            {} if checkpoint_path is None else self._ledger_identity(problem, key, n),
            outputs=outputs,
            every_s=self.checkpoint_every_s,
        )
        stages = self._stages(key, n, plan, delays)
        bar = StageProgress(progress, plan["total"], rounds=plan["rounds"] * outputs, outputs=outputs)
        try:
            values = self._evaluate_plan(problem, stages, ledger, bar, mesh, syncs, outputs)
            chase = CHASE_DEPTH if code == "bch" else 0
            codes = [
                Code(n, rows.hashes, rows.offsets, rows.delays, decode, t, chase)
                for name, rows in stages
                if name != "held"
            ]
            shared = SharedRefit(self, codes, stages[-1][1], n)

            def one(k: int) -> tuple[Spectrum, dict[str, int]]:
                own = {"bins": 0, "refit": 0}
                spectrum = decode_output(
                    self, problem, k, [values[name][:, k] for name, _ in stages], codes, shared, plan, code,
                    own, bar,
                )  # fmt: skip
                return spectrum, own

            workers = min(outputs, DECODE_THREADS)
            if workers > 1:  # outputs decode independently; XLA and NumPy release the GIL
                with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                    decoded = list(pool.map(one, range(outputs)))
            else:
                decoded = [one(k) for k in range(outputs)]
            spectra = [spectrum for spectrum, _ in decoded]
            for _, own in decoded:
                syncs["bins"] += own["bins"]
                syncs["refit"] += own["refit"]
        finally:
            bar.close()
        info = {
            "name": "compressive",
            **{k: v for k, v in dataclasses.asdict(self).items() if k not in ("degree_profile", "devices")},
            "devices": 1 if mesh is None else mesh_size(mesh),
            "plan": plan,
            "memory": memory,
            "code": code,
            "delays": num_delays_of(delays),
            "evaluations": int(plan["total"]),
            "evaluations_by_stage": {"rounds": plan["per_round"] * plan["rounds"], "held": plan["held"]},
            "outputs_decoded": outputs,
            "ledger": ledger.summary({name: rows.count for name, rows in stages}),
            "joint_search": self._search_mode(n, delays),
            "key": np.asarray(jax.random.key_data(key)).tolist()
            if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
            else np.asarray(key).tolist(),
            "backend": jax.default_backend(),
        }
        host_syncs = {**syncs, "decode": getattr(decode, "calls", 0)}
        host_syncs["total"] = sum(host_syncs.values())
        wall = time.perf_counter() - started
        spectra = [
            dataclasses.replace(s, solver={**info, **s.solver, "host_syncs": host_syncs, "wall_time_s": wall})
            for s in spectra
        ]
        if profile:  # one estimate for every output (its masks counted apart)
            spectra = attach_degree_profiles(spectra, problem, key, evaluations=self.profile_evaluations)
        if multi:
            return SpectrumBatch(spectra=tuple(spectra), output_shape=tuple(problem.output_shape))
        return spectra[0]

    def start_passes(self, problem: Problem, *, key: jax.Array | None, passes: int, **options: Any) -> Any:
        """The residual-pass protocol (:class:`~actspec_jax.solvers.common.residual.ResidualPasses`): the
        first pass and the hooks; budgets and refits in :mod:`~actspec_jax.solvers.compressive.passes`."""
        from actspec_jax.solvers.compressive.passes import start_passes

        return start_passes(self, problem, key=key, passes=passes, **options)

    # ------------------------------------------------------------------ stages
    def _search_mode(self, n: int, delays: np.ndarray) -> str:
        """The joint search: every support while affordable, else the matching (:mod:`~.search`)."""
        t = self.max_degree or n
        return "all" if search_cost(n, t, self.groups, delays.shape[0]) <= MAX_COST else "match"

    def _ledger_identity(self, problem: Problem, key: jax.Array, n: int) -> dict[str, Any]:
        """What the plan's values depend on (not the budget: plans are nested, see :mod:`~.ledger`)."""
        data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        return {
            "problem": problem_digest(problem),
            "key": np.asarray(data).tolist(),
            "n": n,
            "groups": self.groups,
            "max_degree": self.max_degree,
            "output_shape": list(problem.output_shape),
        }

    def _stages(self, key: jax.Array, n: int, plan: dict[str, int], delays: np.ndarray) -> list:
        """``[(name, rows)]``: every round's :class:`StructuredRows`, then the uniform ``held`` rows."""
        stages: list = []
        for r in range(plan["rounds"]):
            hashes, offsets = draw_groups(jax.random.fold_in(key, r), self.groups, n, plan["bins_log2"])
            stages.append((f"round {r}", StructuredRows(hashes, offsets, delays)))
        stages.append(("held", UniformRows(jax.random.fold_in(key, 10_000), plan["held"], n)))
        return stages

    def _evaluate_plan(
        self,
        problem: Problem,
        stages: list,
        ledger: QueryLedger,
        bar: StageProgress,
        mesh: Any,
        syncs: dict[str, int],
        outputs: int,
    ) -> dict[str, np.ndarray]:
        """``{stage: float64[rows, K]}`` in each stage's logical row order: the ledger's prefix, then
        the rest evaluated chunk by chunk (recorded in the ledger as it goes; flushed on the way out,
        interrupted or not)."""
        chunk = self._chunk(problem)
        ledger.verify(stages, lambda masks: _evaluate(problem, masks))
        out = {}
        try:
            for name, rows in stages:
                done = ledger.prefix(name, rows.count)
                bar.evaluated(done.shape[0])
                record = None if ledger.path is None else functools.partial(ledger.record, name)
                new = evaluate_rows(
                    problem, rows, chunk=chunk, start=done.shape[0], progress=bar.tick, syncs=syncs,
                    mesh=mesh, on_piece=record, outputs=outputs,
                )  # fmt: skip
                ledger.flush()
                out[name] = rows.logical(np.concatenate([done, new]) if done.shape[0] else new)
        finally:
            ledger.flush()
        return out

    def _check_memory(self, n: int) -> dict[str, int]:
        """:meth:`memory` at ``n``; refuses (before any evaluation) when its peak exceeds the host's
        available memory, naming the figure, its largest part and the fix."""
        memory = self.memory(n)
        available = available_memory()
        if available is not None and memory["peak"] > available:
            part = max(("design", "evaluation", "search", "refit"), key=lambda k: memory[k])
            raise MemoryBudgetError(
                f"CompressiveSolver at n={n:,} with {self.plan(n)['total']:,} evaluations needs about "
                f"{format_bytes(memory['peak'])} (most of it {part}: {format_bytes(memory[part])}), but "
                f"{format_bytes(available)} is available. Lower max_evaluations or max_degree, pass a "
                "smaller memory_budget (bytes per evaluation chunk), or mask a site with fewer units."
            )
        return memory

    def _chunk(self, problem: Problem) -> int:
        """Masks per evaluation chunk: a power of two within the memory budget (masks included)."""
        per_mask = bytes_per_mask(problem.evaluate_unchecked, problem.n)
        budget = self.memory_budget if self.memory_budget is not None else default_memory_budget()
        return chunk_size_for_budget(per_mask, int(budget), limit=1 << 16)

    def _dense_refit(self, n: int, count: int, found: dict) -> bool:
        """Whether the refit adds low-degree columns (:func:`~.hybrid.candidate_fit`'s first test) and
        so needs the masks themselves; otherwise only the peeled support is fitted, from its
        characters (memory ``N·K``, not ``N·n``)."""
        if self.singletons == "never":
            return False
        if self.singletons == "always":
            return True
        peeled = len({s for s in found if s})
        missing = n - sum(1 for s in found if len(s) == 1)
        return count >= 8 * (1 + peeled + missing)

    @staticmethod
    def _report_unexplained(
        info: dict, fitted: np.ndarray, values: np.ndarray, *, stacklevel: int = 4, output: str | None = None
    ) -> None:
        """Record ``explained_share = 1 − mean (f − f̃)² / Var f`` on the uniform masks and, below
        :data:`MIN_EXPLAINED`, an ``unexplained`` diagnostic: the decoder left most of ``f`` unfound
        (too few bins for the terms, or a dense spectrum) — the listed terms may be incomplete.
        ``output``: the output's label when the problem has several (the warning names it)."""
        values = np.asarray(values, np.float64)
        var = float(values.var())
        if values.size < 2 or var <= 1e-12 * float((values**2).mean()) + 1e-30:
            return
        share = 1.0 - float(((values - np.asarray(fitted, np.float64)) ** 2).mean()) / var
        info["explained_share"] = share
        if share < MIN_EXPLAINED:
            report_diagnostic(
                info,
                "unexplained",
                ("" if output is None else f"output {output}: ")
                + f"the recovered terms explain only {100 * share:.0f} % of Var f on the solver's uniform "
                "masks, "
                "so terms are likely missing (too few bins for the number of terms, or a dense spectrum).",
                "raise max_evaluations (more bins and rounds), or check the degree profile for a dense tail.",
                stacklevel=stacklevel,
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


#: Whole-number settings and their least value (``max_degree``: checked against ``n`` by the plan).
_WHOLE: dict[str, int | None] = {
    "max_degree": None,
    "max_evaluations": 1,
    "bins_log2": MIN_BITS,
    "groups": 1,
    "rounds": 1,
    "held": 0,
    "profile_evaluations": 1,
}


#: Sanity bounds, far above any useful value (a plan beyond them would not fit any memory).
_MOST: dict[str, int] = {"groups": 1 << 10, "rounds": 1 << 16, "held": 1 << 28, "bins_log2": MAX_BITS}


def whole_settings(obj: Any, names: Any) -> dict[str, int | None]:
    """``{name: int value or None}`` for each named setting of ``obj``; a setting that is not
    ``None`` or a whole number (``1e4`` is; ``2.5``, ``True``, ``'8'``, NaN are not) raises
    :class:`ActSpecError` naming it."""
    out = {}
    for name in names:
        value = getattr(obj, name)
        if value is None:
            out[name] = None
            continue
        whole = (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
            and float(value).is_integer()
        )
        if not whole:
            raise ActSpecError(f"CompressiveSolver: {name} must be a whole number, got {value!r}.")
        out[name] = int(value)
    return out


def resolve_mask_mesh(devices: DeviceSpec) -> Any:
    """The mask mesh of ``devices`` (:func:`~.sharding.mask_mesh`); ``None`` for one device."""
    mesh = mask_mesh(devices)
    return None if mesh_size(mesh) == 1 else mesh


def check_ledger_path(path: Any) -> None:
    """``None`` or a file path (``str``/``os.PathLike``) that is not a folder."""
    if path is None:
        return
    if not isinstance(path, str | os.PathLike):
        raise ActSpecError(f"checkpoint_path must be a file path (str or pathlib.Path), got {path!r}.")
    if os.path.isdir(path):
        raise ActSpecError(
            f"checkpoint_path {os.fspath(path)!r} is a folder; name a file in it, e.g. "
            f"{os.path.join(os.fspath(path), 'ledger.npz')!r}."
        )


def check_checkpoint_every(seconds: Any) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ActSpecError(f"checkpoint_every_s must be a number of seconds >= 0, got {seconds!r}.")


def num_delays_of(delays: np.ndarray) -> int:
    """Delays per group, ``d_0 = 0`` included."""
    return int(delays.shape[0])
