"""The ``actspec`` command line.

Each sub-command lives in its own module under :mod:`actspec_jax.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``. Add a
command by listing its module in :data:`COMMANDS`. Heavy imports happen inside the
command functions so ``actspec --help`` stays fast.

Compiled XLA programs are kept on disk between runs (JAX's persistent compilation cache), so
a second ``actspec demo`` skips most compilation. The cache lives in
``$XDG_CACHE_HOME/actspec_jax/xla`` (default ``~/.cache/actspec_jax/xla``); set
``ACTSPEC_COMPILATION_CACHE`` to another folder, or to ``off`` to disable it. A cache folder
already given to JAX (``JAX_COMPILATION_CACHE_DIR``) is left as it is. Only the command line
does this; the library never touches JAX's configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from actspec_jax.errors import ActSpecError

__all__ = ["COMMANDS", "Terminated", "build_parser", "compilation_cache_dir", "interrupt_hint", "main"]

COMMANDS: tuple[str, ...] = (
    "actspec_jax.commands.demo",
    "actspec_jax.commands.run",
    "actspec_jax.commands.concepts",
    "actspec_jax.commands.layers",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actspec",
        description="Activation Spectroscopy: Fourier spectra of neuron masks (actspec_jax).",
    )
    from actspec_jax import __version__

    parser.add_argument("--version", action="version", version=f"actspec_jax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def compilation_cache_dir(environ: Mapping[str, str]) -> Path | None:
    """Folder for the persistent compilation cache given the environment, or ``None`` (off)."""
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None  # the user configured JAX directly
    chosen = environ.get("ACTSPEC_COMPILATION_CACHE")
    if chosen is not None:
        off = chosen.strip().lower() in ("", "0", "off", "false", "no", "none")
        return None if off else Path(chosen).expanduser()
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "actspec_jax" / "xla"


def _enable_compilation_cache(folder: Path | None) -> None:
    if folder is None:
        return
    import jax

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home etc.: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


class Terminated(KeyboardInterrupt):
    """SIGTERM (schedulers, ``docker stop``, systemd), raised where the process is, so it unwinds
    as Ctrl-C does: checkpoints saved, locks released, temporary files removed."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM as SIGINT while a command runs (main thread only; restored afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_hint(args: argparse.Namespace) -> str:
    """What to do after an interrupt, naming only flags this command accepts."""
    if getattr(args, "resumes_by_default", False):
        return "rerun the same command to resume (--fresh starts over)"
    if not hasattr(args, "checkpoint"):
        return "rerun the same command to start again"
    if args.checkpoint is not None:
        return "rerun the same command to resume"
    return "rerun with --checkpoint FILE to make a long run resumable"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``actspec`` console script.

    Exit codes: 0 done, 2 an error (the message names the fix), 130 interrupted (Ctrl-C), 143
    terminated (SIGTERM) — in both of the last, after saving what a rerun resumes from."""
    args = build_parser().parse_args(argv)
    _enable_compilation_cache(compilation_cache_dir(os.environ))
    try:
        with _sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(f"\nactspec {args.command}: {what}; {interrupt_hint(args)}.", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    except (ActSpecError, OSError) as err:
        print(f"actspec {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
