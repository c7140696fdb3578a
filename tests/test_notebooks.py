"""Execute every notebook in ``notebooks/`` top to bottom with tiny sizes (``ACTSPEC_TINY=1``).

Parametrised over the files present, so new notebooks are picked up automatically. Notebooks
are committed without outputs (checked here too), so a failing cell is always a real failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# What a notebook must print besides running (its own checks of the analysis it shows).
EXPECTED_OUTPUT = {
    "04_bring_your_own_model": [
        "AxisError: layer 'attn' has shape",
        "{attn.head[",
        "resid@pos3.dir[0]",
        "all directions kept",
    ],
    "05_concepts_and_layers": ["all concepts kept", "reference 0.55761", "NegativeActivationError"],
    "06_benchmarks_colab": ["tiny mode: True", "| benchmark | ours | baseline (same run) |"],
    "07_language_model": ["n = 1024 latents; all kept", "largest difference from the exact spectrum"],
}


def _text_outputs(nb) -> str:
    return "\n".join(
        str(out.get("text", ""))
        + str(out.get("data", {}).get("text/markdown", ""))
        + str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names and all(name[:2].isdigit() for name in names), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    stale = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not stale, f"{path.name}: commit notebooks without outputs (cells {stale})"
    monkeypatch.setenv("ACTSPEC_TINY", "1")
    # The kernel imports the checkout under test (it is not necessarily pip-installed).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},  # run where a user opens it: notebooks/
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed under ACTSPEC_TINY=1:\n{str(err)[-3000:]}")
    text = _text_outputs(nb)
    for expected in EXPECTED_OUTPUT.get(path.stem, []):
        assert expected in text, f"{path.name}: expected {expected!r} in the outputs"
