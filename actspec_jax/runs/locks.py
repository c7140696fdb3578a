"""One writer per checkpoint and per report folder: advisory lock files.

A :class:`FileLock` on ``target`` creates ``<target>.lock`` (for a folder:
``<folder>/.actspec.lock``) exclusively (``O_CREAT | O_EXCL``) and writes into it who holds
it: ``{"pid", "host", "started", "command"}``. A second process asking for the same lock gets
:class:`LockedError` naming that process, its host, start time and command, and the lock
file. A lock left by a process that no longer exists on this host (killed, crashed) is
*stale*: it is taken over (atomically renamed away, so of two processes racing for it
exactly one wins). A lock held from another host cannot be checked; the error then says to
delete the file if that run is gone. Locks are advisory: only ``actspec`` commands honour them.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from actspec_jax._io import pid_alive
from actspec_jax.errors import ActSpecError

__all__ = ["FileLock", "LockedError", "lock_path"]


class LockedError(ActSpecError):
    """Another live process holds the lock (the message names it and the lock file)."""


def lock_path(target: str | os.PathLike, *, folder: bool = False) -> Path:
    """The lock file of ``target``: ``<folder>/.actspec.lock`` or ``<file>.lock``."""
    target = Path(target)
    return target / ".actspec.lock" if folder else target.with_name(target.name + ".lock")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


class FileLock:
    """Exclusive advisory lock on ``target`` (a context manager; see the module docstring).

    Args:
      target: the checkpoint file or report folder to protect.
      what: how errors name it (``"checkpoint"``, ``"report folder"``).
      folder: ``target`` is a folder (the lock file goes inside it).
    """

    def __init__(self, target: str | os.PathLike, what: str, *, folder: bool = False) -> None:
        self.target = Path(target)
        self.what = what
        self.path = lock_path(target, folder=folder)
        self.held = False
        self.took_over: dict[str, Any] | None = None  # the stale holder replaced, if any

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:500],
        }
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _stale(self, info: dict[str, Any] | None) -> bool:
        if info is None:  # unreadable: being written right now, or torn by a kill
            try:
                return time.time() - self.path.stat().st_mtime > 5.0
            except FileNotFoundError:
                return False
        pid = info.get("pid")
        local = info.get("host") == socket.gethostname()
        return local and isinstance(pid, int) and not pid_alive(pid)

    def acquire(self) -> FileLock:
        """Take the lock, taking over a stale one; raises :class:`LockedError` if it is held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(50):
            if self._create():
                self.held = True
                return self
            info = _read(self.path)
            if self._stale(info):
                away = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
                try:
                    os.replace(self.path, away)  # only one of several racing processes gets it
                except FileNotFoundError:
                    continue
                self.took_over = _read(away) or {}
                with contextlib.suppress(OSError):
                    away.unlink()
                continue
            if info is None:
                time.sleep(0.1)
                continue
            raise LockedError(self._message(info))
        raise LockedError(f"could not take the lock {self.path} on the {self.what} {self.target}.")

    def _message(self, info: dict[str, Any]) -> str:
        who = f"process {info.get('pid')} on host {info.get('host')!s}, started {info.get('started')}"
        command = info.get("command")
        local = info.get("host") == socket.gethostname()
        gone = (
            "If that run is gone" if local else "That host cannot be checked from here; if that run is gone"
        )
        return (
            f"the {self.what} {self.target} is in use by {who}"
            + (f" ({command})" if command else "")
            + f"; lock file {self.path}. Wait for it to finish or use another "
            + ("--out folder" if self.what == "report folder" else "--checkpoint file")
            + f". {gone}, delete {self.path}."
        )

    def release(self) -> None:
        """Remove the lock file if this process still holds it."""
        if not self.held:
            return
        self.held = False
        info = _read(self.path)
        if info is not None and info.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
