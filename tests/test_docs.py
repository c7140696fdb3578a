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
