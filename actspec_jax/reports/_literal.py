"""Figures show user text literally (private): labels are neuron names, class names, titles."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import matplotlib

__all__ = ["literal_text"]

F = TypeVar("F", bound=Callable[..., Any])


def literal_text(plot: F) -> F:
    """Build the figure with mathtext off (``text.parse_math = False``): a label such as ``$\\frac$``
    or ``cost $5 … $6`` is drawn as written instead of crashing the layout or being typeset."""

    @functools.wraps(plot)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context({"text.parse_math": False}):
            return plot(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
