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
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from actspec_jax.errors import ActSpecError

__all__ = ["COMMANDS", "build_parser", "compilation_cache_dir", "main"]

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``actspec`` console script."""
    args = build_parser().parse_args(argv)
    _enable_compilation_cache(compilation_cache_dir(os.environ))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        resumable = getattr(args, "checkpoint", None) is not None
        hint = (
            "rerun the same command to resume"
            if resumable
            else "rerun with --checkpoint FILE to make a long run resumable"
        )
        print(f"\nactspec {args.command}: interrupted; {hint}.", file=sys.stderr)
        return 130
    except (ActSpecError, OSError) as err:
        print(f"actspec {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
