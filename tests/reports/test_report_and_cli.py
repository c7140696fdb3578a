import json
import re

import jax.numpy as jnp
import numpy as np
import pytest
from marks import incomplete_expected

import actspec_jax as asj
from actspec_jax.cli import main
from actspec_jax.problems import synthetic
from actspec_jax.reports import plots
from actspec_jax.reports.report import Report, add_spectrum_sections


def test_report_folder_is_self_contained(tmp_path):
    spec = asj.ExactSolver()(synthetic.majority(5, [0, 1, 2, 3, 4]).problem)
    report = Report(tmp_path / "r", "Majority")
    add_spectrum_sections(report, spec, heatmap=True, heatmap_shape=(1, 5))
    report.save_spectrum(spec)
    html = report.write()
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 5 and "Majority" in page
    for name in ["summary.md", "spectrum.json", "energy_by_degree.png", "participation_heatmap.png"]:
        assert (tmp_path / "r" / name).exists()
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "interaction share" in summary
    # interaction-first: the joint subsets are ranked in a table of their own, with a figure
    joint = spec.select(min_degree=2)
    assert "Joint subsets (\\|S\\| ≥ 2)" in summary or "Joint subsets (|S| ≥ 2)" in summary
    assert f"{joint.num_terms:,} joint subsets are listed" in summary
    assert (tmp_path / "r" / "top_joint_subsets.png").exists()
    first = "{" + ", ".join(spec.neuron_labels[i] for i in joint.subset_tuples()[0]) + "}"
    assert f"| 1 | {first} |" in summary


def test_figures_draw_for_sparse_spectra_with_stderr():
    spec = asj.Spectrum.build(256, [(1, 5), (7,), ()], [0.4, -0.2, 0.1], stderr=[0.01, 0.01, 0.01])
    assert plots.plot_top_coefficients(spec).axes
    assert plots.plot_participation_heatmap(spec).axes  # 16×16 grid for 256 units
    assert plots.plot_subset_sizes(spec).axes
    with pytest.raises(ValueError, match="too small"):
        plots.plot_participation_heatmap(spec, shape=(2, 2))


def test_exact_demo_runs_end_to_end_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--solver", "exact", "--out", str(out), "--units", "6", "--inputs", "8", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Report written to" in printed and "listed terms: interaction share" in printed
    assert "joint subsets found: units that act together" in printed  # exact: every coefficient
    doc = json.loads((out / "spectrum.json").read_text())
    assert doc["n"] == 6 and doc["problem"]["output"] == "log_prob:7"
    assert (out / "report.html").exists() and (out / "top_coefficients.png").exists()


def test_cli_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--target", "12", "--quiet"]) == 2
    assert "--target must be a digit class" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path), "--solver", "exact", "--estimator", "paper", "--quiet"]) == 2
    assert "use it with --solver gl" in capsys.readouterr().err


def test_default_demo_recovers_the_whole_layer_under_its_budget(tmp_path, capsys):
    out = tmp_path / "default"
    assert main(["demo", "--out", str(out), "--inputs", "4", "--budget", "8000", "--quiet"]) == 0
    doc = json.loads((out / "spectrum.json").read_text())
    assert doc["n"] == 256 and doc["solver"]["name"] == "compressive"
    assert doc["solver"]["evaluations"] <= 8000  # the budget; the profile's masks are reported apart
    assert (out / "pair_matrix.png").exists() and (out / "subset_sizes.png").exists()
    assert not (out / "participation_heatmap.png").exists()  # hidden units have no spatial layout
    printed = capsys.readouterr().out
    r2_all = float(printed.split("held-out random masks: ")[1].split()[0])
    assert r2_all > 0.5  # measured 0.88 at 10k on 64 inputs: a broken decoder or refit falls far below
    assert "joint subsets recovered" in printed and "standard errors" in printed
    assert doc["solver"]["degree_profile"]["evaluations"] == 16384
    assert "of the variance sits in singletons" in printed and "degree  2:" in printed
    assert "Degree profile of the whole spectrum" in (out / "summary.md").read_text()
    _shares_agree_and_joint_subsets_are_tabled(out, printed)


