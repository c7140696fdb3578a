"""One validation layer for every solver's settings (private).

Each solver lists its settings as rules (:class:`Whole`, :class:`Real`, :class:`Choice`,
:class:`Flag`, …) and calls :func:`check_settings` when it is built: a setting of the wrong type
or outside its range raises :class:`~actspec_jax.errors.ActSpecError` naming the solver, the
setting, what it takes and what it got — never a ``TypeError`` deep in a jitted loop, a silent
truncation (``beam=2.5`` → 2) or an allocation of terabytes (``beam=2**40``). Whole floats
(``1e4``) become ints. The upper bounds are sanity bounds, far above any useful value.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = [
    "Bytes",
    "Choice",
    "DType",
    "Devices",
    "Flag",
    "Indices",
    "Real",
    "Rule",
    "Whole",
    "check_settings",
]


class Rule:
    """What one setting accepts; :meth:`check` returns the value to keep or raises ``ValueError``
    with the accepted values."""

    optional: bool = False

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def accepts(self) -> str:
        raise NotImplementedError


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


@dataclasses.dataclass(frozen=True)
class Whole(Rule):
    """A whole number in ``low..high`` (``None`` bound: open)."""

    low: int | None = None
    high: int | None = None
    optional: bool = False

    def check(self, value: Any) -> Any:
        if not (_is_number(value) and math.isfinite(float(value)) and float(value).is_integer()):
            raise ValueError
        value = int(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError
        return value

    def accepts(self) -> str:
        if self.high is None:
            return "a whole number" + ("" if self.low is None else f" >= {self.low}")
        if self.low is None:
            return f"a whole number <= {self.high:,}"
        return f"a whole number in {self.low}..{self.high:,}"


@dataclasses.dataclass(frozen=True)
class Bytes(Whole):
    """A positive whole number of bytes (``None``: the device's default)."""

    low: int | None = 1
    optional: bool = True

    def accepts(self) -> str:
        return "a positive number of bytes (e.g. 2**28 for 256 MiB)"


@dataclasses.dataclass(frozen=True)
class Real(Rule):
    """A finite real number between ``low`` and ``high`` (each bound open or closed)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    infinite: bool = False

    def check(self, value: Any) -> Any:
        if not _is_number(value) or math.isnan(float(value)):
            raise ValueError
        x = float(value)
        if not self.infinite and not math.isfinite(x):
            raise ValueError
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            raise ValueError
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            raise ValueError
        return value

    def accepts(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"a number in {left}{low}, {high}{right}"


@dataclasses.dataclass(frozen=True)
class Choice(Rule):
    """One of ``values`` (compared by equality, never ``True == 1``)."""

    values: tuple[Any, ...] = ()
    optional: bool = False

    def check(self, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.values:
            raise ValueError
        return value

    def accepts(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclasses.dataclass(frozen=True)
class Flag(Rule):
    """``True`` or ``False``."""

    optional: bool = False

    def check(self, value: Any) -> Any:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError
        return bool(value)

    def accepts(self) -> str:
        return "True or False"


@dataclasses.dataclass(frozen=True)
class Indices(Rule):
    """A name among ``names`` or a sequence of whole numbers (e.g. GL's ``order``)."""

    names: tuple[str, ...] = ()
    optional: bool = False

    def check(self, value: Any) -> Any:
        if isinstance(value, str):
            return Choice(self.names).check(value)
        if isinstance(value, Mapping) or not isinstance(value, Sequence | np.ndarray):
            raise ValueError
        [Whole().check(i) for i in list(value)]  # ranges and repeats: the solver's own check
        return value

    def accepts(self) -> str:
        return f"one of {', '.join(repr(v) for v in self.names)} or a sequence of unit indices"


@dataclasses.dataclass(frozen=True)
class Devices(Rule):
    """``None``/``'all'``, a device count ``>= 1``, a non-empty sequence of devices, or a mesh
    (checked further by :func:`~actspec_jax.solvers.common.sharding.mask_mesh`)."""

    optional: bool = True

    def check(self, value: Any) -> Any:
        from jax.sharding import Mesh

        if isinstance(value, Mesh) or (isinstance(value, str) and value == "all"):
            return value
        if _is_number(value):
            return Whole(1).check(value)
        listed = isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
        if listed and all(hasattr(d, "platform") for d in value):
            return value
        raise ValueError

    def accepts(self) -> str:
        return "None or 'all', a device count >= 1, a list of jax devices, or a Mesh with an axis 'masks'"


@dataclasses.dataclass(frozen=True)
class DType(Rule):
    """``None`` (float32) or a floating dtype JAX computes in (``'float32'``, ``jnp.float64``, …)."""

    optional: bool = True

    def check(self, value: Any) -> Any:
        import jax.numpy as jnp

        if isinstance(value, (bool, numbers.Number)) or not isinstance(value, (str, type, np.dtype)):
            raise ValueError
        if not jnp.issubdtype(jnp.dtype(value), jnp.floating):
            raise ValueError
        return value

    def accepts(self) -> str:
        return "a floating dtype such as 'float32' or 'float64'"


def check_settings(obj: Any, rules: Mapping[str, Rule], solver: str) -> None:
    """Check every setting of ``obj`` named in ``rules``; whole floats become ints in place."""
    for name, rule in rules.items():
        value = getattr(obj, name)
        if value is None and rule.optional:
            continue
        try:
            kept = rule.check(value)
        except (ValueError, TypeError, OverflowError):
            none = " or None" if rule.optional else ""
            raise ActSpecError(f"{solver}: {name} must be {rule.accepts()}{none}, got {value!r}.") from None
        if kept is not value:
            object.__setattr__(obj, name, kept)
