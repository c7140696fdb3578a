"""Multi-host sharding (exact, GL, compressive) with two local processes (``jax.distributed`` on CPU)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_give_the_one_device_spectrum():
    port = free_port()
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "multihost_child.py"), str(pid), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for pid in (0, 1)
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            if proc.returncode != 0:
                pytest.fail(f"process failed ({proc.returncode}):\n{err[-3000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert sorted(r["process"] for r in results) == [0, 1]
    for r in results:
        assert (r["processes"], r["global_devices"], r["local_devices"]) == (2, 4, 2)
        assert r["solver_devices"] == 4
        assert r["max_diff"] <= 1e-6
        assert r["truth_err"] <= 1e-5
        assert r["gl_devices"] == 4 and r["gl_same"] is True
        assert [2, 9] in r["gl_found"] and [5] in r["gl_found"]
        # compressive: the same spectrum, and each process evaluated half of the 2,000-mask plan
        assert r["cs_devices"] == 4 and r["cs_same_subsets"] is True and r["cs_max_diff"] <= 1e-6
        assert r["cs_rows_here"] == [2000, 1000]
        assert [2, 9] in r["cs_found"] and [5] in r["cs_found"]
