"""The compressive solver's query ledger: every evaluated mask's values, kept on disk (private).

The plan of a compressive solve is non-adaptive: its masks are a function of the key, ``n``, the
groups and the delays only (:mod:`~.design` draws nested hashes, :mod:`~.stream` evaluates a round
in ℓ-major order), so the masks of a round at ``b`` bins are a *prefix* of the same round at
``b + 1``, and the uniform masks of a plan are a prefix of a larger plan's. The ledger keeps, per
*stage* (``"round 0"``, ``"round 1"``, …, ``"held"``), the values of the evaluated prefix
(``float64[count, K]``, evaluation order, all ``K`` outputs). A rerun with the same key — after a
kill, or with a larger ``max_evaluations`` — evaluates only the rows beyond each stage's prefix;
everything it decodes is a function of the values, so a resumed run returns the uninterrupted
run's spectrum.

The file is a checkpoint of :mod:`actspec_jax.solvers.common.checkpoint` (atomic write, SHA-256 digest,
fingerprint of the problem's arrays, the key and the design settings — not the budget, which the
ledger outlives); a corrupt, foreign or other-problem file is refused with its name and the fix.
It is rewritten at most every ``every_s`` seconds while a stage is evaluated, at every stage's end
and when the evaluation is interrupted (``KeyboardInterrupt``, a model error).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from actspec_jax.solvers.common.checkpoint import (
    CheckpointError,
    fingerprint,
    read_checkpoint,
    write_checkpoint,
)

__all__ = ["FORMAT", "VERSION", "QueryLedger"]

FORMAT, VERSION = "actspec-compressive-ledger", 1
_PREFIX = "stage:"


class QueryLedger:
    """Evaluated prefixes of a plan's stages, optionally backed by a file (``path=None``: memory only).

    Args:
      path: the ledger file (``.npz``); read if it exists, written as the run goes.
      identity: what the values depend on (problem digest, key, design settings); its SHA-256 is
        the file's fingerprint.
      outputs: ``K``, values per mask.
      every_s: least seconds between two writes while a stage is evaluated (``0``: every piece).
    """

    def __init__(
        self, path: str | os.PathLike | None, identity: dict[str, Any], *, outputs: int, every_s: float
    ) -> None:
        self.path = None if path is None else Path(path)
        self.fingerprint = fingerprint({"ledger": FORMAT, **identity})
        self.parts = {name: fingerprint({name: value}) for name, value in identity.items()}
        self.outputs = int(outputs)
        self.every_s = float(every_s)
        self.stages: dict[str, np.ndarray] = {}
        self.loaded: dict[str, int] = {}
        self.writes = 0
        self.verified = 0
        self._dirty = False
        self._saved_at = time.monotonic()
        if self.path is not None and self.path.exists():
            self._load()

    def _fix(self) -> str:
        return f"Delete {self.path} (or pass another checkpoint_path) to start afresh."

    def _load(self) -> None:
        arrays, _ = read_checkpoint(
            self.path,
            format_tag=FORMAT,
            version=VERSION,
            fingerprint=self.fingerprint,
            what="compressive query ledger",
            fix=self._fix(),
            parts=self.parts,
        )
        for name, values in arrays.items():
            if not name.startswith(_PREFIX) or values.dtype != np.float64 or values.ndim != 2:
                raise CheckpointError(f"{self.path}: unexpected field {name!r} in the ledger. {self._fix()}")
            if values.shape[1] != self.outputs:
                raise CheckpointError(
                    f"{self.path}: stage {name[len(_PREFIX) :]!r} holds {values.shape[1]} outputs per mask, "
                    f"this problem has {self.outputs}. {self._fix()}"
                )
            self.stages[name[len(_PREFIX) :]] = values
            self.loaded[name[len(_PREFIX) :]] = int(values.shape[0])

    def prefix(self, stage: str, count: int) -> np.ndarray:
        """``float64[≤ count, K]``: the stage's evaluated rows, at most ``count``."""
        return self.stages.get(stage, np.zeros((0, self.outputs)))[:count]

    def record(self, stage: str, start: int, values: np.ndarray) -> None:
        """Append ``values[size, K]`` of rows ``start …`` (``start`` = the rows held so far)."""
        held = self.stages.get(stage, np.zeros((0, self.outputs)))
        if start != held.shape[0]:
            raise ValueError(f"ledger stage {stage!r} holds {held.shape[0]} rows, got rows from {start}")
        self.stages[stage] = np.concatenate([held, np.asarray(values, np.float64)])
        self._dirty = True
        if time.monotonic() - self._saved_at >= self.every_s:
            self.flush()

    def flush(self) -> None:
        """Write the ledger if anything new was recorded (atomic; no-op without a path)."""
        if self.path is None or not self._dirty:
            return
        arrays = {_PREFIX + name: values for name, values in self.stages.items()}
        write_checkpoint(
            self.path,
            arrays,
            {"fingerprint": self.fingerprint, "parts": self.parts},
            format_tag=FORMAT,
            version=VERSION,
        )
        self.writes += 1
        self._dirty = False
        self._saved_at = time.monotonic()

    def verify(self, stages: list, evaluate: Any, rows: int = 4) -> int:
        """Re-evaluate the first ``rows`` masks of the first stage the file holds and compare them with
        its values: the fingerprint names the problem's arrays but not a plain function's code, so
        this catches a ledger of another function. Returns the masks re-evaluated (0: nothing loaded).

        ``evaluate(masks) → float64[rows, K]``; round-off of another batch size is tolerated
        (``10⁻⁴`` of the values' scale)."""
        for name, plan_rows in stages:
            held = self.loaded.get(name, 0)
            if not held:
                continue
            count = min(rows, held)
            stored = self.stages[name][:count]
            fresh = np.asarray(evaluate(plan_rows.evaluation_chunk(0, count)), np.float64)
            scale = float(np.sqrt(np.mean(self.stages[name] ** 2))) + 1e-30
            gap = float(np.max(np.abs(fresh - stored)))
            if not gap <= 1e-4 * scale:
                raise CheckpointError(
                    f"{self.path} holds values of a different function: {count} of its masks re-evaluated "
                    f"here differ by up to {gap:.3g} (values of size {scale:.3g}). {self._fix()}"
                )
            self.verified = count
            return count
        return 0

    def summary(self, plan_rows: dict[str, int]) -> dict[str, Any]:
        """What the ledger contributed to a plan of ``{stage: rows}``: rows reused and evaluated."""
        reused = sum(min(self.loaded.get(stage, 0), rows) for stage, rows in plan_rows.items())
        total = sum(plan_rows.values())
        return {
            "path": None if self.path is None else str(self.path),
            "reused": int(reused),
            "evaluated": int(total - reused),
            "writes": self.writes,
            "verified": self.verified,
        }
