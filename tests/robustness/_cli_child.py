"""The environment of a ``python -m actspec_jax.cli`` child in the kill/terminate tests."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_env(fault: str | None = None) -> dict[str, str]:
    """This environment with the repository importable, tiny sizes, no compilation cache, and the
    ``ACTSPEC_FAULT`` test hook of :mod:`actspec_jax._io` set to ``fault`` (or cleared)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACTSPEC_TINY": "1", "ACTSPEC_COMPILATION_CACHE": "off"}
    env.pop("ACTSPEC_FAULT", None)
    if fault:
        env["ACTSPEC_FAULT"] = fault
    return env
