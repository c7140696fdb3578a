"""Output selectors: what scalar(s) of a model's output a spectrum explains.

Each selector maps model outputs ``float[..., C]`` (logits over ``C`` classes) to
``float[...]`` (one function) or ``float[..., C']`` (several functions evaluated
together). Selectors are frozen dataclasses: hashable, so they are static under jit.

Parse a string with :func:`parse_output`: ``"logit:7"``, ``"logit_diff:1-0"``,
``"log_prob:7"``, ``"prob:7"``, ``"indicator:7"``, ``"logits"`` (every class),
``"log_probs"`` (every class).

Sequence models (outputs ``float[m, T, V]``, e.g. next-token logits of a language model)
choose a position with an ``@`` suffix (:class:`At`): ``"logit:3@last"`` (position ``T − 1``),
``"log_prob:42@-1"`` or ``"logit:3@7"`` (an index, negative from the end),
``"logit_diff:3-5@mean"`` (the selected value averaged over positions). Any callable of the
model's batched output is a selector too (:class:`Custom`), e.g.
``output=lambda logits: logits[:, -1, 3] - logits[:, -1, 5]``; it must return ``[m]`` (one
function) or ``[m, K]`` (``K`` functions).

Every output's shape is checked once, when a problem is built
(:func:`check_selected_shape`): a selector that would leave extra axes (``logit:3`` on
``[m, T, V]`` logits would be ``T`` separate functions) is refused with the fix.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import checkify

from actspec_jax.errors import ActSpecError
from actspec_jax.problems.base import check_real_output

__all__ = [
    "AllLogProbs",
    "AllLogits",
    "At",
    "ClassIndicator",
    "Custom",
    "LogProb",
    "Logit",
    "LogitDiff",
    "OutputSelector",
    "Prob",
    "check_selected_shape",
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

    def validate(self, num_classes: int) -> None:
        super().validate(num_classes)
        if self.positive % num_classes == self.negative % num_classes:
            raise ActSpecError(
                f"{self.describe()} is z_a − z_a = 0 for every mask: choose two different classes."
            )

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


@dataclasses.dataclass(frozen=True)
class At(OutputSelector):
    """A selector applied at one position of sequence outputs ``float[m, T, V]``.

    ``position``: ``'last'`` (``T − 1``), an index (negative counts from the end) or
    ``'mean'`` (the inner selector at every position, averaged over ``T``).
    """

    inner: OutputSelector
    position: int | str = "last"

    def __post_init__(self) -> None:
        if isinstance(self.position, str) and self.position not in ("last", "mean"):
            raise ActSpecError(f"position must be 'last', 'mean' or an index, got {self.position!r}.")

    def select(self, outputs: jax.Array) -> jax.Array:
        if self.position == "mean":
            return jnp.mean(self.inner.select(outputs), axis=1)
        index = -1 if self.position == "last" else int(self.position)
        return self.inner.select(outputs[:, index])

    def classes(self) -> tuple[int, ...]:
        return self.inner.classes()

    def output_labels(self, num_classes: int) -> tuple[str, ...] | None:
        labels = self.inner.output_labels(num_classes)
        return None if labels is None else tuple(f"{a}@{self.position}" for a in labels)

    def describe(self) -> str:
        return f"{self.inner.describe()}@{self.position}"

    def check_positions(self, shape: tuple[int, ...]) -> None:
        """Refuse outputs without a position axis, or an index outside it."""
        if len(shape) < 3:
            raise ActSpecError(
                f"{self.describe()!r} picks a position of sequence outputs [m, T, V], but the model "
                f"returns shape {list(shape)}; drop the '@{self.position}' suffix."
            )
        if isinstance(self.position, int) and not -shape[1] <= self.position < shape[1]:
            raise ActSpecError(
                f"{self.describe()!r}: position {self.position} is outside the T = {shape[1]} positions "
                f"of outputs of shape {list(shape)}."
            )


@dataclasses.dataclass(frozen=True)
class Custom(OutputSelector):
    """Any callable of the model's batched output: ``fn(outputs [m, ...]) -> [m]`` or ``[m, K]``."""

    fn: Any
    name: str | None = None

    def select(self, outputs: jax.Array) -> jax.Array:
        return jnp.asarray(self.fn(outputs))

    def describe(self) -> str:
        return f"callable:{self.name or getattr(self.fn, '__name__', type(self.fn).__name__)}"


