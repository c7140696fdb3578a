"""The ``actspec`` command line.

Each sub-command lives in its own module under :mod:`actspec_jax.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``. Add a
command by listing its module in :data:`COMMANDS`. Heavy imports happen inside the
command functions so ``actspec --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from actspec_jax.errors import ActSpecError

__all__ = ["COMMANDS", "build_parser", "main"]

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``actspec`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ActSpecError, FileNotFoundError) as err:
        print(f"actspec {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
