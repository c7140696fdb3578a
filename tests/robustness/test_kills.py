"""Hard kills of real ``actspec run --checkpoint`` processes, and two processes on one checkpoint.

Each run is a subprocess (``python -m actspec_jax.cli run …``) on a small problem (8 MNIST
units). It is SIGKILLed at a named point — inside a checkpoint write (half the bytes
written, or all written but not renamed), during a level, inside the report write — through
the ``ACTSPEC_FAULT`` test hook of :mod:`actspec_jax._io` or from outside; the same command is
then rerun, and its spectrum must equal the uninterrupted run's exactly (same key → same
subsets, coefficients, standard errors, evaluation counts), with no temporary or lock file
left behind. Slow: every run starts a fresh Python + JAX.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from robustness._cli_child import child_env as _env

import actspec_jax as asj

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GL = ["--model", "mnist_mlp", "--classes", "2", "--count", "3", "--units", "0,1,2,3,4,5,6,7"]
GL += ["--solver", "gl", "--tau", "0.05", "--block-bits", "2", "--no-faithfulness", "--r2-masks", "32"]
EXACT = [*GL[:8], "--solver", "exact", "--no-faithfulness", "--checkpoint-every", "0"]


def _cmd(args: list[str], out: Path, ckpt: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "actspec_jax.cli",
        "run",
        *args,
        "--out",
        str(out),
        "--checkpoint",
        str(ckpt),
    ]


def _run(args, out, ckpt, fault=None) -> subprocess.CompletedProcess:
    cmd = [*_cmd(args, out, ckpt), "--quiet"]
    return subprocess.run(cmd, env=_env(fault), capture_output=True, text=True, timeout=600, cwd=out.parent)


def _same(a: asj.Spectrum, b: asj.Spectrum) -> None:
    assert a.subset_tuples() == b.subset_tuples()
    np.testing.assert_array_equal(a.coefficients, b.coefficients)
    if a.stderr is not None or b.stderr is not None:
        np.testing.assert_array_equal(a.stderr, b.stderr)
    assert a.solver.get("evaluations") == b.solver.get("evaluations")


def _no_leftovers(*folders: Path) -> None:
    for folder in folders:
        left = [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock"))]
        assert not left, left


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    done = _run(GL, root / "r", root / "ck.npz")
    assert done.returncode == 0, done.stderr
    return asj.Spectrum.load(root / "r" / "spectrum.json")


@pytest.mark.parametrize(
    "fault",
    ["checkpoint:mid:kill:2", "checkpoint:rename:kill:3", "figure:mid:kill:2", "json:rename:kill:1"],
)
def test_killed_gl_run_resumes_to_the_identical_spectrum(tmp_path, baseline, fault):
    out, ckpt = tmp_path / "r", tmp_path / "ck.npz"
    killed = _run(GL, out, ckpt, fault)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    assert list(tmp_path.rglob(".*.tmp")), "killed inside a write: its temporary file is left"
    resumed = _run(GL, out, ckpt)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same(asj.Spectrum.load(out / "spectrum.json"), baseline)
    _no_leftovers(tmp_path)


def test_gl_run_killed_from_outside_during_a_level(tmp_path, baseline):
    out, ckpt = tmp_path / "r", tmp_path / "ck.npz"
    proc = subprocess.Popen(
        _cmd(GL, out, ckpt), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the search should have written its first checkpoint"
    resumed = _run(GL, out, ckpt)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same(asj.Spectrum.load(out / "spectrum.json"), baseline)
    _no_leftovers(tmp_path)


def test_exact_run_killed_inside_its_report_keeps_its_result(tmp_path):
    ref = _run(EXACT, tmp_path / "ref", tmp_path / "ref.npz")
    assert ref.returncode == 0, ref.stderr[-3000:]
    out, ckpt = tmp_path / "r", tmp_path / "ck.npz"
    killed = _run(EXACT, out, ckpt, "figure:mid:kill:1")
    assert killed.returncode == -signal.SIGKILL
    assert (
        asj.Spectrum.load(out / "spectrum.json").to_dict()
        == asj.Spectrum.load(tmp_path / "ref" / "spectrum.json").to_dict()
    )
    resumed = _run(EXACT, out, ckpt)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same(asj.Spectrum.load(out / "spectrum.json"), asj.Spectrum.load(tmp_path / "ref" / "spectrum.json"))
    assert not ckpt.exists()
    _no_leftovers(tmp_path)


def test_two_processes_on_one_checkpoint_exactly_one_runs(tmp_path, baseline):
    out, ckpt = tmp_path / "a", tmp_path / "ck.npz"
    first = subprocess.Popen(
        _cmd(GL, out, ckpt),
        env=_env("checkpoint:rename:pause:2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lock = tmp_path / "ck.npz.lock"
    deadline = time.monotonic() + 300
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    try:
        second = _run(GL, tmp_path / "b", ckpt)  # same checkpoint, other folder
        third = _run(["--solver", "exact", *GL[:8]], out, tmp_path / "other.npz")  # same folder
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2 and f"in use by process {first.pid}" in second.stderr, second.stderr
    assert str(lock) in second.stderr and "Traceback" not in second.stderr
    assert third.returncode == 2 and "report folder" in third.stderr and str(first.pid) in third.stderr
    holder = json.loads(lock.read_text())  # the killed run's lock is now stale
    assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
    taken = _run(GL, out, ckpt)
    assert taken.returncode == 0, taken.stderr[-3000:]
    _same(asj.Spectrum.load(out / "spectrum.json"), baseline)
    _no_leftovers(tmp_path)


def test_ctrl_c_says_how_to_resume_without_a_traceback(tmp_path):
    out, ckpt = tmp_path / "r", tmp_path / "ck.npz"
    env = _env("checkpoint:rename:pause:2")
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = subprocess.Popen(_cmd(GL, out, ckpt), env=env, **pipes)
    lock = tmp_path / "ck.npz.lock"
    deadline = time.monotonic() + 300
    while not (ckpt.exists() and lock.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err
    assert not lock.exists(), "the lock is released on the way out"
