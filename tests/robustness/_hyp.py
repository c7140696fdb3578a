"""Example budgets of the property tests: ``examples(k)`` in CI, ×20 with HYPOTHESIS_PROFILE=slow."""

from __future__ import annotations

import os


def examples(k: int) -> int:
    """``k`` examples in CI (fixed seeds), ``20·k`` under the ``slow`` hypothesis profile."""
    return k * 20 if os.environ.get("HYPOTHESIS_PROFILE") == "slow" else k
