"""The result type: a (sparse) Fourier spectrum with its provenance.

A :class:`Spectrum` lists subsets ``S`` of the ``n`` neurons and their coefficients
``f̂(S)`` (sign convention: :mod:`actspec_jax.transforms.indexing`), sorted by ``|f̂(S)|``
descending, plus what produced it: the problem's description, the solver's settings, key,
number of function evaluations and wall time. Exact solvers also attach the dense
spectrum ``float[2^n]``; sampling solvers attach a standard error per coefficient.

Files: ``save('x.json')`` writes a versioned, human-readable JSON document;
``save('x.npz')`` writes arrays (including the dense spectrum) with the metadata as a
JSON string. :meth:`Spectrum.load` validates either and never unpickles anything.

Size: the result types and their one file-format path (``.json`` and ``.npz``, single spectra and
batches), kept together so both formats stay in step; field validation lives in ``_format``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax import _format
from actspec_jax._io import atomic_write
from actspec_jax.errors import SpectrumFormatError
from actspec_jax.transforms.indexing import (
    characters,
    membership_from_packed,
    num_words,
    packed_from_tuples,
    unpack_subsets,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "Spectrum", "SpectrumBatch", "load_results", "share_percent"]

#: The ``format`` field of a saved spectrum (``spectrum.json``).
FORMAT = "actspec_jax.spectrum"
BATCH_FORMAT = "actspec_jax.spectrum_batch"
#: The version of the saved-spectrum format this release writes and reads.
FORMAT_VERSION = 1


def _popcount_table(n: int) -> np.ndarray:
    """Degree ``|S|`` of every subset index ``S < 2^n``."""
    degrees = np.zeros(1 << n, dtype=np.int8)
    for i in range(n):
        degrees.reshape(-1, 2, 1 << i)[:, 1, :] += 1
    return degrees


def canonical_order(packed: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Indices sorting terms by ``|coefficient|`` descending, equal magnitudes by degree, then by
    subset (its packed words) — one order whatever order the terms arrived in (several devices
    return the same terms in another order). Terms whose magnitudes differ only in float
    round-off (≈1e-7 relative on several devices) may still trade places."""
    words = np.asarray(packed, np.uint32)
    degree = np.unpackbits(words.view(np.uint8), axis=1).sum(axis=1) if words.size else np.zeros(len(words))
    keys = (*[words[:, w] for w in range(words.shape[1] - 1, -1, -1)], degree, -np.abs(coefficients))
    return np.lexsort(keys)


def _atomic_write(path: Path, write: Any, mode: str, *, label: str = "results") -> None:
    """Durable atomic write (:func:`actspec_jax._io.atomic_write`)."""
    atomic_write(path, write, mode, label=label)


def _joint_share(degrees: np.ndarray, weights: np.ndarray) -> float:
    """``Σ_{|S|≥2} w / Σ_{|S|≥1} w`` (0 without non-constant weight)."""
    energy = float(weights[degrees > 0].sum())
    return float(weights[degrees >= 2].sum() / energy) if energy > 0 else 0.0


