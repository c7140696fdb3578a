"""Strict validation of results files (private; used by :mod:`actspec_jax.spectrum`).

Every check names the file and the field, and raises
:class:`~actspec_jax.errors.SpectrumFormatError`: a file either loads to exactly the object
that was saved or is refused — never a raw ``TypeError``/``KeyError``, never a silently
"repaired" value (``n: 5.7`` → 5, subset ``[0.5]`` → ``(0,)``, duplicate subsets, NaN
coefficients).
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from actspec_jax.errors import SpectrumFormatError

__all__ = [
    "MAX_N",
    "check_dense",
    "check_header",
    "check_output_shape",
    "jsonable",
    "read_npz",
    "spectrum_fields",
]

MAX_N = 1 << 20  # a larger neuron count is certainly corruption
MAX_DENSE_N = 40  # a dense spectrum of more neurons cannot have been written


def _bad(source: str, field: str, problem: str) -> SpectrumFormatError:
    return SpectrumFormatError(f"{source}: field {field!r} {problem}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _reals(doc: Mapping, field: str, source: str, *, finite: bool, nonneg: bool) -> np.ndarray:
    values = doc[field]
    if not isinstance(values, list):
        raise _bad(source, field, f"must be a list of numbers, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not _is_real(v):
            raise _bad(source, field, f"has a non-number at position {i}: {v!r}")
        if finite and not math.isfinite(v):
            raise _bad(source, field, f"has a non-finite value at position {i}: {v!r}")
        if nonneg and v < 0:
            raise _bad(source, field, f"has a negative value at position {i}: {v!r}")
    return np.asarray(values, dtype=np.float64).reshape(len(values))


def _subsets(values: Any, n: int, source: str) -> list[tuple[int, ...]]:
    if not isinstance(values, list):
        raise _bad(
            source, "subsets", f"must be a list of lists of neuron indices, got {type(values).__name__}"
        )
    out: list[tuple[int, ...]] = []
    for k, subset in enumerate(values):
        if not isinstance(subset, list):
            raise _bad(source, "subsets", f"entry {k} is not a list: {subset!r}")
        for i in subset:
            if not _is_int(i):
                raise _bad(source, "subsets", f"entry {k} has a non-integer neuron index {i!r}")
            if not 0 <= i < n:
                raise _bad(source, "subsets", f"entry {k} names neuron {i}, outside 0..{n - 1}")
        if any(a >= b for a, b in itertools.pairwise(subset)):
            raise _bad(source, "subsets", f"entry {k} is not strictly increasing: {subset!r}")
        out.append(tuple(int(i) for i in subset))
    seen: set[tuple[int, ...]] = set()
    for subset in out:
        if subset in seen:
            raise _bad(source, "subsets", f"lists the subset {list(subset)} twice")
        seen.add(subset)
    return out


def spectrum_fields(doc: Mapping, source: str) -> dict[str, Any]:
    """Validated constructor arguments of a :class:`~actspec_jax.Spectrum` from its JSON document."""
    for name in ("n", "subsets", "coefficients"):
        if name not in doc:
            raise SpectrumFormatError(f"{source}: missing or malformed field {name!r} (required).")
    n = doc["n"]
    if not _is_int(n) or not 1 <= n <= MAX_N:
        raise _bad(source, "n", f"must be an integer number of neurons in 1..{MAX_N}, got {n!r}")
    n = int(n)
    subsets = _subsets(doc["subsets"], n, source)
    coefficients = _reals(doc, "coefficients", source, finite=True, nonneg=False)
    if len(subsets) != coefficients.shape[0]:
        raise SpectrumFormatError(
            f"{source}: {len(subsets)} subsets but {coefficients.shape[0]} coefficients (fields "
            "'subsets' and 'coefficients' must have one entry per term)."
        )
    stderr = None
    if doc.get("stderr") is not None:
        # NaN = unknown error; otherwise non-negative
        stderr = _reals(doc, "stderr", source, finite=False, nonneg=True)
        if stderr.shape[0] != len(subsets):
            raise _bad(source, "stderr", f"has {stderr.shape[0]} entries for {len(subsets)} terms")
    labels = doc.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(a, str) for a in labels):
            raise _bad(source, "labels", "must be a list of strings")
        if len(labels) != n:
            raise SpectrumFormatError(f"{source}: {len(labels)} labels for n={n} neurons (field 'labels').")
        labels = tuple(labels)
    norm_sq = doc.get("norm_sq")
    if norm_sq is not None:
        if not _is_real(norm_sq) or not math.isfinite(norm_sq) or norm_sq < 0:
            raise _bad(source, "norm_sq", f"must be a finite non-negative number, got {norm_sq!r}")
        norm_sq = float(norm_sq)
    meta = {}
    for name in ("problem", "solver"):
        value = doc.get(name)
        if value is not None and not isinstance(value, Mapping):
            raise _bad(source, name, f"must be an object (mapping), got {type(value).__name__}")
        meta[name] = dict(value or {})
    label = doc.get("output_label")
    if label is not None and not isinstance(label, str):
        raise _bad(source, "output_label", f"must be a string, got {label!r}")
    index = doc.get("output_index")
    if index is not None and (not _is_int(index) or index < 0):
        raise _bad(source, "output_index", f"must be a non-negative integer, got {index!r}")
    return {
        "n": n,
        "subsets": subsets,
        "coefficients": coefficients,
        "stderr": stderr,
        "labels": labels,
        "norm_sq": norm_sq,
        "output_label": label,
        "output_index": None if index is None else int(index),
        **meta,
    }


def check_dense(dense: np.ndarray, n: int, source: str) -> np.ndarray:
    """The ``dense`` array of an ``.npz`` file: real floats, shape ``(2^n,)``, finite."""
    if dense.dtype.kind != "f":
        raise _bad(source, "dense", f"must hold floats, got dtype {dense.dtype}")
    if n > MAX_DENSE_N or dense.shape != (1 << n,):
        raise SpectrumFormatError(f"{source}: dense spectrum has shape {dense.shape}, expected (2^{n},).")
    if not np.all(np.isfinite(dense)):
        raise _bad(source, "dense", "has non-finite values")
    return dense


def check_output_shape(value: Any, count: int, source: str) -> tuple[int, ...]:
    """The ``output_shape`` of a batch file: non-negative integers whose product is ``count``."""
    if value is None:
        value = []
    if not isinstance(value, list) or not all(_is_int(v) and v >= 0 for v in value):
        raise _bad(source, "output_shape", f"must be a list of non-negative integers, got {value!r}")
    if value and math.prod(value) != count:
        raise _bad(source, "output_shape", f"{value} does not match the {count} spectra in the file")
    return tuple(int(v) for v in value)


def jsonable(value: Any) -> Any:
    """Convert numpy / jax scalars and arrays inside metadata to plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | jax.Array):
        return np.asarray(value).tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def check_header(doc: Any, expected: str, source: str, newest: int) -> None:
    """Refuse a document that is not a results file of kind ``expected`` at a version ``≤ newest``."""
    if not isinstance(doc, Mapping) or "format" not in doc:
        raise SpectrumFormatError(
            f"{source} is not an actspec_jax results file (no 'format' field); expected {expected!r}."
        )
    if doc["format"] != expected:
        raise SpectrumFormatError(
            f"{source} has format {doc['format']!r}, expected {expected!r}: not an actspec_jax "
            "spectrum, or the wrong kind of results file."
        )
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SpectrumFormatError(f"{source}: missing or invalid format version {version!r}.")
    if version > newest:
        raise SpectrumFormatError(
            f"{source} was written by a newer actspec_jax (format version {version}; this one reads "
            f"up to {newest}). Upgrade actspec_jax to read it."
        )


