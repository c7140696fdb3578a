"""Shared fixtures (brute-force references live in tests/brute.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("ACTSPEC_TINY", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