def check_selected_shape(selector: OutputSelector, outputs: Any, num_inputs: int) -> tuple[int, ...]:
    """Check ONCE what a selector makes of the model's outputs; returns the per-input shape.

    One function per input needs ``[m]``; the all-class selectors give ``[m, C]``; a
    :class:`Custom` callable may give ``[m]`` or ``[m, K]``. Anything else (extra position
    axes, a lost batch axis) raises :class:`ActSpecError` naming the shape and the fix.
    """
    shape = tuple(int(z) for z in outputs.shape)
    if isinstance(selector, At):
        selector.check_positions(shape)
    try:
        got = tuple(int(z) for z in jax.eval_shape(selector.select, outputs).shape)
    except Exception as err:  # a callable that does not fit the outputs
        raise ActSpecError(
            f"output {selector.describe()!r} fails on the model's outputs of shape {list(shape)}: {err}"
        ) from err
    check_real_output(jax.eval_shape(selector.select, outputs).dtype, f"output {selector.describe()!r}")
    if isinstance(selector, Custom):
        check_custom_indices(selector, outputs)
    fix = (
        f"the model returns sequence outputs {list(shape)}; choose a position, e.g. "
        f"'{selector.describe()}@last', '@-1', '@mean', or pass output=callable(outputs) -> [m]."
        if len(shape) >= 3
        else "pass output=callable(outputs) returning [m] (one function) or [m, K]."
    )
    if not got or got[0] != num_inputs:
        raise ActSpecError(
            f"output {selector.describe()!r} must keep the input batch axis (m = {num_inputs}) first; "
            f"it gives shape {list(got)} from outputs {list(shape)}."
        )
    per_class = isinstance(selector, (AllLogits, AllLogProbs)) or (
        isinstance(selector, At) and isinstance(selector.inner, (AllLogits, AllLogProbs))
    )
    allowed = 2 if per_class or isinstance(selector, Custom) else 1
    if len(got) > allowed:
        raise ActSpecError(
            f"output {selector.describe()!r} gives shape {list(got)} per batch of outputs {list(shape)}, "
            f"i.e. {math.prod(got[1:])} separate functions per input; {fix}"
        )
    return got[1:]


#: Largest probe (elements of one input's outputs) the out-of-range index check runs on.
INDEX_PROBE = 1 << 24


def check_custom_indices(selector: Custom, outputs: Any) -> None:
    """Refuse a callable that indexes past the model's outputs (``z[..., 99]`` of 10 classes).

    JAX clamps out-of-range indices (it would read class 9, silently); the callable is run once,
    checked (:mod:`jax.experimental.checkify` index checks), on zeros shaped like one input's
    outputs. Callables it cannot check that way (or larger probes than :data:`INDEX_PROBE`) pass.
    """
    shape = (1, *tuple(int(z) for z in outputs.shape[1:]))
    if math.prod(shape) > INDEX_PROBE:
        return
    checked = checkify.checkify(selector.select, errors=checkify.index_checks)
    try:
        error, _ = jax.jit(checked)(jnp.zeros(shape, outputs.dtype))
        message = error.get()
    except Exception:  # a callable that needs the real batch: not checkable here
        return
    if message:
        raise ActSpecError(
            f"output {selector.describe()!r} indexes past the model's outputs of shape "
            f"{list(outputs.shape)}: "
            f"{message.strip()} (JAX would clamp the index and read the last entry instead)."
        )


_SINGLE = {"logit": Logit, "log_prob": LogProb, "prob": Prob, "indicator": ClassIndicator}
_ALL = {"logits": AllLogits, "log_probs": AllLogProbs}


def parse_output(spec: Any) -> OutputSelector:
    """Turn ``'logit:7'``, ``'logit_diff:1-0'``, ``'logits'``, ``'log_prob:42@last'``, a callable
    (or a selector) into a selector."""
    if isinstance(spec, OutputSelector):
        return spec
    if callable(spec):
        return Custom(spec)
    if not isinstance(spec, str):
        raise ActSpecError(
            "output must be an OutputSelector, a callable of the model's outputs or a string like "
            f"'logit:7', got {type(spec).__name__}."
        )
    if "@" in spec:
        body, _, where = spec.rpartition("@")
        where = where.strip().lower()
        try:
            position: int | str = where if where in ("last", "mean") else int(where)
        except ValueError:
            raise ActSpecError(
                f"cannot parse the position of output {spec!r}: use '@last', '@mean' or '@INDEX' "
                "(e.g. 'log_prob:42@-1')."
            ) from None
        return At(parse_output(body), position)
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
    raise ActSpecError(f"cannot parse output {spec!r}.{_output_hint(name, arg, known)} Use one of {known}, "
                       "e.g. 'indicator:7', 'logit_diff:1-0', 'logits'.")  # fmt: skip


def _output_hint(name: str, arg: str, known: list[str]) -> str:
    """' Did you mean …?' for a near-miss output name, or what the named output takes."""
    import difflib

    if name in _ALL:
        return f" '{name}' takes no class (it is every class); for one class use '{name[:-1]}:{arg}'."
    if name == "logit_diff":
        return " 'logit_diff' takes two classes: 'logit_diff:1-0'."
    if name in _SINGLE:
        return f" '{name}' takes one class: '{name}:7'."
    stem = name.rstrip("0123456789")
    if stem != name and not arg:  # 'log_prob1'
        name, arg = stem, name[len(stem) :]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:
        return ""
    return f" Did you mean '{close[0]}{':' + arg if arg and close[0] not in _ALL else ''}'?"
