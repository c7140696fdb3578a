"""Sub-commands of the ``actspec`` command line (one module each)."""

from __future__ import annotations

import re

__all__ = ["plain_help"]

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain_help(doc: str | None) -> str:
    """A module docstring as terminal help: reStructuredText roles (``:mod:`~a.b``` → ``b``) and
    double backticks dropped, so ``actspec X --help`` reads as plain text."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], doc or "")
    return text.replace("``", "")