def read_npz(path: Path, source: str) -> tuple[Any, np.ndarray | None]:
    """``(metadata document, dense array or None)`` of a results ``.npz``; never unpickles."""
    check_zip(path, source)
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            arrays = {name: np.asarray(data[name]) for name in files & {"metadata", "dense"}}
    except Exception as err:  # zip, zlib, header or pickle errors all mean a damaged file
        reason = "it holds pickled objects" if "allow_pickle" in str(err) else f"{type(err).__name__}: {err}"
        raise SpectrumFormatError(
            f"{source} is not a readable actspec_jax .npz results file ({reason}); it is truncated, "
            "corrupt or not a results file."
        ) from err
    extra = files - {"metadata", "dense"}
    if extra:
        raise SpectrumFormatError(f"{source}: unexpected array(s) {sorted(extra)} in a results file.")
    meta = arrays.get("metadata")
    if meta is None or meta.shape != () or meta.dtype.kind != "U":
        raise SpectrumFormatError(f"{source}: field 'metadata' is missing or not a JSON string.")
    try:
        doc = json.loads(str(meta))
    except (json.JSONDecodeError, RecursionError) as err:
        raise SpectrumFormatError(f"{source}: field 'metadata' is not valid JSON ({err}).") from err
    return doc, arrays.get("dense")


class MissingResultsError(SpectrumFormatError, FileNotFoundError):
    """No results file at the path given (also a :class:`FileNotFoundError`)."""


#: Suffixes of results files: readable JSON, or JSON plus the dense spectra in NumPy's ``.npz``.
RESULT_SUFFIXES = (".json", ".npz")
#: Keys of solver metadata that measure time: they differ between otherwise identical runs.
TIMING_KEYS = frozenset({"wall_time_s", "seconds"})


def without_timings(value: Any) -> Any:
    """``value`` (JSON metadata) with every :data:`TIMING_KEYS` entry removed, at any depth."""
    if isinstance(value, Mapping):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def check_results_path(path: str | Path, what: str) -> Path:
    """``path`` as a :class:`Path`, refused unless it ends in ``.json`` or ``.npz``."""
    path = Path(path)
    if path.suffix not in RESULT_SUFFIXES:
        raise SpectrumFormatError(
            f"cannot save {what} to {path}: results files end in .json (readable) or .npz (with dense "
            f"spectra), got {path.suffix or 'no suffix'!r}. Name it e.g. {path.with_suffix('.json').name!r}."
        )
    if path.is_dir():
        raise SpectrumFormatError(f"cannot save {what} to {path}: it is a folder; name a file in it.")
    return path


def write_results(path: Path, doc: dict[str, Any], dense: np.ndarray | None, write: Any) -> Path:
    """Write ``doc`` (and ``dense``, ``.npz`` only) with ``write(path, fn, mode)`` (atomic)."""
    if path.suffix == ".npz":
        arrays = {"metadata": np.asarray(json.dumps(doc))}
        if dense is not None:
            arrays["dense"] = np.asarray(dense)
        write(path, lambda h: np.savez_compressed(h, **arrays), "wb")
    else:
        text = json.dumps(doc, indent=1)
        write(path, lambda h: h.write(text), "w")
    return path


def check_zip(path: Path, source: str) -> None:
    """Refuse a ``.npz`` that is not a zip archive before NumPy tries to unpickle it."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(2)
    except OSError as err:
        raise SpectrumFormatError(f"{source} cannot be read ({err.strerror or err}).") from err
    if magic != b"PK":
        raise SpectrumFormatError(
            f"{source} is not a readable actspec_jax .npz results file (not a zip archive: it starts with "
            f"{magic!r}); it is truncated, corrupt or another kind of file (a .json saved under .npz?)."
        )