def share_percent(share: float) -> str:
    """How every share is printed: a percentage with one decimal, e.g. ``0.0876 → '8.8 %'``."""
    return f"{100 * float(share):.1f} %"


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class Spectrum:
    """Sparse Fourier spectrum of one pseudo-Boolean function.

    Attributes:
      n: number of variables (neurons).
      subsets: ``uint32[K, W]`` bit-packed subsets (neuron ``i`` at bit ``i % 32`` of word
        ``i // 32``), sorted by ``|coefficient|`` descending.
      coefficients: ``float[K]`` Fourier coefficients ``f̂(S)`` in the output's units.
      stderr: ``float[K]`` standard errors (sampling solvers) or ``None`` (exact).
      labels: a label per neuron.
      norm_sq: ``E_x[f(x)²] = Σ_S f̂(S)²`` over the *whole* spectrum when known (exact) or
        estimated (sampling), used for captured-energy shares.
      problem: the problem's description (layer, output, fill, number of inputs, …).
      solver: solver name, settings, key, function evaluations, wall time (seconds).
      dense: ``float[2^n]`` full spectrum in subset-index order (exact solver only).
      output_label / output_index: which output of a batched problem this spectrum explains.
    """

    n: int
    subsets: np.ndarray
    coefficients: np.ndarray
    stderr: np.ndarray | None = None
    labels: tuple[str, ...] | None = None
    norm_sq: float | None = None
    problem: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    solver: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dense: np.ndarray | None = None
    output_label: str | None = None
    output_index: int | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        n: int,
        subsets: np.ndarray | Sequence[Sequence[int]],
        coefficients: Any,
        *,
        stderr: Any = None,
        **kwargs: Any,
    ) -> Spectrum:
        """Validate, pack (tuples → bits) and sort by ``|coefficient|`` descending."""
        if isinstance(subsets, np.ndarray) and subsets.dtype == np.uint32 and subsets.ndim == 2:
            packed = subsets
        else:
            packed = packed_from_tuples([tuple(s) for s in subsets], n)
        coefficients = np.asarray(coefficients)
        if packed.shape != (coefficients.shape[0], num_words(n)):
            raise ValueError(
                f"subsets {packed.shape} and coefficients {coefficients.shape} do not match n={n}."
            )
        order = canonical_order(packed, coefficients)
        stderr = None if stderr is None else np.asarray(stderr)[order]
        labels = kwargs.pop("labels", None)
        return cls(
            n=int(n),
            subsets=packed[order],
            coefficients=coefficients[order],
            stderr=stderr,
            labels=None if labels is None else tuple(str(a) for a in labels),
            **kwargs,
        )

    @classmethod
    def from_dict(cls, terms: Mapping[tuple[int, ...], float], n: int, **kwargs: Any) -> Spectrum:
        """From ``{subset tuple: coefficient}`` (the inverse of :meth:`to_dict`)."""
        keys = list(terms)
        return cls.build(n, keys, np.asarray([terms[k] for k in keys], dtype=np.float64), **kwargs)

    # ------------------------------------------------------------------ basic views
    @property
    def num_terms(self) -> int:
        return int(self.coefficients.shape[0])

    def __len__(self) -> int:
        return self.num_terms

    @property
    def membership(self) -> np.ndarray:
        """``bool[K, n]``: ``membership[k, i]`` ⇔ neuron ``i`` ∈ ``S_k``."""
        return unpack_subsets(np.asarray(self.subsets), self.n)

    @property
    def degrees(self) -> np.ndarray:
        """``int[K]``: ``|S_k|``."""
        return self.membership.sum(axis=1)

    @property
    def neuron_labels(self) -> tuple[str, ...]:
        return self.labels if self.labels is not None else tuple(str(i) for i in range(self.n))

    def subset_tuples(self) -> list[tuple[int, ...]]:
        """Subsets as sorted tuples of neuron indices, in coefficient order."""
        member = self.membership
        return [tuple(int(i) for i in np.flatnonzero(row)) for row in member]

    def to_dict(self) -> dict[tuple[int, ...], float]:
        """``{tuple(sorted neuron indices): coefficient}``; ``()`` is the constant term."""
        return {s: float(c) for s, c in zip(self.subset_tuples(), np.asarray(self.coefficients))}

    @property
    def constant(self) -> float:
        """``f̂(∅) = E_x[f(x)]`` (0 if the empty set is not among the terms)."""
        if self.dense is not None:
            return float(self.dense[0])
        hits = np.flatnonzero(self.degrees == 0)
        return float(self.coefficients[hits[0]]) if hits.size else 0.0

    def top(self, k: int) -> Spectrum:
        """The ``k`` largest terms by ``|f̂(S)|`` (dense spectrum kept)."""
        k = max(0, int(k))
        return dataclasses.replace(
            self,
            subsets=self.subsets[:k],
            coefficients=self.coefficients[:k],
            stderr=None if self.stderr is None else self.stderr[:k],
        )

    def select(self, *, min_degree: int = 0, max_degree: int | None = None) -> Spectrum:
        """The listed terms with ``min_degree ≤ |S| ≤ max_degree`` (order kept).

        The selection is a spectrum of its own: its dense array (the whole spectrum's) is dropped,
        so :meth:`summary`, :meth:`distributedness` and :meth:`energy_by_degree` describe the
        selected terms whichever solver made them."""
        degrees = self.degrees
        keep = degrees >= min_degree
        if max_degree is not None:
            keep &= degrees <= max_degree
        return dataclasses.replace(
            self,
            subsets=self.subsets[keep],
            coefficients=self.coefficients[keep],
            stderr=None if self.stderr is None else self.stderr[keep],
            dense=None,
        )

    # ------------------------------------------------------------------ energy views
    def _weights_by_term(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(degrees, squared coefficients, membership or None for dense) over all known terms."""
        if self.dense is not None:
            weights = np.asarray(self.dense, dtype=np.float64) ** 2
            return _popcount_table(self.n), weights, None
        member = self.membership
        return member.sum(axis=1), np.asarray(self.coefficients, np.float64) ** 2, member

    def energy_by_degree(self, max_degree: int | None = None) -> np.ndarray:
        """``W^k = Σ_{|S|=k} f̂(S)²`` for ``k = 0 … max_degree`` (default: up to the largest).

        Uses the dense spectrum when present (exact), else the listed terms.
        """
        degrees, weights, _ = self._weights_by_term()
        top = int(degrees.max(initial=0)) if max_degree is None else int(max_degree)
        return np.bincount(degrees.astype(np.int64), weights=weights, minlength=top + 1)[: top + 1]

    def participation(self, weighted: bool = True) -> np.ndarray:
        """Per-neuron participation ``float[n]``.

        ``weighted=True``: ``Σ_{S∋i} f̂(S)² / Σ_{|S|≥1} f̂(S)²`` — the share of the non-constant
        energy in terms that involve neuron ``i`` (sums to the mean degree).
        ``weighted=False``: the number of listed subsets that contain ``i`` (the paper's
        heatmap count).
        """
        if not weighted:
            return self.membership.sum(axis=0).astype(np.float64)
        degrees, weights, member = self._weights_by_term()
        total = weights[degrees > 0].sum()
        if member is None:
            out = np.array([weights.reshape(-1, 2, 1 << i)[:, 1, :].sum() for i in range(self.n)])
        else:
            out = member.T.astype(np.float64) @ weights
        return out / total if total > 0 else np.zeros(self.n)

    def interaction_share(self) -> float:  # printed everywhere with share_percent
        """The share of the **listed terms'** non-constant energy in joint subsets:
        ``Σ_{|S|≥2} f̂(S)² / Σ_{|S|≥1} f̂(S)²`` over the terms this spectrum holds (all ``2^n`` for an
        exact one that kept its dense array; 0 when it holds no non-constant term).

        This is the one definition of "share in interactions" for listed terms; the whole
        spectrum's (terms listed or not) is :meth:`DegreeProfile.interaction_share
        <actspec_jax.solvers.DegreeProfile.interaction_share>`, estimated without finding
        coefficients. The two differ when the list misses many small terms.
        """
        degrees, weights, _ = self._weights_by_term()
        return _joint_share(degrees, weights)

    def distributedness(self) -> dict[str, float]:
        """How distributed the code is, from the non-constant energy ``E = Σ_{|S|≥1} f̂(S)²``.

        Returns:
          ``higher_order_share``: ``Σ_{|S|≥2} f̂(S)² / E`` (:meth:`interaction_share`; 0 = purely
          additive, 1 = no single neuron matters alone); ``mean_degree``: ``Σ |S| f̂(S)² / E``;
          ``effective_terms``: ``E² / Σ f̂(S)⁴`` (how many terms share the energy);
          ``nonconstant_energy``: ``E``; ``captured_share``: listed terms' energy over
          ``norm_sq`` (NaN if unknown).
        """
        degrees, weights, _ = self._weights_by_term()
        nonconst = weights[degrees > 0]
        energy = float(nonconst.sum())
        listed = float((np.asarray(self.coefficients, np.float64) ** 2).sum())
        share = _joint_share(degrees, weights)
        if energy <= 0:
            mean_deg = eff = 0.0
        else:
            mean_deg = float((degrees * weights).sum() / energy)
            eff = float(energy**2 / (nonconst**2).sum())
        captured = listed / self.norm_sq if self.norm_sq else float("nan")
        return {
            "higher_order_share": share,
            "mean_degree": mean_deg,
            "effective_terms": eff,
            "nonconstant_energy": energy,
            "captured_share": float(captured),
        }

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, masks: jax.Array) -> jax.Array:
        """Sparse approximation ``Σ_S f̂(S) χ_S(x)`` at masks ``float[k, n]`` → ``float[k]`` (jittable)."""
        member = membership_from_packed(jnp.asarray(self.subsets), self.n)
        chi = characters(jnp.asarray(masks), member)
        coef = jnp.asarray(self.coefficients, dtype=chi.dtype)
        return chi @ coef

    def r2(self, problem: Any, *, key: jax.Array, num_masks: int = 2048) -> float:
        """Faithfulness R² of :meth:`evaluate` against ``problem`` on fresh uniform random masks."""
        from actspec_jax.solvers.common.heldout import faithfulness_r2

        return faithfulness_r2(self, problem, key=key, num_masks=num_masks)

    # ------------------------------------------------------------------ text
    def summary(self, k: int = 10) -> str:
        """A small text table of the top ``k`` terms and the distributedness figures."""
        labels = self.neuron_labels
        lines = []
        head = "  #  coefficient" + ("    stderr" if self.stderr is not None else "") + "  subset"
        lines.append(head)
        for row, (subset, coef) in enumerate(zip(self.subset_tuples()[:k], self.coefficients[:k])):
            names = "{" + ", ".join(labels[i] for i in subset) + "}" if subset else "∅ (constant)"
            err = f"  {float(self.stderr[row]):8.2g}" if self.stderr is not None else ""
            lines.append(f"{row + 1:3d}  {float(coef):+#11.4g}{err}  {names}")
        d = self.distributedness()
        lines.append(
            f"listed terms: interaction share {share_percent(d['higher_order_share'])}, energy-weighted mean "
            f"degree {d['mean_degree']:.2f}, effective number of terms {d['effective_terms']:.1f}"
        )
        profile = self.degree_profile()
        if profile is not None:
            lines.append(f"whole spectrum ({profile.evaluations} extra masks): {profile.headline()}")
        return "\n".join(lines)

    def degree_profile(self) -> Any:
        """The estimated degree profile of the *whole* spectrum that a large-n solver attached
        (``solver['degree_profile']``, a :class:`~actspec_jax.solvers.common.degree_profile.DegreeProfile`),
        or ``None``. Unlike :meth:`energy_by_degree` it covers the terms that were not listed."""
        from actspec_jax.solvers.common.degree_profile import DegreeProfile, DegreeProfileError

        record = self.solver.get("degree_profile")
        if not isinstance(record, Mapping):
            return None
        try:
            return DegreeProfile.from_dict(dict(record))
        except DegreeProfileError:
            return None

    def __repr__(self) -> str:
        src = self.solver.get("name", "?")
        return f"Spectrum(n={self.n}, terms={self.num_terms}, solver={src}, output={self.output_label!r})"

    # ------------------------------------------------------------------ I/O
    def to_json_dict(self) -> dict[str, Any]:
        """The JSON document written by :meth:`save` (no dense spectrum)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "n": self.n,
            "subsets": [list(s) for s in self.subset_tuples()],
            "coefficients": [float(c) for c in np.asarray(self.coefficients)],
            "stderr": None if self.stderr is None else [float(e) for e in np.asarray(self.stderr)],
            "labels": None if self.labels is None else list(self.labels),
            "norm_sq": None if self.norm_sq is None else float(self.norm_sq),
            "problem": _format.jsonable(dict(self.problem)),
            "solver": _format.jsonable(dict(self.solver)),
            "output_label": self.output_label,
            "output_index": self.output_index,
        }

    @classmethod
    def from_json_dict(cls, doc: Any, *, source: str = "document") -> Spectrum:
        """Validate and rebuild a spectrum from :meth:`to_json_dict` output."""
        _format.check_header(doc, FORMAT, source, FORMAT_VERSION)
        fields = _format.spectrum_fields(doc, source)
        fields["subsets"] = packed_from_tuples(fields["subsets"], fields["n"])
        return cls(**fields)

    def save(self, path: str | os.PathLike, *, timings: bool = True) -> Path:
        """Write to ``.json`` (readable; no dense spectrum) or ``.npz`` (arrays incl. dense).

        Writes atomically (temporary file + rename). Returns the path. ``timings=False`` leaves out
        the solver's timing fields (:data:`~actspec_jax._format.TIMING_KEYS`: ``wall_time_s``, GL's
        per-level ``seconds``), the only fields in which two runs with the same problem, settings
        and key differ: such files are then byte-identical.
        """
        path = _format.check_results_path(path, "a spectrum")
        _refuse_non_finite(self, path)
        return _format.write_results(path, self._document(timings), self.dense, _atomic_write)

    def _document(self, timings: bool) -> dict[str, Any]:
        doc = self.to_json_dict()
        return doc if timings else {**doc, "solver": _format.without_timings(doc["solver"])}

    @classmethod
    def load(cls, path: str | os.PathLike) -> Spectrum:
        """Read a file written by :meth:`save`; raises :class:`SpectrumFormatError` if invalid."""
        result = load_results(path)
        if not isinstance(result, Spectrum):
            raise SpectrumFormatError(f"{path} holds a batch of spectra; use SpectrumBatch.load.")
        return result

    # ------------------------------------------------------------------ pytree
    def tree_flatten(self):
        children = (self.subsets, self.coefficients, self.stderr, self.dense)
        aux = json.dumps(
            {
                "n": self.n,
                "labels": self.labels,
                "norm_sq": self.norm_sq,
                "problem": _format.jsonable(dict(self.problem)),
                "solver": _format.jsonable(dict(self.solver)),
                "output_label": self.output_label,
                "output_index": self.output_index,
            }
        )
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        meta = json.loads(aux)
        subsets, coefficients, stderr, dense = children
        labels = meta.pop("labels")
        return cls(
            subsets=subsets,
            coefficients=coefficients,
            stderr=stderr,
            dense=dense,
            labels=None if labels is None else tuple(labels),
            **meta,
        )


@dataclasses.dataclass(frozen=True, eq=False)
class SpectrumBatch(Sequence):
    """Spectra of a batch of functions that shared every mask evaluation.

    Index it like a list; ``batch.dense`` stacks the dense spectra (exact solver) into
    ``float[B, 2^n]``; ``output_shape`` is the problem's output shape (``B = prod``).
    """

    spectra: tuple[Spectrum, ...]
    output_shape: tuple[int, ...]

    def __getitem__(self, index):  # type: ignore[override]
        return self.spectra[index]

    def __len__(self) -> int:
        return len(self.spectra)

    def __iter__(self) -> Iterator[Spectrum]:
        return iter(self.spectra)

    @property
    def output_labels(self) -> tuple[str | None, ...]:
        return tuple(s.output_label for s in self.spectra)

    def r2(self, problem: Any, *, key: jax.Array, num_masks: int = 2048) -> np.ndarray:
        """``float64[K]``: each output's held-out R² against the ``K``-output ``problem`` it was
        computed from, on one set of fresh uniform masks (the model is evaluated once)."""
        from actspec_jax.solvers.common.heldout import faithfulness_r2_batch

        return faithfulness_r2_batch(self.spectra, problem, key=key, num_masks=num_masks)

    @property
    def dense(self) -> np.ndarray | None:
        if any(s.dense is None for s in self.spectra):
            return None
        return np.stack([np.asarray(s.dense) for s in self.spectra])

    def to_dicts(self) -> list[dict[tuple[int, ...], float]]:
        return [s.to_dict() for s in self.spectra]

    def save(self, path: str | os.PathLike, *, timings: bool = True) -> Path:
        """Write all spectra to ``.json`` (one readable document; no dense spectra) or ``.npz`` (the
        same document plus the stacked dense spectra ``float[B, 2^n]`` when every spectrum has one),
        atomically, as :meth:`Spectrum.save` does (``timings`` as there). NaN/inf coefficients are
        refused here, not only when the file is read back."""
        path = _format.check_results_path(path, "a batch of spectra")
        for spectrum in self.spectra:
            _refuse_non_finite(spectrum, path)
        doc = {
            "format": BATCH_FORMAT,
            "version": FORMAT_VERSION,
            "output_shape": list(self.output_shape),
            "spectra": [s._document(timings) for s in self.spectra],
        }
        return _format.write_results(path, doc, self.dense, _atomic_write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpectrumBatch:
        result = load_results(path)
        if not isinstance(result, SpectrumBatch):
            raise SpectrumFormatError(f"{path} holds a single spectrum; use Spectrum.load.")
        return result


def _refuse_non_finite(spectrum: Spectrum, path: Path) -> None:
    for name in ("coefficients", "dense"):
        values = getattr(spectrum, name)
        if values is not None and not np.all(np.isfinite(np.asarray(values))):
            raise SpectrumFormatError(
                f"cannot save to {path}: the spectrum's {name} hold NaN/inf, which no results file "
                "may contain (the loader would refuse it)."
            )


def load_results(path: str | os.PathLike) -> Spectrum | SpectrumBatch:
    """Load a :class:`Spectrum` or :class:`SpectrumBatch` from ``.json`` or ``.npz``."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise _format.MissingResultsError(f"no results file at {source}.")
    if path.is_dir():
        raise SpectrumFormatError(f"{source} is a folder, not a results file (e.g. its spectrum.json).")
    dense = None
    if path.suffix == ".npz":
        doc, dense = _format.read_npz(path, source)
    else:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise SpectrumFormatError(
                f"{source} is not valid JSON ({err}); the file is truncated, corrupt or not a results file."
            ) from err
        except OSError as err:
            raise SpectrumFormatError(f"{source} cannot be read ({err.strerror or err}).") from err
    if isinstance(doc, Mapping) and doc.get("format") == BATCH_FORMAT:
        return _batch_from(doc, dense, source)
    spectrum = Spectrum.from_json_dict(doc, source=source)
    if dense is not None:
        spectrum = dataclasses.replace(spectrum, dense=_format.check_dense(dense, spectrum.n, source))
    return spectrum


def _batch_from(doc: Mapping, dense: np.ndarray | None, source: str) -> SpectrumBatch:
    """A :class:`SpectrumBatch` from its document (and stacked dense spectra, from ``.npz``)."""
    _format.check_header(doc, BATCH_FORMAT, source, FORMAT_VERSION)
    items = doc.get("spectra")
    if not isinstance(items, list) or not items:
        raise SpectrumFormatError(f"{source}: field 'spectra' must be a non-empty list.")
    spectra = [Spectrum.from_json_dict(item, source=f"{source}[{i}]") for i, item in enumerate(items)]
    sizes = sorted({s.n for s in spectra})
    if len(sizes) > 1:
        raise SpectrumFormatError(f"{source}: the spectra of one batch must share n, got n = {sizes}.")
    shape = _format.check_output_shape(doc.get("output_shape"), len(spectra), source)
    if dense is not None:
        if dense.ndim != 2 or dense.shape[0] != len(spectra):
            raise SpectrumFormatError(
                f"{source}: field 'dense' must hold one dense spectrum per output, [{len(spectra)}, 2^n], "
                f"got shape {dense.shape}."
            )
        spectra = [
            dataclasses.replace(s, dense=_format.check_dense(row, s.n, f"{source}[{i}]"))
            for i, (s, row) in enumerate(zip(spectra, dense))
        ]
    return SpectrumBatch(spectra=tuple(spectra), output_shape=shape)
