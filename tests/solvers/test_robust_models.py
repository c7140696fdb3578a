"""Item 6: models carrying PRNG streams, user-sharded parameters, and a full beam."""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import actspec_jax as asj
from actspec_jax.diagnostics import IncompleteResultWarning
from actspec_jax.problems import synthetic
from actspec_jax.solvers.common.checkpoint import problem_digest


class DropoutNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.fc1 = nnx.Linear(4, 8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)  # holds an RNG stream (a PRNG key array) in its state
        self.fc2 = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.drop(nnx.relu(self.fc1(x))))


def test_model_with_an_rng_stream_runs_both_solvers_and_checkpoints(tmp_path: Path):
    model = DropoutNet(nnx.Rngs(0, dropout=1))
    model.eval()
    x = jax.random.normal(jax.random.key(2), (6, 4))
    problem = asj.masked_problem(asj.cut_model(model, None, "fc1"), x, output="logit:0")
    keys = [
        leaf for leaf in jax.tree_util.tree_leaves(problem) if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
    ]
    assert keys, "the problem should carry the dropout stream's key"
    digest = problem_digest(problem)  # hashes the key data, never np.asarray(key)
    assert digest == problem_digest(problem)
    exact = asj.ExactSolver()(problem)
    gl = asj.GoldreichLevin(
        tau=0.2, block_size=2, order="index", passes=1, num_samples=64, draws_per_z=4, leaf_samples=512
    )
    spec = gl(problem, key=jax.random.key(0), checkpoint_path=tmp_path / "gl.npz")
    again = gl(problem, key=jax.random.key(0), checkpoint_path=tmp_path / "gl.npz")  # resumes
    assert spec.to_dict() == again.to_dict()
    heavy = max((s for s in exact.to_dict() if s), key=lambda s: abs(exact.to_dict()[s]))
    assert heavy in spec.to_dict()
    assert abs(spec.to_dict()[()] - exact.to_dict()[()]) < 0.05


def test_full_beam_is_reported_with_the_fix():
    terms = {(i,): 0.3 for i in range(12)}  # 12 equal singletons: a beam of 2 must drop most
    planted = synthetic.sparse_polynomial(16, terms)
    solver = asj.GoldreichLevin(
        tau=0.1,
        beam=2,
        block_size=1,
        order="index",
        passes=1,
        num_samples=64,
        draws_per_z=4,
        leaf_samples=512,
    )
    with pytest.warns(IncompleteResultWarning, match="beam"):
        spec = solver(planted.problem, key=jax.random.key(0))
    records = [d for d in spec.solver["diagnostics"] if d["code"] == "beam_full"]
    assert len(records) == 1 and "beam=8" in records[0]["fix"] and "tau" in records[0]["fix"]
    assert len(spec.to_dict()) < 13  # the answer really is incomplete
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteResultWarning)  # a roomy beam stays silent
        roomy = asj.GoldreichLevin(
            tau=0.1,
            beam=64,
            block_size=1,
            order="index",
            passes=1,
            num_samples=64,
            draws_per_z=4,
            leaf_samples=512,
        )
        spec = roomy(planted.problem, key=jax.random.key(0))
    assert "diagnostics" not in spec.solver
