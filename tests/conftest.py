"""Shared fixtures (brute-force references live in tests/brute.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Property tests: fixed seeds (derandomized) and a small example budget in CI; the "slow" profile
# (HYPOTHESIS_PROFILE=slow) runs many more. Tests that set max_examples themselves keep theirs.
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", derandomize=True, deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("ACTSPEC_TINY", "1")
# Commands run in-process here: keep their compilation cache out of the user's home.
os.environ.setdefault("ACTSPEC_COMPILATION_CACHE", "off")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
