"""Many outputs in one Goldreich–Levin search (mask mode; private driver).

Size: ~550 lines because it mirrors the single-output driver level by level (norm, influence,
levels, leaves, checkpoint) with an output axis; splitting it would separate each stage from
the single-output stage it must match.

A problem with ``output_shape != ()`` (every class's log-probability, one function per
input, …) is ``K = prod(output_shape)`` functions of the same masks. Searching them one at a
time evaluates the model ``K`` times on ``K`` different sets of masks; almost all of a
search's cost is those evaluations (the model's forward pass is the same whichever output is
read), so the batched search evaluates every mask **once** for all outputs and runs ``K``
searches on the shared values.

**What is shared.** The random draws (the same keys and tags as a single-output search: the
norm design, the influence points and flips, each level's ``m × (r + 1)`` words, the leaf and
refit designs), the coordinate order, the number of levels, and each level's
hybrid masks and their evaluation (``float32[m·r, K]`` in one batched call). Evaluations are
counted once (``solver['evaluations']`` is the shared total, the same in every output's
spectrum, with ``solver['evaluations_shared'] = True``).

**What each output keeps.** Its own centring constant and norm (from the shared norm design),
its own absolute threshold ``τ_k`` (``tau_mode`` applied to its own ``E[f_k²]`` / ``std f_k``),
its own beam of live buckets and their weights, its own leaf fit on the shared leaf design,
its own residual passes (an output whose pass finds nothing new stops refitting, as a single
search would stop) and its own diagnostics (``beam_full``, ``adaptive_cap``, ``degree_cap``,
``tiny_variance``), recorded in its spectrum and warned with its output label. The statistics
are the single-output kernels mapped over the output axis
(:mod:`actspec_jax.solvers.gl.multi_kernels`).

**Why a shared order is sound.** An exact search keeps every bucket of weight ``≥ τ²/2``, and
an ``S`` with ``|f̂(S)| ≥ τ`` keeps every ancestor at weight ``≥ τ²`` *whatever the order* in
which neurons are split, so searching output ``k`` in another output's order finds the same
heavy subsets; only the sampling noise of the bucket estimates depends on the order. The
influence pre-pass (one set of flips, all outputs) gives ``Inf_{k,i}``; a neuron is searched
if *any* output needs it (``Inf_{k,i} ≥ τ_k²/8``, the single search's pruning rule, applied
per output), and neurons are split by decreasing ``max_k Inf_{k,i} / τ_k²`` (influence in units
of each output's own threshold, so no output's scale dominates).

**Each output splits only on its own neurons.** Output ``k``'s children that add a neuron it does
not need (``Inf_{k,i} < τ_k²/8``) are invalid for it — every bucket containing ``i`` has weight
``≤ Inf_{k,i}``, so an exact search would drop it anyway (the pruning argument) — and on a level
whose block holds none of its neurons its beam is kept unchanged (no fresh, noisy re-decision
of buckets that cannot change). The neurons other outputs need then sit in ``k``'s prefix
without entering its subsets: its bucket weights lose the terms containing them, each of weight
``< τ_k²/8``, while every neuron of a heavy ``S`` is one of its own (``Inf_{k,i} ≥ f̂(S)²``), so
the guarantee above holds. Output ``k`` therefore searches exactly its single search's neurons;
measured without this rule (``benchmarks/bench_gl.py --only-batched``), the other classes'
neurons filled each class's beam with noise buckets and cost it up to 40 % of the terms its
single search finds. With ``order='index'`` or an explicit order (no pruning) the order is the
single search's, and output ``k`` of the batched search *is* the single search of output ``k``
with the same key (same draws, same values, same decisions up to float rounding of the
batched statistics) — tested.

**Adaptive samples** (``adaptive=True``): a level keeps drawing rounds while *any* output has
an undecided child (and ``max_samples`` is not reached): conservative — an output gets at least
as many samples as its own rule asks for.

**Constant outputs** (every sampled value equal) are not searched (no root bucket) and report
only ``∅``, as in a single search.

**Not batched**: the paper estimator (its data hybrids explain one ±1 indicator; choose one
output), redundancy constraints (their records and post-checks are per search; call per output)
and the degree profile (one output's spectrum; call
:func:`~actspec_jax.estimate_degree_profile` per output). Each raises an error naming the fix.
Checkpoints, resume, ``max_evaluations`` (planned for the shared search: the evaluations do not
grow with ``K``), devices and progress callbacks work as in a single search; the checkpoint
holds every output's beam (``[K, beam, D]``).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.diagnostics import IncompleteResultWarning
from actspec_jax.errors import ActSpecError, NonFiniteOutputError
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.memory import default_block_size, default_memory_budget
from actspec_jax.solvers.gl import multi_kernels as MK
from actspec_jax.solvers.gl.diagnostics import diagnose
from actspec_jax.solvers.gl.leaves import LeafFit, fit_and_trim
from actspec_jax.solvers.gl.run import SearchRun
from actspec_jax.solvers.gl.settings import (
    LEVEL_STATS,
    TAG_INFLUENCE,
    TAG_LEAVES,
    TAG_LEVELS,
    TAG_NORM,
    key_data,
)
from actspec_jax.solvers.gl.state import SearchSetup, SearchState
from actspec_jax.spectrum import Spectrum, SpectrumBatch

__all__ = ["BatchedRun", "check_batchable", "search_batched"]

PER_OUTPUT_STATS = (
    "split",
    "live_in",
    "children",
    "above_threshold",
    "kept",
    "rejected_postcheck",
    "unchecked_postcheck",
    "degree_dropped",
    "undecided",
    "max_weight",
    "min_kept_weight",
)


def own_neurons(influence: np.ndarray, tau_abs: np.ndarray) -> np.ndarray:
    """``bool[K, n]``: the neurons output ``k``'s own search keeps, ``Inf_{k,i} ≥ τ_k²/8``
    (the single search's pruning rule, evaluated the same way)."""
    return np.stack([influence[k] >= float(tau_abs[k]) ** 2 / 8.0 for k in range(influence.shape[0])])


def check_batchable(solver: Any, problem: Problem, cfg: dict[str, Any]) -> None:
    """Refuse the settings the batched search does not support, naming the fix."""
    shape = tuple(problem.output_shape)
    estimator = solver.resolved_estimator()
    if not estimator.multi_output:
        raise ActSpecError(
            f"the {estimator.name} estimator explains one output at a time, but this problem has outputs of "
            f"shape {shape}. Use GoldreichLevin(estimator='mask') to search all outputs together, or choose "
            "one output (e.g. output='indicator:7')."
        )
    if solver.constraints():
        raise ActSpecError(
            f"redundancy constraints apply to one search at a time, but this problem has outputs of shape "
            f"{shape}. Use redundancy='none' for the batched search, or call the solver once per output."
        )
    if 0 in shape:
        raise ActSpecError(f"the problem has no outputs (output_shape={shape}); nothing to explain.")


def _labelled(label: str, call: Any, *args: Any) -> Any:
    """Run ``call(*args)`` and re-emit its incompleteness warnings prefixed with the output label."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IncompleteResultWarning)
        out = call(*args)
    for item in caught:
        if issubclass(item.category, IncompleteResultWarning):
            warnings.warn(f"output {label}: {item.message}", item.category, stacklevel=4)
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return out


class BatchedRun(SearchRun):
    """One pass of the batched search: the single-output driver with ``K``-wide state."""

    def __init__(self, *args: Any, tau_override: np.ndarray | None = None) -> None:
        super().__init__(*args)
        self.outputs = int(self.problem.num_outputs)
        self.output_labels = tuple(self.problem.output_labels)
        self.tau_override = tau_override
        self.active = np.ones(self.outputs, bool)
        self._constant = np.zeros(self.outputs, bool)
        # Statistics intermediates per base draw: χ_S and F·χ_S (r × K·B), G and u (K·B × 2^b),
        # the draw's patterns; in cache-sized chunks on CPU (measured ~3× faster than one chunk).
        budget = self.solver.memory_budget or min(default_memory_budget(), 512 << 20)
        width = self.outputs * self.beam
        per_draw = 4 * (3 * self.r * width + 3 * width * (1 << self.b) + 2 * self.r * self.n)
        block = default_block_size(per_draw) or budget
        self.c_stats = int(max(1, min(self.cfg["num_samples"], budget // per_draw, block)))

    def fingerprint(self) -> str:
        from actspec_jax.solvers.common.checkpoint import fingerprint, problem_digest

        tau = None if self.tau_override is None else [float(t) for t in self.tau_override]
        doc = {
            "settings": self.cfg,
            "problem": problem_digest(self.problem),
            "n": self.n,
            "outputs": self.outputs,
            "tau_abs": tau,
            "key": key_data(self.key).tolist(),
        }
        return fingerprint(doc)

    def _design_multi(self, tag: int) -> tuple[jax.Array, jax.Array, np.ndarray]:
        draws = self.design_draws(tag)
        values_dev = MK.evaluate_design_multi(
            self.problem, draws, c=self.c_design, outputs=self.outputs, mesh=self.mesh
        )
        return draws, values_dev, self._checked(values_dev)

    # ------------------------------------------------------------------ pre-passes
    def prepare(self) -> tuple[SearchSetup, dict[str, Any]]:
        cfg, n = self.cfg, self.n
        meta: dict[str, Any] = {"evaluations": {"norm": 0, "influence": 0, "levels": 0, "leaves": 0}}
        _, _, values = self._design_multi(TAG_NORM)
        meta["evaluations"]["norm"] = int(values.shape[0])
        columns = np.ascontiguousarray(values.T)  # [K, M]: each row summed as the 1-D single search does
        mean, second = columns.mean(axis=1), (columns * columns).mean(axis=1)
        var = np.maximum(second - mean * mean, 0.0)
        scale = {"relative": np.sqrt(second), "centered": np.sqrt(var), "absolute": np.ones_like(mean)}
        tau_abs = cfg["tau"] * scale[cfg["tau_mode"]]
        if self.tau_override is not None:
            tau_abs = np.asarray(self.tau_override, np.float64)
        constant = (var <= 1e-12 * np.maximum(second, 1e-30)) | ~self.active
        tau_abs = np.where(tau_abs <= 0, cfg["tau"], tau_abs)
        center = mean if cfg["center"] else np.zeros_like(mean)
        self._constant = constant
        candidates = np.full(n, not constant.all())
        influence = np.zeros((self.outputs, n), np.float32)
        needed = [int(n) if not c else 0 for c in constant]
        pruned = 0
        if cfg["order"] == "influence" and not constant.all():
            out = MK.influence_multi(
                self.problem,
                self._sub(TAG_INFLUENCE),
                samples=cfg["influence_samples"],
                c=self.c_influence,
                outputs=self.outputs,
                mesh=self.mesh,
            )
            if float(out["bad"]) > 0:
                raise NonFiniteOutputError(
                    "the model output is NaN/inf on some masks of the influence pre-pass; check the fill "
                    "values and the output selector (e.g. log of a zero probability)."
                )
            influence = np.asarray(out["mean"], np.float32)
            meta["evaluations"]["influence"] = cfg["influence_samples"] * (n + 1)
            own = own_neurons(influence, tau_abs) & ~constant[:, None]
            needed = [int(v) for v in own.sum(axis=1)]
            if cfg["prune"]:
                candidates &= own.any(axis=0)
                pruned = int(n - candidates.sum())
        if isinstance(cfg["order"], list):
            sequence = [i for i in cfg["order"] if candidates[i]]
        elif cfg["order"] == "influence":
            live = ~constant
            score = (influence[live] / (tau_abs[live, None] ** 2)).max(axis=0) if live.any() else influence[0]
            sequence = [int(i) for i in np.argsort(-score, kind="stable") if candidates[i]]
        else:
            sequence = [int(i) for i in np.flatnonzero(candidates)]
        levels = -(-len(sequence) // self.b)
        order = np.full(self.order_length, n, np.int32)
        order[: len(sequence)] = sequence
        rank = np.full(n, self.order_length, np.int32)
        rank[sequence] = np.arange(len(sequence), dtype=np.int32)
        setup = SearchSetup(
            order=order,
            rank=rank,
            influence=influence,
            scalars=np.stack([center, mean, second, tau_abs], axis=1).astype(np.float64),
        )
        meta.update(
            levels_total=levels,
            constant_function=[bool(c) for c in constant],
            searched=len(sequence),
            needed_by_output=needed,
            pruned=pruned,
            removed=[],
            removed_count=0,
            stats={name: [] for name in LEVEL_STATS},
            chunks=self.chunk_sizes(),
            wall_time_s=0.0,
        )
        return setup, meta

    def initial_state(self) -> SearchState:
        k, beam, depth = self.outputs, self.beam, self.depth
        valid = np.zeros((k, beam), bool)
        valid[:, 0] = ~self._constant  # each output's root bucket (0, ∅); none for a constant output
        return SearchState(
            level=np.asarray(0, np.int32),
            members=np.full((k, beam, depth), self.n, np.int32),
            degree=np.zeros((k, beam), np.int32),
            valid=valid,
            weights=np.zeros((k, beam), np.float32),
            stderr=np.zeros((k, beam), np.float32),
            key=super().initial_state().key,
        )

    def shapes(self, meta: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        shapes = super().shapes(meta)
        k = self.outputs
        for name in ("state_members", "state_valid", "state_weights", "state_degree"):
            shapes[name] = (k, *shapes[name])
        shapes.update(setup_scalars=(k, 4), setup_influence=(k, self.n))
        return shapes

    # ------------------------------------------------------------------ one level
    def own_orders(self, setup: SearchSetup) -> np.ndarray:
        """``int32[K, L]``: the shared order with the neurons output ``k`` does not need (its own
        pruning rule) replaced by padding, so its children never add them (module docstring)."""
        order = np.asarray(setup.order)
        allowed = np.zeros((self.outputs, self.n + 1), bool)
        allowed[:, : self.n] = True
        if self.cfg["order"] == "influence" and self.cfg["prune"]:
            allowed[:, : self.n] = own_neurons(np.asarray(setup.influence), np.asarray(setup.scalars)[:, 3])
        return np.where(allowed[:, order], order[None, :], self.n).astype(np.int32)

    def _level(
        self, state: SearchState, setup: SearchSetup, post_bits: Any
    ) -> tuple[SearchState, dict[str, Any], list[dict[str, Any]]]:
        cfg = self.cfg
        level = int(state.level)
        level_key = jax.random.fold_in(self._sub(TAG_LEVELS), level)
        scalars = np.asarray(setup.scalars)
        center = jnp.asarray(scalars[:, 0], jnp.float32)
        threshold = jnp.asarray(scalars[:, 3] ** 2 / 2.0, jnp.float32)
        members = jnp.asarray(state.members)
        order, rank = jnp.asarray(setup.order), jnp.asarray(setup.rank)
        own = self.own_orders(setup)
        splits = (own[:, level * self.b : (level + 1) * self.b] != self.n).any(axis=1)
        totals, used, rounds = None, 0, 0
        while True:
            draws = MK.K.draw(
                jax.random.fold_in(level_key, rounds),
                estimator=self.estimator,
                shape=(cfg["num_samples"], self.r + 1),
                n=self.n,
            )
            values = MK.evaluate_round_multi(
                self.problem, draws, jnp.int32(level), rank, c=self.c_eval, b=self.b,
                outputs=self.outputs, mesh=self.mesh,
            )  # fmt: skip
            stats = MK.child_stats_multi(
                values, draws, members, jnp.int32(level), order, center, c=self.c_stats, b=self.b, n=self.n
            )
            if totals is None:
                totals = stats
            else:
                totals = {
                    k: jnp.maximum(totals[k], v) if k == "fmax" else totals[k] + v for k, v in stats.items()
                }
            used += cfg["num_samples"]
            rounds += 1
            bad = np.asarray(stats["bad"])
            if bad.sum() > 0:
                names = [self.output_labels[k] for k in np.flatnonzero(bad)][:5]
                raise NonFiniteOutputError(
                    f"the model output is NaN/inf on some masks at level {level} of the search (outputs "
                    f"{names}); check the fill values and the output selector (e.g. log of a zero "
                    "probability)."
                )
            selected = MK.select_children_multi(
                totals,
                jnp.float32(used),
                members,
                jnp.asarray(state.degree),
                jnp.asarray(state.valid),
                jnp.int32(level),
                jnp.asarray(own),
                threshold,
                jnp.float32(1.0 - cfg["confidence"]),
                pool=self.pool,
                b=self.b,
                r=self.r,
                n=self.n,
            )
            undecided = np.where(splits, np.asarray(selected["undecided"]), 0)
            if not cfg["adaptive"] or int(undecided.sum()) == 0 or used >= cfg["max_samples"]:
                break
        fields = ("members", "degree", "valid", "weights", "stderr")
        counters = ("children", "above", "degree_dropped", "undecided", "max_weight")
        host = jax.device_get({k: selected[k] for k in fields + counters})  # one transfer per level
        beam = self.beam
        for name in fields:  # an output with none of its own neurons in this block keeps its beam
            host[name] = np.asarray(host[name])[:, :beam].copy()
            host[name][~splits] = np.asarray(getattr(state, name))[~splits]
        for name in counters:
            host[name] = np.where(splits, np.asarray(host[name]), 0)
        valid = np.asarray(host["valid"])[:, :beam]
        weights = np.asarray(host["weights"])[:, :beam].astype(np.float32)
        new_state = SearchState(
            level=np.asarray(level + 1, np.int32),
            members=np.asarray(host["members"])[:, :beam].astype(np.int32),
            degree=np.asarray(host["degree"])[:, :beam].astype(np.int32),
            valid=valid,
            weights=weights,
            stderr=np.asarray(host["stderr"])[:, :beam].astype(np.float32),
            key=state.key,
        )
        kept = valid.sum(axis=1)
        zeros = [0] * self.outputs
        record = {
            "level": level,
            "prefix": min((level + 1) * self.b, int((np.asarray(setup.order) != self.n).sum())),
            "live_in": [int(v) for v in np.asarray(state.valid).sum(axis=1)],
            "children": [int(v) for v in host["children"]],
            "above_threshold": [int(v) for v in host["above"]],
            "kept": [int(v) for v in kept],
            "rejected_postcheck": zeros,
            "unchecked_postcheck": zeros,
            "degree_dropped": [int(v) for v in host["degree_dropped"]],
            "undecided": [int(v) for v in host["undecided"]],
            "samples": used,
            "rounds": rounds,
            "evaluations": used * self.r,
            "max_weight": [float(v) if split else None for v, split in zip(host["max_weight"], splits)],
            "split": [bool(v) for v in splits],
            "min_kept_weight": [
                float(weights[k][valid[k]].min()) if kept[k] else None for k in range(self.outputs)
            ],
        }
        return new_state, record, []

    # ------------------------------------------------------------------ leaves
    def fit_subsets_multi(
        self, subsets: dict[int, list[tuple[int, ...]]], *, tag: int
    ) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], int]:
        """Least-squares fit of each output's ``subsets[k]`` (``∅`` first) on ONE fresh design of
        ``leaf_samples`` masks (evaluated once for all outputs); also the evaluations used."""
        if not subsets:
            return {}, 0
        draws, values_dev, values = self._design_multi(tag)
        # One padded shape for every output (rows beyond an output's subsets are ∅ and left out
        # of its fit), so the leaf kernels compile once, not once per output.
        depth = max([self.depth, *(len(s) for chosen in subsets.values() for s in chosen)])
        rows = 1 << max(len(chosen) for chosen in subsets.values()).bit_length()
        out = {}
        for k, chosen in subsets.items():
            members = np.full((rows, depth), self.n, np.int32)
            for row, subset in enumerate(chosen):
                members[row, : len(subset)] = subset
            column = np.ascontiguousarray(values[:, k])
            fit = LeafFit(self, values_dev[:, k], column, draws, jnp.asarray(members))
            out[k] = fit(np.arange(len(chosen)), True)
        return out, int(values.shape[0])

    def _leaves(
        self,
        state: SearchState,
        setup: SearchSetup,
        meta: dict[str, Any],
        prior_wall: float,
        call_start: float,
        resumed_from: int | None,
    ) -> list[Spectrum]:
        from actspec_jax.solvers.common.sharding import mesh_size

        cfg, n = self.cfg, self.n
        draws, values_dev, values = self._design_multi(TAG_LEAVES)
        meta["evaluations"]["leaves"] = int(values.shape[0])
        evaluations = dict(meta["evaluations"])
        shared = {
            "name": "goldreich_levin",
            **dict(cfg.items()),
            "key": key_data(self.key).tolist(),
            "evaluations": int(sum(evaluations.values())),
            "evaluations_by_stage": evaluations,
            "evaluations_shared": True,
            "outputs": self.outputs,
            "evaluation_unit": "mask",
            "wall_time_s": prior_wall + (time.perf_counter() - call_start),
            "resumed_from_level": resumed_from,
            "backend": jax.default_backend(),
            "devices": 1 if self.mesh is None else mesh_size(self.mesh),
            "chunks": dict(zip(("eval", "stats", "design", "leaf", "influence"), self.chunk_sizes())),
            "searched_neurons": int(meta["searched"]),
            "pruned_by_influence": int(meta["pruned"]),
            "search_order": [int(i) for i in np.asarray(setup.order) if i != n],
            "num_levels": int(meta["levels_total"]),
            "redundancy": {"constraints": [], "removed_count": 0, "removed": []},
        }
        spectra = []
        # Each output's design holds ∅ and its live buckets only (not all beam slots), padded with
        # ∅ rows (left out of the fit) to one power-of-two shape for all outputs: the leaf
        # kernels compile once and cost ∝ the leaves found, not the beam.
        found = []
        for k in range(self.outputs):
            valid, members = np.asarray(state.valid)[k], np.asarray(state.members)[k]
            rows = [row for row in np.flatnonzero(valid) if (members[row] != n).any()]
            found.append((members[rows], [tuple(sorted(int(i) for i in members[r] if i != n)) for r in rows]))
        longest = 1 + max(len(leaves) for _, leaves in found)
        width = min(1 << (longest - 1).bit_length(), self.beam + 1)
        for k in range(self.outputs):
            center, mean, second, tau_abs = (float(v) for v in np.asarray(setup.scalars)[k])
            design_members = np.full((width, self.depth), n, np.int32)
            design_members[1 : 1 + len(found[k][1])] = found[k][0]
            leaves = [(), *found[k][1]]
            column = np.ascontiguousarray(values[:, k])
            fit = LeafFit(self, values_dev[:, k], column, draws, jnp.asarray(design_members))
            columns = np.arange(len(leaves))
            subsets, coef, err, dropped = fit_and_trim(fit, leaves, columns, cfg["refit"], tau_abs)
            norm_sq = float((second * self.design_total + float((column**2).sum())) / (2 * self.design_total))
            label = self.output_labels[k]
            levels = {
                name: [v[k] for v in vals] if name in PER_OUTPUT_STATS else list(vals)
                for name, vals in meta["stats"].items()
            }
            info = {
                **shared,
                "output_index": k,
                "output_label": label,
                "tau_abs": tau_abs,
                "weight_threshold": tau_abs**2 / 2.0,
                "center_value": center,
                "mean_estimate": mean,
                "norm_sq_estimate": second,
                "constant_function": bool(meta["constant_function"][k]),
                "searched_neurons_needed": int(meta["needed_by_output"][k]),
                "influence": [float(v) for v in np.asarray(setup.influence)[k]]
                if cfg["order"] == "influence"
                else None,
                "levels": levels,
                "leaves": {"found": len(leaves), "reported": len(subsets), "below_threshold": dropped},
            }
            if self.active[k]:
                _labelled(label, self._report_full_beam, info, levels)
            spectra.append(
                Spectrum.build(
                    n,
                    subsets,
                    np.asarray(coef, np.float64),
                    stderr=np.asarray(err, np.float64),
                    labels=self.problem.labels,
                    norm_sq=norm_sq,
                    problem=self.problem.describe(),
                    solver=info,
                    output_label=label,
                    output_index=k,
                )
            )
        return spectra


def search_batched(
    solver: Any,
    problem: Problem,
    cfg: dict[str, Any],
    key: jax.Array,
    progress: Any,
    checkpoint_path: str | Path | None,
    started: float,
) -> SpectrumBatch:
    """The batched search (module docstring): first pass, residual passes, diagnostics."""
    check_batchable(solver, problem, cfg)
    run = BatchedRun(solver, cfg, problem, key, progress, checkpoint_path)
    spectra = run.execute(started)
    if cfg["passes"] > 1 and not all(s.solver["constant_function"] for s in spectra):
        from actspec_jax.solvers.gl.batched_passes import residual_passes

        spectra = residual_passes(solver, run, spectra, progress, checkpoint_path, started)
    spectra = [_labelled(s.output_label, diagnose, s, cfg) for s in spectra]
    return SpectrumBatch(spectra=tuple(spectra), output_shape=tuple(problem.output_shape))
