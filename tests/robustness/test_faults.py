"""Disk, permission and concurrency faults, injected in-process (the fast representatives).

Full disk: ``OSError(ENOSPC)`` injected at the write call (``ACTSPEC_FAULT``, see
:mod:`actspec_jax._io`); read-only folders: ``OSError(EROFS)`` injected at file creation (the
suite may run as root, which ignores permission bits). SIGKILLs of real subprocesses are in
``test_kills.py`` (slow).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax import _io
from actspec_jax.cli import main
from actspec_jax.problems import synthetic
from actspec_jax.runs.locks import FileLock, LockedError


@pytest.fixture(autouse=True)
def _fresh_fault_counts(monkeypatch):
    monkeypatch.setattr(_io, "_fault_counts", {})


def _problem():
    terms = {(0,): 0.8, (1, 2): -0.6, (3, 4, 5): 0.5, (6,): 0.3}
    return synthetic.planted_mlp(8, terms, distractor=0.01, key=jax.random.key(3), num_inputs=1).problem()


def _read_only(monkeypatch, folder):
    """Files cannot be created below ``folder`` (``EROFS``, as on a read-only mount; root ignores
    permission bits, so the fault is injected at ``tempfile.mkstemp``)."""
    real = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(folder)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)


def _same(a, b):
    return (
        a.subset_tuples() == b.subset_tuples()
        and np.array_equal(a.coefficients, b.coefficients)
        and np.array_equal(a.stderr, b.stderr)
    )


def test_full_disk_during_a_gl_checkpoint_keeps_the_previous_one_byte_for_byte(tmp_path, monkeypatch):
    problem, key = _problem(), jax.random.key(7)
    solver = asj.GoldreichLevin(tau=0.1, block_size=2)
    reference = solver(problem, key=key)
    path = tmp_path / "gl.npz"
    monkeypatch.setenv("ACTSPEC_FAULT", "checkpoint:mid:enospc:3")
    with pytest.raises(_io.OutputWriteError) as info:
        solver(problem, key=key, checkpoint_path=path)
    assert str(path) in str(info.value) and "No space left" in str(info.value)
    assert info.value.errno == errno.ENOSPC
    before = path.read_bytes()  # the 2nd checkpoint: the 3rd write failed half-way
    assert not list(tmp_path.glob(".*.tmp")), "the torn temporary file must be removed"
    _io._fault_counts.clear()
    monkeypatch.setenv("ACTSPEC_FAULT", "checkpoint:rename:enospc:1")
    with pytest.raises(_io.OutputWriteError):
        solver(problem, key=key, checkpoint_path=path)
    assert path.read_bytes() == before
    monkeypatch.delenv("ACTSPEC_FAULT")
    assert _same(solver(problem, key=key, checkpoint_path=path), reference)


def test_full_disk_during_an_exact_checkpoint(tmp_path, monkeypatch):
    problem = _problem()
    path = tmp_path / "exact.npz"
    solver = asj.ExactSolver(chunk_size=32, devices=1, checkpoint_every_s=0.0)
    monkeypatch.setenv("ACTSPEC_FAULT", "checkpoint:mid:enospc:*")
    with pytest.raises(_io.OutputWriteError, match=str(path)):
        solver(problem, checkpoint_path=path)
    assert not path.exists() and not list(tmp_path.iterdir())
    monkeypatch.delenv("ACTSPEC_FAULT")
    np.testing.assert_array_equal(solver(problem, checkpoint_path=path).dense, solver(problem).dense)


RUN = ["run", "--model", "mnist_mlp", "--classes", "2", "--count", "3", "--units", "0,1,2,3,4,5"]
RUN += ["--solver", "exact", "--no-faithfulness", "--r2-masks", "32", "--quiet", "--checkpoint-every", "0"]


def test_read_only_report_folder_is_found_before_any_computation(tmp_path, monkeypatch, capsys):
    import actspec_jax.runs.pipeline as pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("the solver must not run")

    monkeypatch.setattr(pipeline, "_solve", no_work)
    _read_only(monkeypatch, tmp_path / "ro")
    code = main([*RUN, "--out", str(tmp_path / "ro"), "--checkpoint", str(tmp_path / "c.npz")])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "ro") in err and "nothing was computed" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a "folder" below a file: cannot be created
    code = main([*RUN, "--out", str(blocker / "sub")])
    err = capsys.readouterr().err
    assert code == 2 and str(blocker / "sub") in err and "not writable" in err and "Traceback" not in err


def test_exact_run_whose_report_cannot_be_written_keeps_checkpoint_and_spectrum(
    tmp_path, monkeypatch, capsys
):
    ckpt, out = tmp_path / "exact.npz", tmp_path / "r"
    monkeypatch.setenv("ACTSPEC_FAULT", "figure:mid:enospc:1")
    code = main([*RUN, "--out", str(out), "--checkpoint", str(ckpt)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "top_joint_subsets.png" in err and "No space left" in err
    assert f"saved to {out / 'spectrum.json'}" in err
    assert ("was kept" in err) == ckpt.exists()  # a one-chunk solve never needed a checkpoint
    saved = asj.Spectrum.load(out / "spectrum.json")
    assert not (out / "top_joint_subsets.png").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # every results write fails: the spectrum goes to the temporary folder or standard output
    _io._fault_counts.clear()
    monkeypatch.setenv("ACTSPEC_FAULT", "results:mid:enospc:*")
    code = main([*RUN, "--out", str(tmp_path / "s"), "--checkpoint", str(ckpt)])
    captured = capsys.readouterr()
    assert code == 2 and "printed above" in captured.err
    printed = json.loads(captured.out.strip().splitlines()[-2])
    assert printed["coefficients"] == saved.coefficients.tolist()
    monkeypatch.delenv("ACTSPEC_FAULT")
    assert main([*RUN, "--out", str(out), "--checkpoint", str(ckpt)]) == 0
    assert not ckpt.exists(), "removed once the report is written"


def test_a_corrupt_checkpoint_offers_restart(tmp_path, capsys):
    ckpt = tmp_path / "exact.npz"
    ckpt.write_bytes(b"torn")
    code = main([*RUN, "--out", str(tmp_path / "r"), "--checkpoint", str(ckpt)])
    err = capsys.readouterr().err
    assert code == 2 and str(ckpt) in err and "--restart" in err and "delete" in err
    assert main([*RUN, "--out", str(tmp_path / "r"), "--checkpoint", str(ckpt), "--restart"]) == 0


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_locks_refuse_a_live_holder_and_take_over_a_stale_one(tmp_path, capsys):
    out, ckpt = tmp_path / "r", tmp_path / "c.npz"
    with FileLock(ckpt, "checkpoint"):
        with pytest.raises(LockedError, match=f"process {os.getpid()}"):
            FileLock(ckpt, "checkpoint").acquire()
        code = main([*RUN, "--out", str(out), "--checkpoint", str(ckpt)])
        err = capsys.readouterr().err
        assert code == 2 and f"in use by process {os.getpid()}" in err and str(ckpt) + ".lock" in err
    assert not (tmp_path / "c.npz.lock").exists()
    dead = _dead_pid()
    import socket

    stale = {"pid": dead, "host": socket.gethostname(), "started": "earlier", "command": "killed"}
    (tmp_path / "c.npz.lock").write_text(json.dumps(stale))
    lock = FileLock(ckpt, "checkpoint").acquire()
    assert lock.took_over["pid"] == dead and json.loads(lock.path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not lock.path.exists()
    foreign = {**stale, "host": "some-other-host"}
    (out / ".actspec.lock").parent.mkdir(parents=True, exist_ok=True)
    (out / ".actspec.lock").write_text(json.dumps(foreign))
    with pytest.raises(LockedError, match="cannot be checked from here"):
        FileLock(out, "report folder", folder=True).acquire()


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    target = tmp_path / "ck.npz"
    dead, alive = _dead_pid(), os.getpid() + 0
    (tmp_path / f".ck.npz.{dead}.abc123.tmp").write_bytes(b"x" * 10)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f".ck.npz.{other.pid}.zz.tmp").write_bytes(b"y")
        _io.atomic_write(target, lambda h: h.write(b"data"), label="checkpoint")
        _io.clean_stale_temps(target)
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == [f".ck.npz.{other.pid}.zz.tmp", "ck.npz"], names
    finally:
        other.kill()
        other.wait()
    assert alive == os.getpid()
    _io.clean_stale_temps(tmp_path, folder=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]


DEMO = ["demo", "--solver", "exact", "--units", "6", "--inputs", "4", "--quiet"]


def test_demo_in_a_read_only_folder_fails_fast_with_nothing_computed(tmp_path, monkeypatch, capsys):
    import time

    import actspec_jax.commands.demo as demo

    def no_work(*args, **kwargs):
        raise AssertionError("the demo must not start computing")

    monkeypatch.setattr(demo, "_run_demo", no_work)
    _read_only(monkeypatch, tmp_path / "ro")
    started = time.perf_counter()
    code = main([*DEMO, "--out", str(tmp_path / "ro")])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "ro") in err and "nothing was computed" in err
    assert time.perf_counter() - started < 5.0


def test_demo_on_a_full_disk_saves_its_spectrum_first_and_names_it(tmp_path, monkeypatch, capsys):
    out = tmp_path / "d"
    monkeypatch.setenv("ACTSPEC_FAULT", "figure:mid:enospc:1")
    code = main([*DEMO, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left" in err and "Traceback" not in err
    assert f"saved to {out / 'spectrum.json'}" in err
    saved = asj.Spectrum.load(out / "spectrum.json")
    assert saved.n == 6 and saved.num_terms > 0
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # nothing writable in the folder: the spectrum goes to the temporary folder or standard output
    _io._fault_counts.clear()
    monkeypatch.setenv("ACTSPEC_FAULT", "results:mid:enospc:*")
    code = main([*DEMO, "--out", str(tmp_path / "e")])
    captured = capsys.readouterr()
    assert code == 2 and "printed above" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["coefficients"] == saved.coefficients.tolist()


def test_demo_removes_a_killed_writers_temporary_files(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    dead = 2**22 + 12345  # no such process
    stale = out / f".summary.md.{dead}.abcd.tmp"
    stale.write_text("torn")
    assert main([*DEMO, "--out", str(out)]) == 0
    assert not stale.exists() and (out / "summary.md").exists()


@pytest.mark.parametrize("command", [["layers", "--preset", "mnist"], ["concepts", "--preset", "mnist"]])
def test_layers_and_concepts_lock_their_folder_before_any_work(tmp_path, monkeypatch, capsys, command):
    import actspec_jax.commands.concepts as concepts
    import actspec_jax.commands.layers as layers

    def no_work(*args, **kwargs):
        raise AssertionError("must not start computing")

    monkeypatch.setattr(layers, "_run_layers", no_work)
    monkeypatch.setattr(concepts, "_run_concepts", no_work)
    out = tmp_path / "busy"
    with FileLock(out, "report folder", folder=True):
        code = main([*command, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and str(out) in err and "Traceback" not in err
