"""The committed results page links only figures that exist, are small, and are real PNGs."""

import re
from pathlib import Path

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


def test_readme_tour_runs_as_written(tmp_path, monkeypatch):
    readme = (DOCS.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md lost its Python tour"
    monkeypatch.chdir(tmp_path)  # the tour saves spectrum.json in the working directory
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    first = namespace["asj"].FunctionProblem(lambda x: x[:, 0] * x[:, 2] + 0.5 * x[:, 1], n=4)
    assert {k: round(v, 6) for k, v in namespace["asj"].ExactSolver()(first).to_dict().items()} == {
        (0, 2): 1.0,
        (1,): 0.5,
    }
    assert (tmp_path / "spectrum.json").is_file()
    assert namespace["spec"].n == 16
    assert namespace["big"].n == 256 and namespace["big"].solver["name"] == "goldreich_levin"
