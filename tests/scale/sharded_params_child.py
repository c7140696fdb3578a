"""Child process (4 forced host devices): parameters sharded by the user over a "model" axis."""

from __future__ import annotations

import json

import jax
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import actspec_jax as asj
from actspec_jax.solvers.common.checkpoint import problem_digest


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(8, name="hidden")(x))
        return nn.Dense(4, name="out")(h)


def main() -> None:
    out: dict = {"devices": len(jax.devices())}
    model = MLP()
    x = jax.random.normal(jax.random.key(0), (6, 5))
    variables = model.init(jax.random.key(1), x)
    mesh = Mesh(np.asarray(jax.devices()), ("model",))

    def shard(path, leaf):
        spec = P(None, "model") if leaf.ndim == 2 and leaf.shape[1] % 4 == 0 else P()
        return jax.device_put(leaf, NamedSharding(mesh, spec))

    sharded = jax.tree_util.tree_map_with_path(shard, variables)
    out["params_sharded"] = any(len(a.sharding.device_set) == 4 for a in jax.tree_util.tree_leaves(sharded))
    plain = asj.masked_problem(asj.cut_model(model, variables, "hidden"), x, output="logit:1")
    problem = asj.masked_problem(asj.cut_model(model, sharded, "hidden"), x, output="logit:1")
    reference = asj.ExactSolver(devices=1)(plain)
    for devices in (1, 4):
        try:
            spec = asj.ExactSolver(devices=devices)(problem)
            out[f"exact_{devices}_max_diff"] = float(np.abs(spec.dense - reference.dense).max())
        except Exception as err:  # reported, so the parent shows the failure
            out[f"exact_{devices}_error"] = f"{type(err).__name__}: {err}"[:500]
    gl = asj.GoldreichLevin(tau=0.2, block_size=2, num_samples=64, draws_per_z=4, leaf_samples=512)
    ref_gl = gl(plain, key=jax.random.key(3))
    for devices in (1, 4):
        try:
            spec = asj.GoldreichLevin(
                tau=0.2, block_size=2, num_samples=64, draws_per_z=4, leaf_samples=512, devices=devices
            )(problem, key=jax.random.key(3))
            out[f"gl_{devices}_same"] = sorted(spec.to_dict()) == sorted(ref_gl.to_dict())
            out[f"gl_{devices}_max_diff"] = float(np.abs(spec.coefficients - ref_gl.coefficients).max())
        except Exception as err:
            out[f"gl_{devices}_error"] = f"{type(err).__name__}: {err}"[:500]
    out["digest_equal"] = problem_digest(problem) == problem_digest(plain)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
