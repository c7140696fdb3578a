"""The committed results page links only figures that exist, are small, and are real PNGs."""

import re
import subprocess
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE = DOCS / "results.md"


def test_results_page_links_existing_small_figures():
    text = PAGE.read_text()  # written by benchmarks/experiments/results_page.py
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 8, links
    for link in links:
        path = DOCS / link
        assert path.is_file(), link
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
        assert path.stat().st_size < 400_000, f"{link} is {path.stat().st_size} bytes"
    for needle in (
        "97.73 %",
        "86.9 %",
        "## (a) MNIST",
        "## (b) The sentiment transformer",
        "## (c) Faithfulness",
    ):
        assert needle in text, needle


@pytest.mark.filterwarnings("error::actspec_jax.diagnostics.IncompleteResultWarning")
def test_readme_tour_runs_as_written(tmp_path, monkeypatch):
    readme = (DOCS.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md lost its Python tour"
    monkeypatch.chdir(tmp_path)  # the tour saves spectrum.json in the working directory
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert (tmp_path / "spectrum.json").is_file()
    assert namespace["spec"].n == 256 and namespace["spec"].solver["name"] == "compressive"
    assert namespace["spec"].solver["evaluations"] == 10_000
    assert namespace["exact"].n == 16 and namespace["exact"].solver["name"] == "exact"
    assert len(namespace["batch"]) == 10 and namespace["batch"][0].solver["evaluations"] == 4_000
    assert {k: round(v, 6) for k, v in namespace["toy"].to_dict().items()} == {(0, 2): 1.0, (1,): 0.5}


QUICKSTART_FUNCTION = "'/^quickstart_line()/,/^}/p'"
SHOW_BOTH = "quickstart_line 1; quickstart_line 2"


def test_ci_runs_the_readme_test_command_in_both_environments():
    root = DOCS.parent
    readme = (root / "README.md").read_text()
    quickstart = re.search(r"## Quickstart\n\n```bash\n(.*?)```", readme, flags=re.S).group(1)
    test_command = quickstart.strip().splitlines()[1].split("&&")[1].strip()
    assert test_command == 'python -m pytest -q -n 2 -m "not slow"', test_command
    ci = (root / ".ci" / "run").read_text()
    assert "python -m pytest" not in ci, ".ci/run reads the test command from the README"
    assert "command=$(quickstart_line 2)" in ci and "command=$(quickstart_line 1)" in ci
    assert "run_env oldest" in ci and "run_env newest" in ci
    lines = subprocess.run(
        [
            "bash",
            "-c",
            f"source <(sed -n {QUICKSTART_FUNCTION} .ci/run); quickstart_line 1; quickstart_line 2",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert lines == quickstart.strip().splitlines(), lines


def test_oldest_constraints_are_the_lower_bounds_of_the_pins():
    import tomllib

    root = DOCS.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    specs = project["dependencies"] + [spec for extra in extras for spec in extra]
    lower = {}
    for spec in specs:
        m = re.match(r"([A-Za-z0-9_.-]+)\s*(?:>=|==)\s*([0-9][^,;\s]*)", spec)
        if m:
            lower.setdefault(m.group(1).lower(), set()).add(m.group(2))
    lines = (root / ".ci" / "constraints-oldest.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert {"jax", "jaxlib", "flax", "optax", "chex"} <= set(pins), pins
    for name, pinned in pins.items():
        assert pinned in lower.get(name, set()), f"{name}=={pinned} is not a lower bound in pyproject.toml"


def test_readme_links_to_files_that_exist():
    root = DOCS.parent
    readme = (root / "README.md").read_text()
    links = re.findall(r"\]\(([^)#:]+)\)", readme)
    assert "docs/robustness.md" in links
    missing = [link for link in links if not (root / link).exists()]
    assert missing == [], missing