def _shares_agree_and_joint_subsets_are_tabled(out, printed: str) -> None:
    """Every interaction share printed for one run (console, summary.md, report.html) is one of
    the two definitions, computed by one function each, on the saved result."""
    import re

    from actspec_jax.spectrum import share_percent

    spectrum = asj.load_results(out / "spectrum.json")
    listed = share_percent(spectrum.interaction_share())
    whole = share_percent(spectrum.degree_profile().interaction_share()[0])
    summary, page = (out / "summary.md").read_text(), (out / "report.html").read_text()
    for text in (printed, summary, page):
        shown = re.findall(r"interaction share[^0-9]{0,90}?([0-9.]+ %)", text)
        assert shown, text[:400]
        assert set(shown) <= {listed, whole}, (shown, listed, whole)
    assert f"interaction share of the whole spectrum {whole}" in printed
    assert f"interaction share of the listed terms {listed}" in printed
    for text in (summary, page):  # the ranked table of joint subsets
        assert re.search(r"Joint subsets \(\\?\|S\\?\| ≥ 2\)", text) and re.search(r"\\?\|c\\?\| / se", text)
    assert re.search(r"\{relu_0\[\d+\], relu_0\[\d+\]", summary)


@incomplete_expected  # GL's default beam fills on MNIST
@pytest.mark.slow
def test_gl_demo_covers_the_whole_layer(tmp_path, capsys):
    out = tmp_path / "gl"
    assert main(["demo", "--solver", "gl", "--out", str(out), "--inputs", "4", "--quiet"]) == 0
    doc = json.loads((out / "spectrum.json").read_text())
    assert doc["n"] == 256 and doc["solver"]["name"] == "goldreich_levin"
    assert (out / "subset_sizes.png").exists() and not (out / "participation_heatmap.png").exists()
    assert not list(out.glob("gl_checkpoint*.npz"))  # removed once the result is saved
    printed = capsys.readouterr().out
    assert "R² of the top-64-term approximation" in printed
    # the degree profile of the whole spectrum is printed next to the terms and reported
    assert doc["solver"]["degree_profile"]["evaluations"] == 16384
    assert "of the variance sits in singletons" in printed and "degree  2:" in printed
    assert "Degree profile of the whole spectrum" in (out / "summary.md").read_text()


@incomplete_expected  # the paper's settings fill the beam
@pytest.mark.slow
def test_paper_mode_demo(tmp_path, capsys):
    out = tmp_path / "paper"
    assert main(["demo", "--out", str(out), "--estimator", "paper", "--quiet"]) == 0
    doc = json.loads((out / "spectrum.json").read_text())
    assert doc["solver"]["estimator"] == "paper" and doc["n"] == 256
    assert "Joint subsets" in capsys.readouterr().out


def test_compilation_cache_folder_follows_the_environment(tmp_path):
    from pathlib import Path

    from actspec_jax.cli import compilation_cache_dir

    assert compilation_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "actspec_jax" / "xla"
    assert compilation_cache_dir({"ACTSPEC_COMPILATION_CACHE": str(tmp_path / "cc")}) == tmp_path / "cc"
    for off in ("off", "0", "", "false"):
        assert compilation_cache_dir({"ACTSPEC_COMPILATION_CACHE": off}) is None
    # JAX configured by the user: left alone
    assert compilation_cache_dir({"JAX_COMPILATION_CACHE_DIR": "/elsewhere"}) is None
    assert isinstance(compilation_cache_dir({}), Path)


def test_a_command_turns_on_the_compilation_cache(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "ACTSPEC_COMPILATION_CACHE": str(tmp_path / "cc"),
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        "JAX_PLATFORMS": "cpu",
    }
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    argv = ["demo", "--solver", "exact", "--units", "4", "--inputs", "4", "--quiet", "--out"]
    code = (
        "import jax; from actspec_jax.cli import main; "
        f"assert main({[*argv, str(tmp_path / 'r')]!r}) == 0; "
        "print('cache:', jax.config.jax_compilation_cache_dir)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"cache: {tmp_path / 'cc'}" in done.stdout
    assert (tmp_path / "cc").is_dir()


HOSTILE = ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "<svg onload=alert(1)>"]


