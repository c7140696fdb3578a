"""What ``actspec run`` does so that no work is lost and no two runs interleave (private).

* Before any computation: the report folder and the checkpoint's folder are created and
  proven writable (:func:`actspec_jax._io.check_writable_folder`), and both are locked
  (:class:`actspec_jax.runs.locks.FileLock`: a second run on the same folder or checkpoint is
  refused, naming the first; a stale lock of a killed run is taken over). Temporary files of
  killed writers are removed; ``restart=True`` deletes an existing checkpoint.
* A checkpoint that cannot be resumed is refused with the file named and both ways out
  (``--restart``, or delete the file).
* When the report cannot be written (full disk, folder gone read-only), the spectrum is saved
  somewhere writable — the report folder, else the system's temporary folder, else printed —
  and the error names the path that failed, where the spectrum went and that the checkpoint
  was kept. The exact solver's checkpoint is removed only after the report is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from actspec_jax._io import OutputWriteError, check_writable_folder, clean_stale_temps
from actspec_jax.runs.locks import FileLock
from actspec_jax.solvers.common.checkpoint import CheckpointError

__all__ = ["guarded_outputs", "rescued_write", "resumable"]


@contextlib.contextmanager
def guarded_outputs(
    out: str | os.PathLike, checkpoint: str | os.PathLike | None, restart: bool
) -> Iterator[None]:
    """Check and lock the report folder and checkpoint for the duration of a run."""
    out = Path(out)
    check_writable_folder(out, "report folder")
    if checkpoint is not None:
        check_writable_folder(Path(checkpoint).resolve().parent, "checkpoint folder")
    with contextlib.ExitStack() as stack:
        stack.enter_context(FileLock(out, "report folder", folder=True))
        if checkpoint is not None:
            stack.enter_context(FileLock(checkpoint, "checkpoint"))
            clean_stale_temps(checkpoint)
            if restart and os.path.exists(checkpoint):
                os.unlink(checkpoint)
        clean_stale_temps(out, folder=True)
        yield


@contextlib.contextmanager
def resumable(checkpoint: str | os.PathLike | None) -> Iterator[None]:
    """Add the command-line way out to a refused checkpoint."""
    try:
        yield
    except CheckpointError as err:
        raise CheckpointError(
            f"{err} With actspec run: rerun the same command with --restart to discard {checkpoint} "
            "and start afresh, or delete the file yourself."
        ) from err


def _rescue(spectrum: Any, out: Path, say: Callable[[str], None]) -> str:
    """Save ``spectrum`` somewhere writable; returns where (or ``'printed above'``)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidates = [
        out / "spectrum.json",
        Path(tempfile.gettempdir()) / f"actspec_rescued_{stamp}_{os.getpid()}.json",
    ]
    for path in candidates:
        try:
            spectrum.save(path)
            return str(path)
        except OSError:
            continue
    try:
        text = json.dumps(spectrum.to_json_dict())
    except AttributeError:  # a batch of spectra
        text = json.dumps([s.to_json_dict() for s in spectrum])
    print(text, file=sys.stdout, flush=True)
    say("(the spectrum could not be saved anywhere; its JSON document is printed above)")
    return "printed above (standard output)"


def rescued_write(
    write: Callable[[], Path],
    spectrum: Any,
    out: str | os.PathLike,
    checkpoint: str | None,
    say: Callable[[str], None],
) -> Path:
    """Run ``write()`` (the report); if it fails with an OS error, rescue the spectrum and explain."""
    try:
        return write()
    except OSError as err:
        where = _rescue(spectrum, Path(out), say)
        kept = f" The checkpoint {checkpoint} was kept." if checkpoint and os.path.exists(checkpoint) else ""
        failed = err.filename or out
        raise OutputWriteError(
            f"the report could not be written ({failed}: {err.strerror or err}). The computed spectrum "
            f"was saved to {where}.{kept} Free some space (or choose a writable --out) and rerun the "
            "same command."
        ) from err
