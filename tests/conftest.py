"""Shared fixtures (brute-force references live in tests/brute.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("ACTSPEC_TINY", "1")
# Commands run in-process here: keep their compilation cache out of the user's home.
os.environ.setdefault("ACTSPEC_COMPILATION_CACHE", "off")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