def test_summary_md_keeps_no_raw_html_from_user_strings(tmp_path):
    """Titles, headings, paragraphs, table cells and captions are escaped in summary.md (Markdown
    viewers render raw HTML) as in report.html; a code block cannot be closed early by backticks."""
    report = Report(tmp_path / "r", HOSTILE[0])
    report.heading(HOSTILE[1])
    report.text(f"a label {HOSTILE[2]} & more")
    report.table(["unit", "label"], [[1, HOSTILE[0]], [2, "a | b"]], caption=HOSTILE[1])
    report.code("```\n" + HOSTILE[2] + "\n```")
    report.write()
    md = (tmp_path / "r" / "summary.md").read_text()
    page = (tmp_path / "r" / "report.html").read_text()
    for text in (md, page):
        assert "<script" not in text and "<img" not in text.replace("<img alt", "")
    assert "<svg" not in md.replace("```\n<svg", "")  # only inside the (longer) fenced block
    assert "````" in md and "&lt;script&gt;" in md and "a \\| b" in md


@pytest.mark.parametrize("name", ["../x.json", "sub/x.json", "..", "", "/tmp/x.json"])
def test_report_files_stay_inside_the_report_folder(tmp_path, name):
    report = Report(tmp_path / "r", "t")
    with pytest.raises(asj.ActSpecError, match="plain file names"):
        report.save_json(name, {"a": 1})
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["r"]


def test_help_and_version_do_not_import_jax():
    import subprocess
    import sys

    code = (
        "import sys; from actspec_jax.cli import build_parser; build_parser(); "
        "import actspec_jax; assert 'jax' not in sys.modules, 'jax imported'; print(actspec_jax.__version__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    version = done.stdout.strip()
    shown = subprocess.run(
        [sys.executable, "-m", "actspec_jax.cli", "--version"], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0 and shown.stdout.strip() == f"actspec_jax {version}"
    timed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "actspec_jax.cli", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert timed.returncode == 0 and "actspec" in timed.stdout
    rows = [line.split("|")[-1].strip() for line in timed.stderr.splitlines() if "|" in line]
    imported = {name.split(".")[0] for name in rows}
    assert "actspec_jax" in imported and not imported & {"jax", "jaxlib", "matplotlib", "flax"}, imported


def test_command_help_is_plain_text_not_restructuredtext(capsys):
    import pytest

    for command in ("demo", "run", "concepts", "layers"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and ":mod:" not in text and ":class:" not in text, command


def test_a_batch_given_for_one_spectrum_is_refused_before_anything_is_written(tmp_path):
    batch = asj.ExactSolver()(asj.FunctionProblem(lambda x: jnp.stack([x[:, 0], x[:, 1]], axis=1), 3))
    report = Report(tmp_path / "r", "two outputs")
    with pytest.raises(asj.ActSpecError, match=r"batch\[i\]"):
        add_spectrum_sections(report, batch)
    add_spectrum_sections(report, batch[1])
    assert report.write().read_text().count("Top subsets") == 1


def test_output_typos_get_the_near_miss_and_what_each_output_takes():
    from actspec_jax.problems.outputs import parse_output

    for typo, hint in [("logprob:1", "Did you mean 'log_prob:1'"), ("log_prob1", "Did you mean 'log_prob:1'"),
                       ("log_probs:1", "takes no class"), ("logit_diff:3", "takes two classes")]:  # fmt: skip
        with pytest.raises(asj.ActSpecError, match=re.escape(hint)):
            parse_output(typo)


def test_pair_matrix_places_each_listed_pair_and_marks_the_sure_ones():
    spec = asj.Spectrum.build(
        6, [(0, 1), (1, 2), (3,), (4, 5)], [0.5, -0.25, 0.3, 0.01], stderr=[0.01, 0.01, 0.01, 0.01]
    )
    fig = plots.plot_pair_matrix(spec, k=4)
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    names = [t.get_text() for t in ax.get_yticklabels()]
    at = {int(name): i for i, name in enumerate(names)}  # labels of a bare spectrum: '0', '1', …
    assert grid[at[0], at[1]] == grid[at[1], at[0]] == 0.5 and grid[at[1], at[2]] == -0.25
    assert np.ma.is_masked(grid[at[0], at[2]]) or np.isnan(grid[at[0], at[2]])  # (0, 2) is not listed
    dots = sum(len(line.get_xdata()) for line in ax.lines)
    assert dots == 4  # (0,1) and (1,2) both ways; (4,5) is within 3 se of zero
