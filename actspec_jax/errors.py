"""Exceptions with messages that name the problem and the fix.

All derive from :class:`ActSpecError` (a ``ValueError``), so ``except ValueError`` works.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ActSpecError",
    "DeviceCountError",
    "MaskError",
    "MemoryBudgetError",
    "NonFiniteOutputError",
    "ProblemTooLargeError",
    "SpectrumFormatError",
    "UnknownLayerError",
    "format_bytes",
]


class ActSpecError(ValueError):
    """Base class of actspec_jax's input errors."""


class UnknownLayerError(ActSpecError, KeyError):
    """A layer name that the model does not have."""

    def __init__(self, layer: str, available: Iterable[str], model: str = "model", hint: str = "") -> None:
        names = sorted(set(available))
        listing = ", ".join(repr(a) for a in names) if names else "(none found)"
        super().__init__(
            f"{model} has no layer {layer!r}. Available layers: {listing}.{' ' + hint if hint else ''}"
        )
        self.layer = layer
        self.available = tuple(names)

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


class ProblemTooLargeError(ActSpecError):
    """The exact solver was asked for more masks than it may enumerate."""


class MemoryBudgetError(ActSpecError):
    """A memory budget too small for even one chunk of work."""


class DeviceCountError(ActSpecError):
    """More devices requested than exist, or a device count the table cannot be split over."""


class MaskError(ActSpecError):
    """Masks of the wrong shape, dtype or values."""


class NonFiniteOutputError(ActSpecError):
    """The model produced NaN or inf for some mask."""


class SpectrumFormatError(ActSpecError):
    """A results file that is corrupt, truncated or not an actspec_jax file."""


def format_bytes(num: float) -> str:
    """Human-readable size, e.g. ``'1.5 GiB'``; exact for any size (``'2^100 B'`` beyond YiB)."""
    if isinstance(num, int) and num >= 1 << 90:
        # beyond floats' comfort: name the power of two (an int's bit length is exact)
        power = num.bit_length() - 1
        return f"2^{power} B" if num == 1 << power else f"over 2^{power} B"
    value = float(num)
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} YiB"
