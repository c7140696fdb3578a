"""``actspec concepts`` end to end at a tiny size on the shipped MNIST models."""

from __future__ import annotations

import json

import pytest

from actspec_jax.cli import main


def test_contribution_preset_writes_the_table(tmp_path, capsys):
    out = tmp_path / "contribution"
    argv = ["concepts", "--preset", "contribution", "--models", "mnist", "--out", str(out)]
    assert main([*argv, "--concepts", "2", "--fit-inputs", "60", "--inputs", "12"]) == 0
    printed = capsys.readouterr().out
    assert "relu_0" in printed and "relu_2" in printed and "Report written to" in printed
    doc = json.loads((out / "contribution.json").read_text())
    rows = doc["results"]["mnist"]["summaries"]
    assert [r["layer"] for r in rows] == ["relu_0", "relu_1", "relu_2"]
    assert all(r["concepts"] == 2 and r["inputs"] == 12 for r in rows)
    summary = (out / "summary.md").read_text()
    assert "Δlogit concept" in summary and "norm" in summary
    assert (out / "exemplars_mnist_concepts.png").exists() and (out / "report.html").exists()


@pytest.mark.slow
def test_mnist_spectrum_preset(tmp_path):
    out = tmp_path / "spectrum"
    argv = ["concepts", "--preset", "mnist", "--out", str(out), "--concepts", "4"]
    assert main([*argv, "--fit-inputs", "100", "--inputs", "8"]) == 0
    doc = json.loads((out / "spectrum.json").read_text())
    assert doc["n"] == 4 and doc["problem"]["kind"] == "ConceptProblem"
    assert doc["problem"]["output"] == "log_prob:7"


def test_bad_arguments(tmp_path, capsys):
    base = ["concepts", "--out", str(tmp_path)]
    assert main([*base, "--preset", "mnist", "--target", "11"]) == 2
    assert "--target must be a digit class" in capsys.readouterr().err
    assert main([*base, "--concepts", "0"]) == 2
    assert "--concepts must be at least 1" in capsys.readouterr().err
    assert main([*base, "--models", "mnist,cifar"]) == 2
    assert "cifar" in capsys.readouterr().err
    assert main([*base, "--preset", "mnist", "--concepts", "12", "--fit-inputs", "5"]) == 2
    assert "only 5 rows" in capsys.readouterr().err  # more concepts than fitting inputs
