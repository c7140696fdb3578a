"""``actspec run --solver compressive`` and ``actspec demo``: killed, terminated and resumed.

The subprocess tests are slow (each run starts Python + JAX); the in-process ones check the
SIGTERM path and the interrupt hints of every command."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from robustness._cli_child import child_env as _env

import actspec_jax as asj
from actspec_jax import cli

ROOT = Path(__file__).resolve().parents[2]
UNITS = ",".join(str(i) for i in range(24))
CS = ["--model", "mnist_mlp", "--classes", "2", "--count", "3", "--units", UNITS, "--solver", "compressive"]
CS += ["--max-degree", "2", "--no-faithfulness", "--r2-masks", "32", "--checkpoint-every", "0"]


def _cmd(budget: int, out: Path, ckpt: Path) -> list[str]:
    return [sys.executable, "-m", "actspec_jax.cli", "run", *CS, "--max-evaluations", str(budget),
            "--out", str(out), "--checkpoint", str(ckpt), "--quiet"]  # fmt: skip


def _run(budget: int, out: Path, ckpt: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cmd(budget, out, ckpt), env=_env(fault), capture_output=True, text=True, timeout=600, cwd=out.parent
    )


def _same(a: asj.Spectrum, b: asj.Spectrum) -> None:
    assert a.subset_tuples() == b.subset_tuples()
    np.testing.assert_array_equal(a.coefficients, b.coefficients)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert a.solver["evaluations"] == b.solver["evaluations"]


def _no_leftovers(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock"))]
    assert not left, left


def _terminated_in_first_ledger_write(cmd: list[str], ledger: Path) -> tuple[subprocess.Popen, str]:
    """Start ``cmd`` paused inside its first ledger write (test hook), SIGTERM it there; → stderr."""
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = subprocess.Popen(cmd, env=_env("checkpoint:rename:pause:1"), **pipes)
    deadline = time.monotonic() + 300
    temps = f".{ledger.name}.*.tmp"
    while not list(ledger.parent.glob(temps)) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert list(ledger.parent.glob(temps)), "the run never reached its first ledger write"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc, err


# ---------------------------------------------------------------- in process (fast)
def test_sigterm_unwinds_like_ctrl_c_with_exit_143(monkeypatch, capsys) -> None:
    """SIGTERM during a command raises where the process is (finally blocks run), and main exits
    143 with the command's own resume hint; the previous handler is restored."""
    ran_finally = []

    def command(args: argparse.Namespace) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            return 0
        finally:
            ran_finally.append(True)

    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint")
    parser.set_defaults(func=command, command="run")
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["--checkpoint", "x.npz"]) == 143
    assert ran_finally == [True] and signal.getsignal(signal.SIGTERM) is before
    err = capsys.readouterr().err
    assert "terminated (SIGTERM); rerun the same command to resume" in err


@pytest.mark.parametrize(
    "namespace, hint",
    [
        ({"checkpoint": "c.npz"}, "rerun the same command to resume"),
        ({"checkpoint": None}, "rerun with --checkpoint FILE"),
        ({"resumes_by_default": True}, "rerun the same command to resume (--fresh starts over)"),
        ({}, "rerun the same command to start again"),
    ],
)
def test_interrupt_hints_name_only_flags_the_command_takes(namespace, hint) -> None:
    assert cli.interrupt_hint(argparse.Namespace(**namespace)).startswith(hint)


def test_run_parser_takes_the_compressive_solver_and_its_budget() -> None:
    args = cli.build_parser().parse_args(["run", "--solver", "compressive", "--max-evaluations", "5000"])
    assert args.solver == "compressive" and args.max_evaluations == 5000


def test_exact_solver_refuses_a_budget(tmp_path) -> None:
    from actspec_jax.runs import config_from_preset, run

    cfg = config_from_preset(None, units=(0, 1, 2), count=2, classes=(2,), solver="exact", max_evaluations=10)
    with pytest.raises(asj.ActSpecError, match="max_evaluations does not apply to the exact solver"):
        run(dataclasses_replace(cfg, out=str(tmp_path / "r")), progress=False, echo=None)


