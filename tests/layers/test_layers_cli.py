"""``actspec layers`` end to end at a tiny size on the shipped MNIST MLP."""

from __future__ import annotations

import json

import numpy as np

from actspec_jax.cli import main


def test_layers_preset_writes_gw_and_cka(tmp_path, capsys):
    out = tmp_path / "layers"
    assert main(["layers", "--preset", "mnist", "--inputs", "16", "--out", str(out)]) == 0
    doc = json.loads((out / "layers.json").read_text())
    assert doc["labels"] == ["dense_0", "relu_0", "logits"]
    D = np.asarray(doc["gw"])
    assert np.array_equal(D, D.T) and np.all(np.diag(D) == 0) and np.all(D[~np.eye(3, dtype=bool)] > 0)
    assert np.allclose(np.diag(doc["cka_linear"]), 1.0)
    assert "no 1/2" in doc["settings"]["convention"]
    assert (out / "gw_heatmap.png").exists() and "Report written to" in capsys.readouterr().out
    assert main(["layers", "--preset", "mnist", "--inputs", "2", "--out", str(out)]) == 2
    assert "--inputs must be at least 4" in capsys.readouterr().err
