"""An interrupted exact solve leaves a checkpoint that resumes to the same spectrum."""

import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.solvers import exact_value_table


def problem(n: int = 10, outputs: int = 2) -> asj.FunctionProblem:
    weights = jnp.linspace(-1.0, 1.0, n * outputs).reshape(n, outputs)
    return asj.FunctionProblem(lambda x: jnp.tanh(x @ weights + x[:, :1] * x[:, 1:2]), n=n)


class Stop(Exception):
    pass


def stop_after(chunks: int):
    def progress(done: int, total: int) -> None:
        if done >= chunks * 64:
            raise Stop

    return progress


def test_interrupted_solve_resumes_to_the_same_spectrum(tmp_path):
    p, path = problem(), tmp_path / "exact.npz"
    solver = asj.ExactSolver(chunk_size=64, devices=1, checkpoint_every_s=1e9)  # save only on the way out
    reference = solver(p)
    with pytest.raises(Stop):
        solver(p, progress=stop_after(5), checkpoint_path=path)
    assert path.is_file()
    seen: list[int] = []
    resumed = solver(p, progress=lambda done, total: seen.append(done), checkpoint_path=path)
    assert seen[0] == 6 * 64  # chunks 0-4 came from the file
    for a, b in zip(reference.spectra, resumed.spectra):
        np.testing.assert_array_equal(a.dense, b.dense)
    assert not path.exists()  # removed once the spectrum is built


def test_periodic_saves_hold_the_partial_table(tmp_path):
    p, path = problem(n=8, outputs=1), tmp_path / "t.npz"
    full = np.asarray(exact_value_table(p, chunk_size=32))
    with pytest.raises(Stop):
        exact_value_table(
            p, chunk_size=32, progress=stop_after(3), checkpoint_path=path, checkpoint_every_s=0.0
        )
    with np.load(path) as saved:
        table = saved["table"]
    done = 3 * 32
    np.testing.assert_array_equal(table[:, :done], full[:, :done])
    resumed = exact_value_table(p, chunk_size=32, checkpoint_path=path)
    np.testing.assert_array_equal(np.asarray(resumed), full)


def test_a_checkpoint_of_another_solve_is_refused(tmp_path):
    path = tmp_path / "exact.npz"
    with pytest.raises(Stop):
        asj.ExactSolver(chunk_size=64, devices=1)(problem(), progress=stop_after(2), checkpoint_path=path)
    with pytest.raises(asj.CheckpointError, match="different problem, solver setting or key"):
        asj.ExactSolver(chunk_size=64, devices=1)(problem(outputs=3), checkpoint_path=path)
    with pytest.raises(asj.CheckpointError, match="different problem"):
        asj.ExactSolver(chunk_size=128, devices=1)(problem(), checkpoint_path=path)
    path.write_bytes(b"not a zip file")
    with pytest.raises(asj.CheckpointError, match=r"not a readable checkpoint.*Delete"):
        asj.ExactSolver(chunk_size=64, devices=1)(problem(), checkpoint_path=path)
    np.savez(path, table=np.zeros(3))
    with pytest.raises(asj.CheckpointError, match="not an actspec_jax exact-solver checkpoint"):
        asj.ExactSolver(chunk_size=64, devices=1)(problem(), checkpoint_path=path)


def test_negative_save_interval_is_refused():
    with pytest.raises(asj.ActSpecError, match="checkpoint_every_s"):
        exact_value_table(problem(n=4), checkpoint_path="unused.npz", checkpoint_every_s=-1.0)


def test_a_corrupt_progress_record_is_refused(tmp_path):
    import json

    from actspec_jax.solvers.common.checkpoint import write_checkpoint

    path = tmp_path / "exact.npz"
    solver = asj.ExactSolver(chunk_size=64, devices=1)
    with pytest.raises(Stop):
        solver(problem(), progress=stop_after(2), checkpoint_path=path)
    with np.load(path) as saved:
        table, meta = saved["table"], json.loads(str(saved["meta"]))
    meta["done"] = 70  # not a chunk boundary: resuming would leave masks unevaluated
    tag, version = meta.pop("format"), meta.pop("version")
    write_checkpoint(path, {"table": table}, meta, format_tag=tag, version=version)
    with pytest.raises(asj.CheckpointError, match="corrupt progress record"):
        solver(problem(), checkpoint_path=path)
