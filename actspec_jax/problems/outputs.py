"""Output selectors: what scalar(s) of a model's output a spectrum explains.

Each selector maps model outputs ``float[..., C]`` (logits over ``C`` classes) to
``float[...]`` (one function) or ``float[..., C']`` (several functions evaluated
together). Selectors are frozen dataclasses: hashable, so they are static under jit.

Parse a string with :func:`parse_output`: ``"logit:7"``, ``"logit_diff:1-0"``,
``"log_prob:7"``, ``"prob:7"``, ``"indicator:7"``, ``"logits"`` (every class),
``"log_probs"`` (every class).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from actspec_jax.errors import ActSpecError

__all__ = [
    "AllLogProbs",
    "AllLogits",
    "ClassIndicator",
    "LogProb",
    "Logit",
    "LogitDiff",
    "OutputSelector",
    "Prob",
    "parse_output",
]


@dataclasses.dataclass(frozen=True)
class OutputSelector:
    """Base selector. Subclasses implement :meth:`select`."""

    def select(self, outputs: jax.Array) -> jax.Array:
        raise NotImplementedError

    def __call__(self, outputs: jax.Array) -> jax.Array:
        return self.select(outputs)

    def classes(self) -> tuple[int, ...]:
        """Class indices the selector reads (validated against the model's class count)."""
        return ()

    def output_labels(self, num_classes: int) -> tuple[str, ...] | None:
        """Labels of the trailing output axis if the selector keeps one, else ``None``."""
        return None

    def describe(self) -> str:
        return type(self).__name__

    def validate(self, num_classes: int) -> None:
        for c in self.classes():
            if not 0 <= c < num_classes:
                raise ActSpecError(
                    f"{self.describe()}: class {c} is out of range; the model has {num_classes} "
                    f"classes (0..{num_classes - 1})."
                )


@dataclasses.dataclass(frozen=True)
class Logit(OutputSelector):
    """Logit (raw output) of one class: ``z_c``."""

    target: int

    def select(self, outputs: jax.Array) -> jax.Array:
        return outputs[..., self.target]

    def classes(self) -> tuple[int, ...]:
        return (self.target,)

    def describe(self) -> str:
        return f"logit:{self.target}"


@dataclasses.dataclass(frozen=True)
class LogitDiff(OutputSelector):
    """Difference of two logits: ``z_a − z_b`` (e.g. positive − negative sentiment)."""

    positive: int
    negative: int

    def select(self, outputs: jax.Array) -> jax.Array:
        return outputs[..., self.positive] - outputs[..., self.negative]

    def classes(self) -> tuple[int, ...]:
        return (self.positive, self.negative)

    def describe(self) -> str:
        return f"logit_diff:{self.positive}-{self.negative}"


@dataclasses.dataclass(frozen=True)
class LogProb(OutputSelector):
    """Log-probability of one class: ``log softmax(z)_c`` (nats)."""

    target: int

    def select(self, outputs: jax.Array) -> jax.Array:
        return jax.nn.log_softmax(outputs, axis=-1)[..., self.target]

    def classes(self) -> tuple[int, ...]:
        return (self.target,)

    def describe(self) -> str:
        return f"log_prob:{self.target}"


@dataclasses.dataclass(frozen=True)
class Prob(OutputSelector):
    """Probability of one class: ``softmax(z)_c``."""

    target: int

    def select(self, outputs: jax.Array) -> jax.Array:
        return jax.nn.softmax(outputs, axis=-1)[..., self.target]

    def classes(self) -> tuple[int, ...]:
        return (self.target,)

    def describe(self) -> str:
        return f"prob:{self.target}"


@dataclasses.dataclass(frozen=True)
class ClassIndicator(OutputSelector):
    """±1 decision indicator: ``+1`` if ``argmax z == c`` else ``−1`` (the paper's output).

    Averaged over inputs it equals ``2·accuracy_c − 1`` on that input set.
    """

    target: int

    def select(self, outputs: jax.Array) -> jax.Array:
        hit = jnp.argmax(outputs, axis=-1) == self.target
        return jnp.where(hit, 1.0, -1.0).astype(outputs.dtype)

    def classes(self) -> tuple[int, ...]:
        return (self.target,)

    def describe(self) -> str:
        return f"indicator:{self.target}"


@dataclasses.dataclass(frozen=True)
class AllLogits(OutputSelector):
    """Every class logit at once: one function per class (the batched path)."""

    def select(self, outputs: jax.Array) -> jax.Array:
        return outputs

    def output_labels(self, num_classes: int) -> tuple[str, ...]:
        return tuple(f"logit:{c}" for c in range(num_classes))

    def describe(self) -> str:
        return "logits"


@dataclasses.dataclass(frozen=True)
class AllLogProbs(OutputSelector):
    """Every class log-probability at once: one function per class."""

    def select(self, outputs: jax.Array) -> jax.Array:
        return jax.nn.log_softmax(outputs, axis=-1)

    def output_labels(self, num_classes: int) -> tuple[str, ...]:
        return tuple(f"log_prob:{c}" for c in range(num_classes))

    def describe(self) -> str:
        return "log_probs"


_SINGLE = {"logit": Logit, "log_prob": LogProb, "prob": Prob, "indicator": ClassIndicator}
_ALL = {"logits": AllLogits, "log_probs": AllLogProbs}


def parse_output(spec: Any) -> OutputSelector:
    """Turn ``'logit:7'``, ``'logit_diff:1-0'``, ``'logits'``, … (or a selector) into a selector."""
    if isinstance(spec, OutputSelector):
        return spec
    if not isinstance(spec, str):
        raise ActSpecError(
            f"output must be an OutputSelector or a string like 'logit:7', got {type(spec).__name__}."
        )
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    known = sorted([*_SINGLE, *_ALL, "logit_diff"])
    try:
        if name in _ALL and not arg:
            return _ALL[name]()
        if name in _SINGLE:
            return _SINGLE[name](int(arg))
        if name == "logit_diff":
            a, b = arg.split("-")
            return LogitDiff(int(a), int(b))
    except ValueError:
        pass
    raise ActSpecError(
        f"cannot parse output {spec!r}. Use one of {known}, e.g. 'indicator:7', 'logit_diff:1-0', 'logits'."
    )
