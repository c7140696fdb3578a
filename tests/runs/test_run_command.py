"""``actspec run``: tiny end-to-end runs, presets, and every bad input named in the issue."""

import json
import re

import numpy as np
import pytest
from marks import incomplete_expected

import actspec_jax as asj
from actspec_jax.cli import main
from actspec_jax.runs import PRESETS, config_from_preset


def _run(argv, capsys):
    code = main(["run", *argv, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_exact_mnist_run_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["--model", "mnist_mlp", "--layer", "relu_0", "--classes", "3", "--count", "6", "--units", "top:5"]
    argv += ["--solver", "exact", "--faithfulness", "--faithfulness-k", "6", "--random-orderings", "3"]
    code, printed, _ = _run([*argv, "--out", str(out)], capsys)
    assert code == 0, printed
    assert "Report written to" in printed and "R² of the constant + top" in printed
    for name in ["spectrum.json", "run.json", "summary.md", "report.html", "faithfulness.json"]:
        assert (out / name).is_file(), name
    for name in [
        "top_joint_subsets",
        "pair_matrix",
        "subset_sizes",
        "energy_by_degree",
        "top_coefficients",
        "participation_heatmap",
        "faithfulness",
    ]:
        assert (out / f"{name}.png").stat().st_size > 1000, name
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 7
    record = json.loads((out / "run.json").read_text())
    assert record["inputs"]["count"] == 6 and record["inputs"]["classes"] == [3]
    assert record["problem"]["output"] == "log_prob:3" and len(record["problem"]["units"]) == 5
    assert record["model"]["test_accuracy"] == pytest.approx(0.9773)
    faith = record["faithfulness"]
    assert set(faith["drops"]) == {
        "spectral: top subsets",
        "spectral: greedy",
        "attribution (grad×act)",
        "leave-one-out",
    }
    # the spectral ordering uses the chosen units' own layer indices
    assert set(faith["orders"]["spectral: top subsets"]) <= set(record["problem"]["units"])
    spec = asj.Spectrum.load(out / "spectrum.json")
    assert spec.n == 5 and spec.problem["units"] == record["problem"]["units"]
    summary = (out / "summary.md").read_text()
    assert "97.73 %" in summary and "Faithfulness" in summary


def test_exact_run_accepts_a_checkpoint_and_removes_it_when_done(tmp_path, capsys):
    argv = ["--model", "mnist_mlp", "--classes", "2", "--count", "3", "--units", "0,1,2,3,4,5"]
    argv += ["--solver", "exact", "--no-faithfulness", "--no-firing", "--r2-masks", "32"]
    ckpt = tmp_path / "exact.npz"
    code, printed, err = _run([*argv, "--checkpoint", str(ckpt), "--out", str(tmp_path / "r")], capsys)
    assert code == 0, printed + err
    assert not ckpt.exists() and (tmp_path / "r" / "spectrum.json").is_file()
    ckpt.write_bytes(b"garbage")  # a corrupt file is named, with the fix
    code, _, err = _run([*argv, "--checkpoint", str(ckpt), "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and "not a readable checkpoint" in err and "Delete" in err


@incomplete_expected  # GL's default beam fills on MNIST
@pytest.mark.slow
def test_gl_run_resumes_from_its_checkpoint(tmp_path, capsys):
    argv = ["--model", "mnist_mlp", "--classes", "1", "--count", "4", "--units", "0,1,2,3,4,5,6,7,8,9,10,11"]
    argv += ["--solver", "gl", "--tau", "0.2", "--samples", "16", "--leaf-samples", "256", "--r2-masks", "64"]
    ckpt = tmp_path / "gl.npz"
    first = tmp_path / "a"
    assert _run([*argv, "--checkpoint", str(ckpt), "--out", str(first)], capsys)[0] == 0
    assert ckpt.is_file()
    second = tmp_path / "b"
    assert _run([*argv, "--checkpoint", str(ckpt), "--out", str(second)], capsys)[0] == 0
    a = json.loads((first / "spectrum.json").read_text())
    b = json.loads((second / "spectrum.json").read_text())
    assert a["subsets"] == b["subsets"] and np.allclose(a["coefficients"], b["coefficients"])
    assert b["solver"]["resumed_from_level"] == b["solver"]["num_levels"]


@pytest.mark.slow
def test_paper_run_reports_held_out_data_r2(tmp_path, capsys):
    out = tmp_path / "p"
    argv = [
        "--preset",
        "mnist-paper",
        "--target",
        "0",
        "--count",
        "300",
        "--samples",
        "64",
        "--out",
        str(out),
    ]
    code, printed, _ = _run(argv, capsys)
    assert code == 0
    assert "R² on held-out train rows" in printed
    record = json.loads((out / "run.json").read_text())
    r2 = record["metrics"]["data_r2_heldout"]
    assert set(r2) == {"listed", "refit"} and np.isfinite(r2["refit"])
    assert record["config"]["solver"] == "paper" and record["problem"]["output"] == "indicator:0"


def test_transformer_heads_run_counts_and_reports_truncation(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["--model", "sentiment_transformer", "--layer", "block_1/attn/heads", "--classes", "0,1"]
    argv += ["--per-class", "1", "--context", "8", "--solver", "exact", "--firing", "--out", str(out)]
    code, printed, _ = _run(argv, capsys)
    assert code == 0
    assert "truncated 2 review(s)" in printed and "were truncated" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["inputs"]["truncated"] == 2 and record["inputs"]["encoded_length"] == 8
    assert record["inputs"]["tokens_dropped"] > 0
    assert (
        "2 of 2 reviews longer than the context of 8 tokens were truncated"
        in (out / "summary.md").read_text()
    )
    assert record["firing"] and record["firing"][0]["examples"]
    assert "<mark>" in (out / "report.html").read_text()


def test_language_model_sae_preset_runs_end_to_end(tmp_path, capsys):
    """``lm-sae`` at a small budget: the SAE's 1,024 latents, windows followed by 'movie', its
    log-probability at the last position, a report with the held-out R²."""
    out = tmp_path / "lm"
    argv = ["--preset", "lm-sae", "--count", "2", "--max-evaluations", "2500", "--r2-masks", "256"]
    code, printed, _ = _run([*argv, "--out", str(out)], capsys)
    assert code == 0, printed
    assert "2 imdb test windows of 32 tokens followed by 'movie'" in printed
    assert "n = 1024 SAE latents of block_0/resid" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["problem"]["sae"] == {"layer": "block_0/resid", "latents": 1024}
    assert record["problem"]["output"] == f"log_prob:{record['inputs']['next_token_id']}@last"
    assert record["metrics"]["r2_heldout_masks"] > 0.8
    summary = (out / "summary.md").read_text()
    assert "'movie' (id" in summary and record["problem"]["output"] in summary.splitlines()[0]
    for name in ("lm-heads", "lm-mlp"):
        assert config_from_preset(name).model == "movie_lm"
    from actspec_jax.models import load_pretrained
    from actspec_jax.runs.inputs import load_inputs

    lm = load_pretrained("movie_lm")
    capital = load_inputs(lm, config_from_preset("lm-mlp", next_token="Movie", count=2))
    assert capital.info["next_token_id"] == lm.tokenizer.token_id("movie")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "lm-mlp", "--next-token", "zzzq"], "not one word of the language model's vocabulary"),
        (["--preset", "lm-mlp", "--classes", "1"], "takes windows followed by next_token \\(--next-token\\)"),
        (["--preset", "lm-sae", "--layer", "block_1/resid"], "SAE reads 'block_0/resid'.*--sae"),
        (["--preset", "lm-mlp", "--count", "100000"], "windows are followed by 'movie'; asked for 100000"),
        (
            ["--model", "mnist_mlp", "--sae"],
            r"next_token and sae \(--next-token, --sae\) are for the language model",
        ),
        (
            [
                "--model",
                "sentiment_transformer",
                "--layer",
                "block_7/mlp/act",
                "--per-class",
                "1",
                "--classes",
                "1",
            ],
            "no layer 'block_7/mlp/act'. Available layers: .*'block_0/mlp/act",
        ),
        (
            ["--model", "sentiment_transformer", "--layer", "pooled", "--output", "logit:5", "--count", "1"],
            "class 5 is out of range; the model has 2 classes",
        ),
        (["--model", "mnist_mlp", "--output", "log_prob:10", "--count", "2"], "class 10 is out of range"),
        (["--model", "mnist_mlp", "--classes", "12"], "class 12 is out of range; the model has 10 classes"),
        (["--model", "mnist_mlp", "--count", "0"], "input batch would be empty"),
        (
            ["--model", "sentiment_transformer", "--max-review-tokens", "2", "--layer", "pooled"],
            "the input batch is empty: no input of imdb test with at most 2 tokens",
        ),
        (["--model", "sentiment_transformer", "--context", "300"], "context must be in 1..256"),
        (["--model", "mnist_mlp", "--units", "top:0"], "top:K"),
        (["--model", "mnist_mlp", "--count", "2", "--solver", "exact"], "2\\^256|n=256|too large|exceeds"),
        (["--model", "no_such_model"], "unknown pretrained model"),
        (["--model", "mnist_mlp", "--layer", "relu_0", "--layer", "logits", "--units", "1"], "single layer"),
    ],
)
def test_bad_input_gives_a_clear_error(argv, message, capsys, tmp_path):
    code, _, err = _run([*argv, "--out", str(tmp_path / "x")], capsys)
    assert code == 2
    assert "actspec run: error:" in err
    assert re.search(message, err), err


def test_presets_fill_in_the_target_and_yield_to_explicit_options():
    cfg = config_from_preset("mnist-mask", target=3)
    assert cfg.classes == (3,) and cfg.output == "log_prob:3" and cfg.solver == "gl" and cfg.tau == 0.05
    cfg = config_from_preset("mnist-mask", target=3, output="logit:3", count=None)
    assert cfg.output == "logit:3" and cfg.count == 100  # None means "not given"
    assert config_from_preset("sentiment-all-heads").layers == ("block_0/attn/heads", "block_1/attn/heads")
    assert all(isinstance(desc, str) and settings for desc, settings in PRESETS.values())
    with pytest.raises(asj.ActSpecError, match="unknown preset"):
        config_from_preset("nope")
    with pytest.raises(SystemExit):
        main(["run", "--preset", "nope"])
