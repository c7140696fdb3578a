"""The driver of one Goldreich–Levin search (private): pre-passes, levels, leaves.

:class:`SearchRun` holds what one call of :class:`~actspec_jax.GoldreichLevin` needs besides
its frozen settings — the problem, the key, the estimator bound to the problem
(:mod:`actspec_jax.solvers.gl.estimators`), chunk sizes, device mesh, checkpoint path — and runs
the norm pass, the influence pre-pass and prescreen (:meth:`SearchRun.prepare`), one level at a
time (:meth:`SearchRun._level`, resumable from a checkpoint) and the leaves
(:func:`~actspec_jax.solvers.gl.leaves.leaf_stage`). The search never asks which estimator it
runs: draws, patterns, hybrid and design evaluations, design sizes and costs are the
estimator's. The algorithm is described in :mod:`actspec_jax.solvers.gl.search`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import NonFiniteOutputError
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.checkpoint import fingerprint, problem_digest
from actspec_jax.solvers.common.memory import bytes_per_mask, default_block_size, default_memory_budget
from actspec_jax.solvers.common.sharding import mask_mesh, mesh_size
from actspec_jax.solvers.gl import kernels as K
from actspec_jax.solvers.gl.diagnostics import report_full_beam
from actspec_jax.solvers.gl.estimators import Estimator
from actspec_jax.solvers.gl.leaves import LeafFit, leaf_stage
from actspec_jax.solvers.gl.redundancy import patterns_from_problem
from actspec_jax.solvers.gl.settings import (
    LEVEL_STATS,
    MAX_RECORDS,
    TAG_INFLUENCE,
    TAG_LEVELS,
    TAG_NORM,
    TAG_POSTCHECK,
    Progress,
    key_data,
    resolve_constraints,
    wants_info,
)
from actspec_jax.solvers.gl.state import SearchSetup, SearchState, load_checkpoint, save_checkpoint
from actspec_jax.spectrum import Spectrum

if TYPE_CHECKING:
    from actspec_jax.solvers.gl.search import GoldreichLevin

__all__ = ["SearchRun"]


class SearchRun:
    """One call of the solver: pre-passes, levels, leaves (kept out of the frozen config).

    ``estimator`` (default: the solver's) is kept bound to the problem (:meth:`Estimator.bind`);
    ``patterns`` is its per-problem data (:meth:`Estimator.data`), handed to the kernels.
    """

    def __init__(
        self,
        solver: GoldreichLevin,
        cfg: dict[str, Any],
        problem: Problem,
        key: jax.Array,
        progress: Progress | None,
        checkpoint_path: str | Path | None,
        estimator: Estimator | None = None,
    ) -> None:
        if estimator is None:
            estimator = solver.resolved_estimator()
        self.solver, self.cfg, self.problem = solver, cfg, problem
        self.key = key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)
        self.progress = progress
        self.info = progress is not None and wants_info(progress)
        self.pass_index = 1
        self.path = None if checkpoint_path is None else Path(checkpoint_path)
        self.n = int(problem.n)
        self.constraints = {c.stage: c for c in resolve_constraints(solver.redundancy, estimator)}
        self.estimator = estimator.bind(problem)
        self.patterns = self.estimator.data(problem, cfg["binarize_threshold"])
        self.beam, self.depth = cfg["beam"], min(cfg["max_degree"], self.n)
        self.b, self.r = cfg["block_size"], cfg["draws_per_z"]
        self.pool = 2 * self.beam if "postcheck" in self.constraints else self.beam
        self.order_length = -(-self.n // self.b) * self.b
        mesh = mask_mesh(solver.devices)
        self.mesh = None if mesh_size(mesh) == 1 else mesh
        self._chunks()

    # ------------------------------------------------------------------ sizes
    def _chunks(self) -> None:
        """Chunk sizes (they change speed and memory, never the draws).

        Problem evaluations run in chunks whose intermediates fit the memory budget, and on CPU
        in cache-sized blocks (:func:`~actspec_jax.solvers.common.memory.default_block_size`), which
        keeps the masked activations out of DRAM.
        """
        budget = self.solver.memory_budget or min(default_memory_budget(), 512 << 20)
        per_mask = bytes_per_mask(self.problem.evaluate_unchecked, self.n)
        per_eval = self.estimator.bytes_per_evaluation(self.problem, per_mask, self.n)
        block = default_block_size(per_eval)
        evals = max(1, min(budget // per_eval, block or budget))
        chars = 4 * (self.beam * self.depth + self.n + self.beam)
        m = self.cfg["num_samples"]
        self.c_eval = int(max(1, min(m, evals // self.r)))
        self.c_stats = int(max(1, min(m, budget // (self.r * chars + 12 * self.beam * (1 << self.b)))))
        total = self.estimator.design_size(self.cfg["leaf_samples"])
        self.design_total = total
        self.c_design = int(max(1, min(total, evals)))
        self.c_chars = int(max(1, min(total, budget // chars)))
        self.c_influence = int(max(1, min(self.n, evals)))

    def chunk_sizes(self) -> list[int]:
        return [self.c_eval, self.c_stats, self.c_design, self.c_chars, self.c_influence]

    def design_draws(self, tag: int) -> jax.Array:
        return self.estimator.design_draws(self._sub(tag), self.design_total, self.n)

    def fingerprint(self) -> str:
        """Digest of the problem (description and every array it holds), settings and key.

        Resuming from a checkpoint with another fingerprint would splice two searches.
        """
        doc = {
            "settings": self.cfg,
            "problem": problem_digest(self.problem),
            "n": self.n,
            "key": key_data(self.key).tolist(),
        }
        return fingerprint(doc)

    def _sub(self, tag: int) -> jax.Array:
        return jax.random.fold_in(self.key, tag)

    # ------------------------------------------------------------------ pre-passes
    def prepare(self) -> tuple[SearchSetup, dict[str, Any]]:
        """Norm pass, order (influence pre-pass, pruning), prescreen → setup and metadata."""
        cfg, n = self.cfg, self.n
        meta: dict[str, Any] = {"evaluations": {"norm": 0, "influence": 0, "levels": 0, "leaves": 0}}
        values = self._design_values(self.design_draws(TAG_NORM))
        meta["evaluations"]["norm"] = self.estimator.design_cost(int(values.shape[0]))
        mean, second = float(values.mean()), float((values * values).mean())
        var = max(second - mean * mean, 0.0)
        scale = {"relative": math.sqrt(second), "centered": math.sqrt(var), "absolute": 1.0}[cfg["tau_mode"]]
        tau_abs = cfg["tau"] * scale
        constant = var <= 1e-12 * max(second, 1e-30)  # every sampled value equal: nothing to search
        if tau_abs <= 0:
            tau_abs = cfg["tau"]  # only reached for a constant function, whose search is skipped
        center = mean if cfg["center"] else 0.0
        candidates = np.full(n, not constant)
        removed: list[dict[str, Any]] = []
        influence = np.zeros(n, np.float32)
        pruned = 0
        if cfg["order"] == "influence" and not constant:
            out = K.influence(
                self.problem,
                self._sub(TAG_INFLUENCE),
                samples=cfg["influence_samples"],
                c=self.c_influence,
                mesh=self.mesh,
            )
            if float(out["bad"]) > 0:
                raise NonFiniteOutputError(
                    "the model output is NaN/inf on some masks of the influence pre-pass; check the fill "
                    "values and the output selector (e.g. log of a zero probability)."
                )
            influence = np.asarray(out["mean"], np.float32)
            meta["evaluations"]["influence"] = cfg["influence_samples"] * (n + 1)
            if cfg["prune"]:
                cut = tau_abs**2 / 8.0
                candidates &= influence >= cut
                pruned = int(n - candidates.sum())
        if "prescreen" in self.constraints:
            keep, records = self.constraints["prescreen"].apply(
                patterns_from_problem(self.problem, cfg["binarize_threshold"]), candidates
            )
            candidates, removed = keep, records
        if isinstance(cfg["order"], list):
            sequence = [i for i in cfg["order"] if candidates[i]]
        elif cfg["order"] == "influence":
            sequence = [int(i) for i in np.argsort(-influence, kind="stable") if candidates[i]]
        else:
            sequence = [int(i) for i in np.flatnonzero(candidates)]
        levels = -(-len(sequence) // self.b)
        order = np.full(self.order_length, n, np.int32)  # fixed length: shapes never depend on it
        order[: len(sequence)] = sequence
        rank = np.full(n, self.order_length, np.int32)
        rank[sequence] = np.arange(len(sequence), dtype=np.int32)
        setup = SearchSetup(
            order=order,
            rank=rank,
            influence=influence,
            scalars=np.asarray([center, mean, second, tau_abs], np.float64),
        )
        meta.update(
            levels_total=levels,
            constant_function=bool(constant),
            searched=len(sequence),
            pruned=pruned,
            removed=removed,
            removed_count=len(removed),
            stats={name: [] for name in LEVEL_STATS},
            chunks=self.chunk_sizes(),
            wall_time_s=0.0,
        )
        return setup, meta

    def _design_values(self, draws: jax.Array) -> np.ndarray:
        return self._checked(
            K.evaluate_design(self.problem, draws, estimator=self.estimator, c=self.c_design, mesh=self.mesh)
        )

    def _checked(self, values: jax.Array) -> np.ndarray:
        values = np.asarray(values, np.float64)
        if not np.all(np.isfinite(values)):
            where = self.estimator.design_label
            bad = int((~np.isfinite(values)).sum())
            raise NonFiniteOutputError(
                f"the model output is NaN/inf on {bad} of {values.size} {where}; check the fill values, "
                "the inputs and the output selector (e.g. log of a zero probability)."
            )
        return values

    def initial_state(self) -> SearchState:
        members = np.full((self.beam, self.depth), self.n, np.int32)
        valid = np.zeros(self.beam, bool)
        valid[0] = True  # the root bucket (0, ∅)
        return SearchState(
            level=np.asarray(0, np.int32),
            members=members,
            degree=np.zeros(self.beam, np.int32),
            valid=valid,
            weights=np.zeros(self.beam, np.float32),
            stderr=np.zeros(self.beam, np.float32),
            key=key_data(self.key).astype(np.uint32),
        )

    def shapes(self, meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Expected checkpoint array shapes (and a sanity check of its level count)."""
        if not 0 <= int(meta["levels_total"]) <= self.order_length // self.b:
            raise ValueError(f"levels_total={meta['levels_total']} is impossible for n={self.n}")
        return {
            "state_members": (self.beam, self.depth),
            "state_valid": (self.beam,),
            "state_weights": (self.beam,),
            "state_degree": (self.beam,),
            "setup_rank": (self.n,),
            "setup_order": (self.order_length,),
            "setup_scalars": (4,),
        }

    # ------------------------------------------------------------------ the search
    def execute(self, started: float) -> Spectrum:
        # Only a checkpoint needs the fingerprint (it hashes every array of the problem).
        fingerprint = None if self.path is None else self.fingerprint()
        resumed_from = None
        if self.path is not None and self.path.exists():
            state, setup, meta = self._load(fingerprint)
            resumed_from = int(state.level)
            (self.c_eval, self.c_stats, self.c_design, self.c_chars, self.c_influence) = meta["chunks"]
        else:
            setup, meta = self.prepare()
            state = self.initial_state()
            if self.path is not None:
                meta["fingerprint"] = fingerprint
                save_checkpoint(self.path, state, setup, meta)
        prior_wall = float(meta.get("wall_time_s", 0.0))
        call_start = started
        levels = int(meta["levels_total"])
        post_bits = None
        if "postcheck" in self.constraints:
            post_bits = self.constraints["postcheck"].bits(
                patterns_from_problem(self.problem, self.cfg["binarize_threshold"]), self._sub(TAG_POSTCHECK)
            )
        while int(state.level) < levels:
            level_start = time.perf_counter()
            state, record, removals = self._level(state, setup, post_bits)
            for name, value in record.items():
                meta["stats"].setdefault(name, []).append(value)
            meta["stats"].setdefault("seconds", []).append(time.perf_counter() - level_start)
            meta["evaluations"]["levels"] += record["evaluations"]
            meta["removed_count"] += len(removals)
            room = MAX_RECORDS - len(meta["removed"])
            meta["removed"].extend(removals[: max(room, 0)])
            if self.path is not None:
                meta["wall_time_s"] = prior_wall + (time.perf_counter() - call_start)
                save_checkpoint(self.path, state, setup, meta)
            if self.progress is not None:
                if self.info:
                    self.progress(int(state.level), levels, info={**record, "pass": self.pass_index})
                else:
                    self.progress(int(state.level), levels)
        return self._leaves(state, setup, meta, prior_wall, call_start, resumed_from)

    # The leaves (a module function, bound as a method so a subclass such as the batched
    # driver can replace it, and so the warnings' stack depth is the one leaf_stage expects).
    _leaves = leaf_stage

    def _report_full_beam(self, solver_info: dict[str, Any], stats: dict[str, list]) -> None:
        """:func:`~actspec_jax.solvers.gl.diagnostics.report_full_beam` for this run's beam and pass."""
        report_full_beam(solver_info, stats, self.beam, self.pass_index)

    def fit_subsets(
        self, subsets: Sequence[tuple[int, ...]], *, tag: int
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Least-squares coefficients and sandwich errors of ``subsets`` (``∅`` first) on a
        fresh design of ``leaf_samples`` uniform masks; also returns the evaluations used."""
        depth = max([self.depth, *(len(s) for s in subsets)])
        members = np.full((len(subsets), depth), self.n, np.int32)
        for row, subset in enumerate(subsets):
            members[row, : len(subset)] = subset
        draws = self.design_draws(tag)
        values_dev = K.evaluate_design(
            self.problem, draws, estimator=self.estimator, c=self.c_design, mesh=self.mesh
        )
        values = self._checked(values_dev)
        fit = LeafFit(self, values_dev, values, draws, jnp.asarray(members))
        coef, err = fit(np.arange(len(subsets)), True)
        return coef, err, int(values.shape[0])

    def _load(self, fingerprint: str) -> tuple[SearchState, SearchSetup, dict[str, Any]]:
        return load_checkpoint(self.path, fingerprint=fingerprint, shapes=self.shapes)

    def _level(
        self, state: SearchState, setup: SearchSetup, post_bits: jax.Array | None
    ) -> tuple[SearchState, dict[str, Any], list[dict[str, Any]]]:
        cfg = self.cfg
        level = int(state.level)
        level_key = jax.random.fold_in(self._sub(TAG_LEVELS), level)
        center, _, _, tau_abs = (float(v) for v in setup.scalars)
        threshold = jnp.float32(tau_abs**2 / 2.0)
        members = jnp.asarray(state.members)
        order, rank = jnp.asarray(setup.order), jnp.asarray(setup.rank)
        totals = None
        used = 0
        rounds = 0
        while True:
            draws = K.draw(
                jax.random.fold_in(level_key, rounds),
                estimator=self.estimator,
                shape=(cfg["num_samples"], self.r + 1),
                n=self.n,
            )
            values = K.evaluate_round(
                self.problem,
                draws,
                jnp.int32(level),
                rank,
                estimator=self.estimator,
                c=self.c_eval,
                b=self.b,
                mesh=self.mesh,
            )
            stats = K.child_stats(
                values,
                draws,
                self.patterns,
                members,
                jnp.int32(level),
                order,
                jnp.float32(center),
                estimator=self.estimator,
                c=self.c_stats,
                b=self.b,
                n=self.n,
            )
            if totals is None:
                totals = stats
            else:
                totals = {
                    k: jnp.maximum(totals[k], v) if k == "fmax" else totals[k] + v for k, v in stats.items()
                }
            used += cfg["num_samples"]
            rounds += 1
            if float(stats["bad"]) > 0:
                raise NonFiniteOutputError(
                    f"the model output is NaN/inf on some masks at level {level} of the search; check the "
                    "fill values and the output selector (e.g. log of a zero probability)."
                )
            selected = K.select_children(
                totals,
                jnp.float32(used),
                members,
                jnp.asarray(state.degree),
                jnp.asarray(state.valid),
                jnp.int32(level),
                order,
                threshold,
                jnp.float32(1.0 - cfg["confidence"]),
                pool=self.pool,
                b=self.b,
                r=self.r,
                n=self.n,
            )
            if not cfg["adaptive"] or int(selected["undecided"]) == 0 or used >= cfg["max_samples"]:
                break
        fields = ("members", "degree", "valid", "weights", "stderr")
        counters = ("children", "above", "degree_dropped", "undecided", "max_weight")
        fetch: dict[str, Any] = {k: selected[k] for k in fields + counters}
        check = self.constraints.get("postcheck")
        if post_bits is not None:
            trimmed = K.postcheck_trim(
                post_bits,
                selected,
                jnp.float32(check.delta),
                beam=self.beam,
                checked=self.beam if self.b == 1 else self.pool,
                n=self.n,
            )
            fetch.update({k: trimmed[k] for k in fields})
            fetch.update(
                rejected=trimmed["rejected"],
                unchecked=trimmed["unchecked"],
                statistic=trimmed["statistic"],
                candidates=selected["members"],
                added=selected["added"],
                candidate_weights=selected["weights"],
            )
        host = jax.device_get(fetch)  # one transfer per level
        removals: list[dict[str, Any]] = []
        rejected = unchecked = 0
        if post_bits is not None:
            unchecked = int(host["unchecked"])
            rejected = int(host["rejected"].sum())
            for row in np.flatnonzero(host["rejected"]):
                subset = sorted(int(i) for i in host["candidates"][row] if i != self.n)
                new = [int(i) for i in host["added"][row] if i != self.n]
                stat = float(host["statistic"][row])
                removals.append(
                    {
                        "constraint": "postcheck",
                        "kind": "subset",
                        "subset": subset,
                        "neurons": new,
                        "level": level,
                        "weight": float(host["candidate_weights"][row]),
                        "reason": (
                            f"new neuron(s) {new} predictable from the other members: pair agreement "
                            f"{stat:.3f} > δ = {check.delta}"
                        ),
                        "statistic": stat,
                        "threshold": float(check.delta),
                    }
                )
        valid = np.asarray(host["valid"])[: self.beam]
        weights = np.asarray(host["weights"])[: self.beam].astype(np.float32)
        new_state = SearchState(
            level=np.asarray(level + 1, np.int32),
            members=np.asarray(host["members"])[: self.beam].astype(np.int32),
            degree=np.asarray(host["degree"])[: self.beam].astype(np.int32),
            valid=valid,
            weights=weights,
            stderr=np.asarray(host["stderr"])[: self.beam].astype(np.float32),
            key=state.key,
        )
        kept = int(valid.sum())
        record = {
            "level": level,
            "prefix": min((level + 1) * self.b, int((np.asarray(setup.order) != self.n).sum())),
            "live_in": int(np.asarray(state.valid).sum()),
            "children": int(host["children"]),
            "above_threshold": int(host["above"]),
            "kept": kept,
            "rejected_postcheck": rejected,
            "unchecked_postcheck": unchecked,
            "degree_dropped": int(host["degree_dropped"]),
            "undecided": int(host["undecided"]),
            "samples": used,
            "rounds": rounds,
            "evaluations": used * self.r,
            "max_weight": float(host["max_weight"]),
            "min_kept_weight": float(weights[valid].min()) if kept else None,
        }
        return new_state, record, removals
