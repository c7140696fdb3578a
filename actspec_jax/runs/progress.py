"""Progress of the command line's solves: bars in a terminal, one line per stage in a log.

:class:`StageBars` is a ``progress(done, total, stage=…)`` callable (the compressive solver's
stage protocol; ``stage`` defaults to one unnamed stage, as GL and the exact solver report). In a
terminal it draws a tqdm bar per stage (masks with rate and ETA); when the stream is not a terminal
(a log file, a pipe, a notebook's captured output) it writes one plain line as each stage ends —
never a carriage return.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["StageBars"]

_UNITS = {"evaluate": "mask", "decode": "round", "refit": "output"}


class StageBars:
    """See the module docstring. ``enabled=False``: silent; ``label``: prefix of bars and lines."""

    def __init__(self, *, enabled: bool = True, label: str = "", stream: IO[str] | None = None) -> None:
        self.enabled = enabled
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar: Any = None
        self.current: str | None = None
        self.started = self.last = time.perf_counter()
        self.reported: set[str] = set()

    def __call__(self, done: int, total: int, stage: str = "") -> None:
        if not self.enabled:
            return
        if stage != self.current:  # a stage starts where the previous one last reported
            self.close()
            self.current, self.started = stage, self.last
        self.last = time.perf_counter()
        if self.terminal:
            if self.bar is None:
                from tqdm.auto import tqdm

                unit = _UNITS.get(stage, "step")
                desc = " ".join(part for part in (self.label, stage) if part) or None
                self.bar = tqdm(total=total, unit=unit, unit_scale=unit == "mask", leave=False,
                                desc=desc, file=self.stream)  # fmt: skip
            self.bar.total = total
            self.bar.update(done - self.bar.n)
        elif done >= total and stage not in self.reported:
            self.reported.add(stage)
            name = " ".join(part for part in (self.label, stage) if part) or "progress"
            unit = _UNITS.get(stage, "step")
            elapsed = self.last - self.started
            print(f"{name}: {done:,}/{total:,} {unit}s in {elapsed:.1f} s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
