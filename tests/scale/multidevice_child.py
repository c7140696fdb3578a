"""Run in a child process with forced host devices; prints one JSON line of checks.

The parent sets ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before this module
imports jax (the flag is read once, at backend start-up), so it must be a separate process.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers import exact_value_table
from actspec_jax.solvers.common.sharding import DeviceCountError, fwht_sharded, mask_mesh, sharded_map


def error_message(fn) -> str:
    try:
        fn()
    except DeviceCountError as err:
        return str(err)
    return ""


def main() -> None:
    out: dict = {"devices": len(jax.devices())}
    terms = {(1, 4, 7): 1.0, (2, 6): -0.7, (0,): 0.5, (3, 5, 8, 9): 0.3}
    planted = synthetic.planted_mlp(10, terms, distractor=0.05, key=jax.random.key(3))
    problem = planted.problem()
    for mode, inc in (("direct", False), ("incremental", True)):
        one = np.asarray(exact_value_table(problem, devices=1, incremental=inc, chunk_size=64))
        four = exact_value_table(problem, devices=4, incremental=inc, chunk_size=64)
        out[f"{mode}_table_sharded_over"] = len(four.sharding.device_set)
        out[f"{mode}_table_bitwise_equal"] = bool(np.array_equal(one, np.asarray(four)))
        s1 = asj.ExactSolver(devices=1, incremental=inc)(problem)
        s4 = asj.ExactSolver(devices=4, incremental=inc)(problem)
        out[f"{mode}_solver_devices"] = [s1.solver["devices"], s4.solver["devices"]]
        out[f"{mode}_evaluation"] = s4.solver["evaluation"]
        out[f"{mode}_spectrum_max_diff"] = float(np.max(np.abs(s1.dense - s4.dense)))
        truth_err = max(abs(s4.to_dict().get(s, 0.0) - c) for s, c in planted.truth.items())
        out[f"{mode}_truth_max_err"] = float(truth_err)
        out[f"{mode}_same_top_terms"] = s1.subset_tuples()[:6] == s4.subset_tuples()[:6]

    # A random value table (no structure), 2 outputs: sharded spectrum == one-device spectrum.
    n = 9
    values = jnp.asarray(np.random.default_rng(0).standard_normal((1 << n, 2)), jnp.float32)
    weights = jnp.asarray(1 << np.arange(n), jnp.int32)
    table_problem = asj.FunctionProblem(lambda x: values[jnp.sum((x < 0) * weights, axis=1)], n)
    b1 = asj.ExactSolver(devices=1, rtol=0.0)(table_problem)
    b4 = asj.ExactSolver(devices=4, rtol=0.0)(table_problem)
    out["batch_max_diff"] = float(np.max(np.abs(b1.dense - b4.dense)))
    calls: list[tuple[int, int]] = []
    asj.ExactSolver(devices=4, chunk_size=32)(table_problem, progress=lambda d, t: calls.append((d, t)))
    out["progress"] = calls

    # An interrupted sharded solve resumes from its checkpoint to the same table, bit for bit.
    class Stop(Exception):
        pass

    def stop_at_half(done: int, total: int) -> None:
        if done >= total // 2:
            raise Stop

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sharded.npz")
        solve = functools.partial(exact_value_table, table_problem, devices=4, chunk_size=16)
        full = np.asarray(solve())
        try:
            solve(progress=stop_at_half, checkpoint_path=path)
            out["checkpoint_stopped"] = False
        except Stop:
            out["checkpoint_stopped"] = True
        out["checkpoint_written"] = os.path.exists(path)
        resumed = solve(checkpoint_path=path)
        out["checkpoint_resumed_sharded_over"] = len(resumed.sharding.device_set)
        out["checkpoint_resumed_bitwise_equal"] = bool(np.array_equal(full, np.asarray(resumed)))

    mesh = mask_mesh(4)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((3, 1 << 10)), jnp.float32)
    got = fwht_sharded(x, mesh)
    out["fwht_max_diff"] = float(np.max(np.abs(np.asarray(got) - np.asarray(asj.fwht(x)))))
    out["fwht_output_sharded_over"] = len(got.sharding.device_set)
    tiny = jnp.arange(8.0)
    out["fwht_tiny_max_diff"] = float(np.max(np.abs(np.asarray(fwht_sharded(tiny, mesh)) - asj.fwht(tiny))))

    # sharded_map: chunks of masks mapped over devices == lax.map on one device, bitwise.
    chunks = jnp.asarray(np.random.default_rng(2).choice([-1.0, 1.0], size=(7, 16, 10)), jnp.float32)

    def per_chunk(p, masks):
        return p.evaluate_unchecked(masks)

    one_map = jax.jit(lambda p, c: sharded_map(per_chunk, p, c, None))(problem, chunks)
    four_map = jax.jit(lambda p, c: sharded_map(per_chunk, p, c, mesh))(problem, chunks)
    out["sharded_map_shape"] = list(four_map.shape)
    out["sharded_map_bitwise_equal"] = bool(np.array_equal(np.asarray(one_map), np.asarray(four_map)))

    # Goldreich–Levin: every level's hybrid masks split over 4 devices, same key → same result.
    gl_terms = {(3, 17, 29): 1.0, (5, 40): -0.8, (11,): 0.6, (0, 22, 33, 47): 0.5}
    gl_model = synthetic.planted_mlp(48, gl_terms, distractor=0.01, key=jax.random.key(7), num_inputs=1)
    gl_problem = gl_model.problem()
    for name, settings in (("influence", {}),):  # influence pre-pass, levels and leaves
        solver_kw = dict(tau=0.15, num_samples=32, leaf_samples=1024, influence_samples=4, **settings)
        one_gl = asj.GoldreichLevin(devices=1, **solver_kw)(gl_problem, key=jax.random.key(11))
        four_gl = asj.GoldreichLevin(devices=4, **solver_kw)(gl_problem, key=jax.random.key(11))
        out[f"gl_{name}_devices"] = [one_gl.solver["devices"], four_gl.solver["devices"]]
        out[f"gl_{name}_same_subsets"] = one_gl.subset_tuples() == four_gl.subset_tuples()
        out[f"gl_{name}_coefficients_bitwise"] = bool(
            np.array_equal(one_gl.coefficients, four_gl.coefficients)
        )
        out[f"gl_{name}_evaluations"] = [one_gl.solver["evaluations"], four_gl.solver["evaluations"]]
        found = four_gl.to_dict()
        out[f"gl_{name}_recovered"] = sum(
            1 for s, c in gl_terms.items() if s in found and abs(found[s] - c) < 0.1
        )

    # CompressiveSolver: every chunk of the plan split over 4 devices; the same decode.
    rows_seen: list[int] = []

    def counted(masks: jax.Array) -> jax.Array:
        jax.debug.callback(lambda k: rows_seen.append(int(k)), jnp.int32(masks.shape[0]))
        return gl_problem.evaluate_unchecked(masks)

    cs_problem = asj.FunctionProblem(counted, gl_problem.n)
    cs_kw = dict(max_degree=4, max_evaluations=4000, memory_budget=1 << 20)
    one_cs = asj.CompressiveSolver(devices=1, **cs_kw)(cs_problem, key=jax.random.key(12))
    jax.effects_barrier()
    one_rows, rows_seen[:] = list(rows_seen), []
    four_cs = asj.CompressiveSolver(devices=4, **cs_kw)(cs_problem, key=jax.random.key(12))
    jax.effects_barrier()
    out["cs_devices"] = [one_cs.solver["devices"], four_cs.solver["devices"]]
    out["cs_same_subsets"] = one_cs.subset_tuples() == four_cs.subset_tuples()
    out["cs_max_diff"] = float(np.max(np.abs(one_cs.coefficients - four_cs.coefficients)))
    out["cs_rows"] = [sum(one_rows), sum(rows_seen)]
    out["cs_calls"] = [len(one_rows), len(rows_seen)]
    out["cs_largest_call"] = [max(one_rows), max(rows_seen)]
    found = four_cs.to_dict()
    out["cs_recovered"] = sum(1 for s, c in gl_terms.items() if s in found and abs(found[s] - c) < 0.1)

    out["error_too_many"] = error_message(lambda: asj.ExactSolver(devices=8)(problem))
    out["error_not_power_of_two"] = error_message(lambda: mask_mesh(3))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