def dataclasses_replace(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


# ---------------------------------------------------------------- subprocesses (slow)
@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("cs_baseline")
    done = _run(2000, root / "r", root / "ledger.npz")
    assert done.returncode == 0, done.stderr[-3000:]
    return asj.Spectrum.load(root / "r" / "spectrum.json")


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["checkpoint:mid:kill:1", "checkpoint:rename:kill:2", "json:rename:kill:1"])
def test_killed_compressive_run_resumes_to_the_identical_spectrum(tmp_path, baseline, fault) -> None:
    """SIGKILL inside a ledger write (half written / written, not renamed) or inside the report's
    write: the rerun returns the uninterrupted run's spectrum, bit for bit, and leaves nothing."""
    out, ckpt = tmp_path / "r", tmp_path / "ledger.npz"
    killed = _run(2000, out, ckpt, fault)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    resumed = _run(2000, out, ckpt)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same(asj.Spectrum.load(out / "spectrum.json"), baseline)
    _no_leftovers(tmp_path)


@pytest.mark.slow
def test_raised_budget_evaluates_only_the_new_masks(tmp_path, baseline) -> None:
    """2k then 4k on one ledger: 2k new evaluations, the fresh 4k run's spectrum."""
    out, ckpt = tmp_path / "r", tmp_path / "ledger.npz"
    assert _run(2000, out, ckpt).returncode == 0
    grown = _run(4000, out, ckpt)
    assert grown.returncode == 0, grown.stderr[-3000:]
    spectrum = asj.Spectrum.load(out / "spectrum.json")
    ledger = spectrum.solver["ledger"]
    assert ledger["reused"] == 2000 and ledger["evaluated"] == 2000
    fresh = _run(4000, tmp_path / "f", tmp_path / "fresh.npz")
    assert fresh.returncode == 0
    other = asj.Spectrum.load(tmp_path / "f" / "spectrum.json")
    assert spectrum.subset_tuples() == other.subset_tuples()
    np.testing.assert_allclose(spectrum.coefficients, other.coefficients, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_sigterm_saves_the_ledger_and_releases_the_locks(tmp_path, baseline) -> None:
    out, ckpt = tmp_path / "r", tmp_path / "ledger.npz"
    proc, err = _terminated_in_first_ledger_write(_cmd(2000, out, ckpt), ckpt)
    assert proc.returncode == 143, err[-3000:]
    assert "terminated (SIGTERM); rerun the same command to resume" in err and "Traceback" not in err
    assert ckpt.exists(), "the ledger is saved on the way out"
    _no_leftovers(tmp_path)
    resumed = _run(2000, out, ckpt)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    spectrum = asj.Spectrum.load(out / "spectrum.json")
    assert spectrum.solver["ledger"]["reused"] > 0
    _same(spectrum, baseline)


@pytest.mark.slow
def test_demo_checkpoints_into_its_folder_resumes_and_logs_no_carriage_returns(tmp_path) -> None:
    """SIGTERM → 143 with the demo's own hint, its ledger in the report folder, no lock left; the
    rerun re-uses the ledger; a non-terminal log holds one line per stage and no '\\r'."""
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "actspec_jax.cli", "demo", "--budget", "3000", "--inputs", "4",
           "--profile-evaluations", "0", "--out", str(out)]  # fmt: skip
    proc, err = _terminated_in_first_ledger_write(cmd, out / "compressive_ledger.npz")
    assert proc.returncode == 143, err[-3000:]
    assert "terminated (SIGTERM); rerun the same command to resume (--fresh starts over)" in err
    assert (out / "compressive_ledger.npz").exists()
    _no_leftovers(out)
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\r" not in done.stdout + done.stderr
    assert "compressive evaluate: 3,000/3,000 masks" in done.stderr
    spectrum = asj.Spectrum.load(out / "spectrum.json")
    assert spectrum.solver["ledger"]["reused"] > 0
    _no_leftovers(out)


@pytest.mark.slow
def test_two_demos_on_one_folder_exactly_one_runs(tmp_path) -> None:
    """The second demo on a folder in use is refused (exit 2) and names the first's process."""
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "actspec_jax.cli", "demo", "--budget", "3000", "--inputs", "4",
           "--profile-evaluations", "0", "--out", str(out)]  # fmt: skip
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    first = subprocess.Popen(cmd, env=_env("checkpoint:rename:pause:1"), **pipes)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob(".compressive_ledger.npz.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
