"""One process of a 2-process ``jax.distributed`` run on CPU (prints one JSON line).

Usage: ``python multihost_child.py PROCESS_ID PORT`` with 2 forced host devices per process,
so the global mesh has 4 devices over 2 processes (collectives through gloo). The recipe
is the one of ``docs/accelerators.md``: ``jax.distributed.initialize`` before anything else.
"""

from __future__ import annotations

import json
import sys

import jax


def main() -> None:
    process_id, port = int(sys.argv[1]), int(sys.argv[2])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
    )
    import jax.numpy as jnp
    import numpy as np

    import actspec_jax as asj
    from actspec_jax.problems import synthetic

    planted = synthetic.planted_mlp(8, {(1, 4, 6): 1.0, (2, 5): -0.7}, distractor=0.05, key=jax.random.key(3))
    problem = planted.problem()
    local = asj.ExactSolver(devices=1)(problem)
    spread = asj.ExactSolver(devices=None)(problem)  # every device of every process
    gl_model = synthetic.planted_mlp(16, {(2, 9): 1.0, (5,): -0.7}, key=jax.random.key(4), num_inputs=1)
    gl = dict(tau=0.2, num_samples=32, leaf_samples=512, order="index", block_size=8)
    gl_local = asj.GoldreichLevin(devices=1, **gl)(gl_model.problem(), key=jax.random.key(1))
    gl_spread = asj.GoldreichLevin(devices=None, **gl)(gl_model.problem(), key=jax.random.key(1))
    # CompressiveSolver: every chunk split over the 4 devices of both processes; rows counted here
    rows: list[int] = []

    def counted(masks: jax.Array) -> jax.Array:
        jax.debug.callback(lambda k: rows.append(int(k)), jnp.int32(masks.shape[0]))
        return gl_model.problem().evaluate_unchecked(masks)

    cs_problem = asj.FunctionProblem(counted, 16)
    cs = dict(max_degree=2, max_evaluations=2000)
    cs_local = asj.CompressiveSolver(devices=1, **cs)(cs_problem, key=jax.random.key(2))
    jax.effects_barrier()
    local_rows, rows[:] = sum(rows), []
    cs_spread = asj.CompressiveSolver(devices=None, **cs)(cs_problem, key=jax.random.key(2))
    jax.effects_barrier()
    print(
        json.dumps(
            {
                "process": jax.process_index(),
                "processes": jax.process_count(),
                "global_devices": len(jax.devices()),
                "local_devices": len(jax.local_devices()),
                "solver_devices": spread.solver["devices"],
                "max_diff": float(np.max(np.abs(local.dense - spread.dense))),
                "gl_devices": gl_spread.solver["devices"],
                "gl_same": gl_local.subset_tuples() == gl_spread.subset_tuples()
                and bool(np.array_equal(gl_local.coefficients, gl_spread.coefficients)),
                "gl_found": sorted(gl_spread.to_dict()),
                "cs_devices": cs_spread.solver["devices"],
                "cs_same_subsets": cs_local.subset_tuples() == cs_spread.subset_tuples(),
                "cs_max_diff": float(np.max(np.abs(cs_local.coefficients - cs_spread.coefficients))),
                "cs_rows_here": [local_rows, sum(rows)],
                "cs_found": sorted(cs_spread.to_dict()),
                "truth_err": float(
                    max(abs(spread.to_dict().get(s, 0.0) - c) for s, c in planted.truth.items())
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
