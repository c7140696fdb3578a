"""Notebook 06 executes end to end in tiny mode (ACTSPEC_TINY=1) with nbclient."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06_benchmarks_colab.ipynb"


def test_benchmark_notebook_runs_in_tiny_mode(monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("ACTSPEC_TINY", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/markdown", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "tiny mode: True" in text
    assert "| benchmark | ours | baseline (same run) |" in text
    assert "FWHT, n = 12" in text and "exact spectrum, MNIST MLP, n = 10" in text
    assert any(
        "image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert os.environ["ACTSPEC_TINY"] == "1"
