"""Durable file writes shared by results files, checkpoints, figures and reports (private).

:func:`atomic_write` writes to a temporary file in the target's folder, flushes and
``fsync``-s it, renames it over the target (``os.replace``, atomic on POSIX and Windows) and
``fsync``-s the folder, so after a crash or a ``SIGKILL`` at any moment the target holds
either its previous or its new content, never a torn mix. Temporary files carry the writer's
pid (``.<name>.<pid>.<random>.tmp``); :func:`clean_stale_temps` removes those of dead
writers, so a killed run leaves no hidden ``.tmp`` files behind once it is rerun.

A failed write raises :class:`OutputWriteError` (an :class:`~actspec_jax.errors.ActSpecError`
and an :class:`OSError` with the original ``errno``) naming the path; the previous file is
untouched and the temporary file is removed.

Fault injection (tests only): ``ACTSPEC_FAULT="<label>:<stage>:<action>[:<nth>]"`` makes the
``nth`` (default 1st; ``*`` = every) write of kind ``label`` (``checkpoint``, ``results``, ``report``,
``figure``, ``json``) fail at ``stage`` — ``mid`` (half the bytes written to the temporary
file) or ``rename`` (all written, not yet renamed) — with ``action`` ``kill`` (``SIGKILL``
of this process), ``enospc`` (``OSError(ENOSPC)``) or ``pause`` (sleep, for a test to kill).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from actspec_jax.errors import ActSpecError

__all__ = ["OutputWriteError", "atomic_write", "check_writable_folder", "clean_stale_temps", "pid_alive"]

FAULT_ENV = "ACTSPEC_FAULT"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import (os.umask can only be read by setting it)
_fault_counts: dict[str, int] = {}  # per-process count of writes per label (fault injection only)


class OutputWriteError(ActSpecError, OSError):
    """A file could not be written (full disk, read-only folder, permissions); names the path.

    ``errno`` and ``filename`` are those of the underlying :class:`OSError`.
    """

    def __str__(self) -> str:  # OSError would print "[Errno N] None: path" once errno is set
        return str(self.args[0])


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _writer_pid(tmp: Path) -> int | None:
    """The writer's pid encoded in a temporary file name ``.<name>.<pid>.<random>.tmp``."""
    parts = tmp.name[: -len(".tmp")].rsplit(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def clean_stale_temps(path: str | os.PathLike, *, folder: bool = False) -> list[Path]:
    """Remove :func:`atomic_write` temporary files left by dead writers.

    For the file ``path`` (default), or for every file in the folder ``path`` (``folder=True``).
    """
    path = Path(path)
    where, pattern = (path, ".*.tmp") if folder else (path.parent, f"{glob_escape(_temp_prefix(path))}*.tmp")
    removed = []
    try:
        candidates = list(where.glob(pattern))
    except OSError:
        return removed
    for tmp in candidates:
        pid = _writer_pid(tmp)
        if pid is None or (pid != os.getpid() and pid_alive(pid)):
            continue  # not ours, or a live writer's file
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def glob_escape(text: str) -> str:
    """Escape glob metacharacters of a literal file name part."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened; the rename is durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fault(label: str) -> tuple[str, str] | None:
    """``(stage, action)`` if fault injection targets this write of ``label``."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    parts = spec.split(":")
    if len(parts) < 3 or parts[0] != label:
        return None
    _fault_counts[label] = _fault_counts.get(label, 0) + 1
    nth = parts[3] if len(parts) > 3 else "1"
    return (parts[1], parts[2]) if nth == "*" or _fault_counts[label] == int(nth) else None


def _trigger(action: str, path: Path) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        time.sleep(3600)
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _error(path: Path, err: OSError) -> OutputWriteError:
    reason = err.strerror or str(err)
    hint = {
        errno.ENOSPC: "free some space or write somewhere else",
        errno.EROFS: "the file system is read-only: choose a writable folder",
        errno.EACCES: "no permission: choose a writable folder",
        errno.EPERM: "no permission: choose a writable folder",
    }.get(err.errno or 0, "check the folder")
    out = OutputWriteError(
        f"could not write {path}: {reason} ({hint}); the previous file, if any, is unchanged."
    )
    out.errno = err.errno
    out.filename = str(path)
    return out


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO[Any]], Any], mode: str = "wb", *, label: str = "results"
) -> Path:
    """Write ``path`` durably and atomically: ``write(handle)`` fills a temporary file.

    Args:
      write: called with a file object opened with ``mode`` (``"w"`` text UTF-8, ``"wb"`` bytes).
      label: kind of file, for fault injection (module docstring).

    Raises:
      OutputWriteError: the folder cannot be created or written, or the disk is full.
    """
    path = Path(path)
    fault = _fault(label)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp"
        )
    except OSError as err:
        raise _error(path, err) from err
    try:
        with contextlib.suppress(OSError, AttributeError):  # mkstemp makes 0600; use the umask
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as raw:
            if fault is None:
                handle: Any = raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8")
                write(handle)
                handle.flush()
                if handle is not raw:
                    handle.detach()
            else:  # produce the bytes first, so a fault can strike half-way through
                buffer = io.BytesIO()
                text = None if "b" in mode else io.TextIOWrapper(buffer, encoding="utf-8")
                write(buffer if text is None else text)
                if text is not None:
                    text.flush()
                data = buffer.getvalue()
                raw.write(data[: len(data) // 2])
                raw.flush()
                if fault[0] == "mid":
                    os.fsync(raw.fileno())
                    _trigger(fault[1], path)
                raw.write(data[len(data) // 2 :])
                raw.flush()
            os.fsync(raw.fileno())
        if fault is not None and fault[0] == "rename":
            _trigger(fault[1], path)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputWriteError):
            raise _error(path, err) from err
        raise
    _fsync_folder(path.parent)
    return path


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` if needed and prove it writable (a probe file), before any long work.

    Raises:
      OutputWriteError: naming the folder and ``what`` it is for.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".actspec-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        out = OutputWriteError(
            f"the {what} {folder} is not writable ({reason}); nothing was computed. Choose a writable "
            "folder (or fix its permissions) and rerun."
        )
        out.errno = err.errno
        out.filename = str(folder)
        raise out from err
    return folder
