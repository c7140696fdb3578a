"""Results files and checkpoints: round trips, and every mutant loads identically or is refused.

A mutant (truncated, bytes flipped, fields of the wrong type or value, fields dropped, duplicate
subsets, NaN, pickled arrays, foreign versions) must either load to exactly the object that was
saved, load to exactly what the edited document says (a JSON file is human-editable), or raise
:class:`SpectrumFormatError` / :class:`CheckpointError` naming the file (and the field).
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from robustness._hyp import examples

import actspec_jax as asj
from actspec_jax.problems import synthetic
from actspec_jax.solvers.common.checkpoint import read_checkpoint, write_checkpoint


def same_spectrum(a: asj.Spectrum, b: asj.Spectrum) -> bool:
    """Field-by-field identity (values exactly; metadata as JSON)."""

    def arr(x):
        return None if x is None else np.asarray(x)

    def eq(x, y):
        x, y = arr(x), arr(y)
        if x is None or y is None:
            return x is None and y is None
        return x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")

    return (
        a.n == b.n
        and eq(a.subsets, b.subsets)
        and eq(a.coefficients, b.coefficients)
        and eq(a.stderr, b.stderr)
        and a.labels == b.labels
        and a.norm_sq == b.norm_sq
        and json.dumps(a.to_json_dict(), sort_keys=True) == json.dumps(b.to_json_dict(), sort_keys=True)
        and eq(a.dense, b.dense)
        and (a.dense is None or np.asarray(a.dense).dtype == np.asarray(b.dense).dtype)
    )


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
meta_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def spectra(draw, dense: bool = False):
    n = draw(st.integers(1, 6 if dense else 70))
    count = draw(st.integers(0, min(12, 1 << min(n, 10))))
    subsets = draw(
        st.lists(
            st.frozensets(st.integers(0, n - 1), max_size=min(n, 5)),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    coefficients = draw(st.lists(finite, min_size=len(subsets), max_size=len(subsets)))
    stderr = draw(st.none() | st.lists(st.floats(0, 1e6), min_size=len(subsets), max_size=len(subsets)))
    labels = draw(st.none() | st.lists(st.text(max_size=6), min_size=n, max_size=n))
    kwargs = {
        "stderr": stderr,
        "labels": labels,
        "norm_sq": draw(st.none() | st.floats(0, 1e6)),
        "problem": draw(st.dictionaries(st.text(max_size=6), meta_values, max_size=3)),
        "solver": draw(st.dictionaries(st.text(max_size=6), meta_values, max_size=3)),
        "output_label": draw(st.none() | st.text(max_size=6)),
        "output_index": draw(st.none() | st.integers(0, 10)),
    }
    if dense:
        width = draw(st.sampled_from([32, 64]))
        values = st.floats(allow_nan=False, allow_infinity=False, width=width)
        dtype = np.float32 if width == 32 else np.float64
        kwargs["dense"] = np.asarray(draw(st.lists(values, min_size=1 << n, max_size=1 << n)), dtype)
    return asj.Spectrum.build(n, [sorted(s) for s in subsets], np.asarray(coefficients, np.float64), **kwargs)


@settings(max_examples=examples(30))
@given(spec=spectra(), suffix=st.sampled_from([".json", ".npz"]))
def test_any_spectrum_round_trips_exactly(tmp_path_factory, spec, suffix):
    path = tmp_path_factory.mktemp("rt") / f"s{suffix}"
    assert same_spectrum(asj.Spectrum.load(spec.save(path)), spec)


@settings(max_examples=examples(10))
@given(spec=spectra(dense=True))
def test_dense_spectra_round_trip_through_npz(tmp_path_factory, spec):
    path = tmp_path_factory.mktemp("rt") / "s.npz"
    assert same_spectrum(asj.Spectrum.load(spec.save(path)), spec)


#: Where a file is cut, and up to three (position, xor) byte flips — as shares of its length.
CUTS = st.floats(0, 1, exclude_max=True)
FLIPS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=3)


def _damage(path, cut, flips):
    """Flip the bytes at ``flips``, or (none given) truncate the file at ``cut``."""
    data = bytearray(path.read_bytes())
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    if not flips:
        data = data[: int(cut * len(data))]
    path.write_bytes(bytes(data))


def _edit(path, change):
    """Rewrite the JSON document at ``path`` after ``change(doc)``."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _reference(tmp_path, suffix):
    spec = asj.Spectrum.build(
        5,
        [(0, 2), (), (1,), (3, 4)],
        [0.5, 0.25, -0.125, 0.0625],
        stderr=[0.01, 0.02, 0.03, 0.04],
        labels=list("abcde"),
        norm_sq=0.4,
        problem={"layer": "relu_0"},
        solver={"name": "gl"},
        output_label="y",
        output_index=0,
        dense=np.linspace(-1, 1, 32) if suffix == ".npz" else None,
    )
    return spec, spec.save(tmp_path / f"ref{suffix}")


def _loads_faithfully_or_refuses(path, original):
    """The documented contract for one mutant file."""
    try:
        loaded = asj.Spectrum.load(path)
    except asj.SpectrumFormatError as err:
        assert str(path) in str(err), err
        assert "allow_pickle" not in str(err)
        return "refused"
    if same_spectrum(loaded, original):
        return "identical"
    # a still-valid edited JSON document: the object must be exactly what the document says
    assert path.suffix == ".json"
    doc = json.loads(path.read_text())
    assert loaded.n == doc["n"] and loaded.subset_tuples() == [tuple(s) for s in doc["subsets"]]
    assert loaded.coefficients.tolist() == doc["coefficients"]
    assert json.dumps(loaded.to_json_dict()["solver"]) == json.dumps(doc.get("solver") or {})
    return "edited"


@pytest.mark.parametrize("kind", ["spectrum", "batch"])
@settings(max_examples=examples(40))
@given(suffix=st.sampled_from([".json", ".npz"]), cut=CUTS, flips=FLIPS)
def test_truncated_or_bit_flipped_results_files(tmp_path_factory, kind, suffix, cut, flips):
    tmp_path = tmp_path_factory.mktemp("mut")
    if kind == "spectrum":
        original, path = _reference(tmp_path, suffix)
        _damage(path, cut, flips)
        _loads_faithfully_or_refuses(path, original)
        return
    original, path = _batch_reference(tmp_path, suffix)
    _damage(path, cut, flips)
    try:
        loaded = asj.SpectrumBatch.load(path)
    except asj.SpectrumFormatError as err:
        assert str(path) in str(err) and "allow_pickle" not in str(err), err
        return
    if _same_batch(loaded, original):
        return
    assert suffix == ".json"  # a still-valid edit: the batch is what the document says
    doc = json.loads(path.read_text())
    assert [s.coefficients.tolist() for s in loaded] == [d["coefficients"] for d in doc["spectra"]]


MUTATIONS = [
    ("n", 5.7),
    ("n", "5"),
    ("n", True),
    ("n", 0),
    ("n", -3),
    ("n", None),
    ("subsets", [[0.5], [], [1], [3, 4]]),
    ("subsets", [[0, 2], [0, 2], [1], [3, 4]]),
    ("subsets", [[0, 0], [], [1], [3, 4]]),
    ("subsets", [[2, 0], [], [1], [3, 4]]),
    ("subsets", [[0, 9], [], [1], [3, 4]]),
    ("subsets", [[True], [], [1], [3, 4]]),
    ("subsets", "abc"),
    ("subsets", [5, [], [1], [3, 4]]),
    ("coefficients", [float("nan"), 0.25, -0.125, 0.0625]),
    ("coefficients", [float("inf"), 0.25, -0.125, 0.0625]),
    ("coefficients", ["abc", 0.25, -0.125, 0.0625]),
    ("coefficients", [0.5, 0.25]),
    ("coefficients", 3.0),
    ("stderr", [-1.0, 0.02, 0.03, 0.04]),
    ("stderr", [0.01]),
    ("stderr", "x"),
    ("labels", 5),
    ("labels", ["a"]),
    ("labels", [1, 2, 3, 4, 5]),
    ("norm_sq", "abc"),
    ("norm_sq", -1.0),
    ("norm_sq", float("nan")),
    ("problem", [1, 2]),
    ("solver", 5),
    ("output_label", 3),
    ("output_index", -1),
    ("output_index", 1.5),
    ("format", "other.tool"),
    ("version", 2),
    ("version", "1"),
    ("version", 0),
]


@pytest.mark.parametrize(("field", "value"), MUTATIONS, ids=[f"{f}={v!r}" for f, v in MUTATIONS])
def test_wrong_field_types_and_values_are_refused_naming_file_and_field(tmp_path, field, value):
    _, path = _reference(tmp_path, ".json")
    _edit(path, lambda doc: doc.__setitem__(field, value))
    with pytest.raises(asj.SpectrumFormatError) as info:
        asj.Spectrum.load(path)
    message = str(info.value)
    assert str(path) in message
    assert field in message or field in ("format", "version"), message


@pytest.mark.parametrize("field", ["format", "version", "n", "subsets", "coefficients"])
def test_dropping_a_required_field_is_refused(tmp_path, field):
    _, path = _reference(tmp_path, ".json")
    doc = json.loads(path.read_text())
    del doc[field]
    path.write_text(json.dumps(doc))
    with pytest.raises(asj.SpectrumFormatError, match=field if field not in ("format",) else "format"):
        asj.Spectrum.load(path)


def test_npz_mutants_pickles_shapes_dtypes_and_extras(tmp_path):
    original, path = _reference(tmp_path, ".npz")
    with np.load(path) as data:
        meta, dense = str(data["metadata"]), data["dense"]
    cases = {
        "pickled": {"metadata": np.array([object()], dtype=object)},
        "meta-int": {"metadata": np.arange(3)},
        "no-meta": {"dense": dense},
        "dense-shape": {"metadata": meta, "dense": dense[:-1]},
        "dense-int": {"metadata": meta, "dense": dense.astype(np.int64)},
        "dense-nan": {"metadata": meta, "dense": np.where(np.arange(32) == 3, np.nan, dense)},
        "extra": {"metadata": meta, "dense": dense, "evil": np.zeros(2)},
        "foreign-version": {"metadata": meta.replace('"version": 1', '"version": 7'), "dense": dense},
    }
    for name, arrays in cases.items():
        bad = tmp_path / f"{name}.npz"
        np.savez(bad, **arrays)
        with pytest.raises(asj.SpectrumFormatError) as info:
            asj.Spectrum.load(bad)
        assert str(bad) in str(info.value) and "allow_pickle" not in str(info.value), (name, info.value)
    with pytest.raises(asj.SpectrumFormatError, match="pickled"):
        asj.Spectrum.load(tmp_path / "pickled.npz")
    assert same_spectrum(asj.Spectrum.load(path), original)


def test_a_non_finite_spectrum_is_refused_at_save_time_not_only_at_load(tmp_path):
    spec = asj.Spectrum.build(2, [(0,), (1,)], [float("nan"), 1.0])
    for suffix in (".json", ".npz"):
        with pytest.raises(asj.SpectrumFormatError, match="NaN"):
            spec.save(tmp_path / f"x{suffix}")
        assert not (tmp_path / f"x{suffix}").exists()


def test_batch_files_validate_their_shape(tmp_path):
    spec, _ = _reference(tmp_path, ".json")
    batch = asj.SpectrumBatch(spectra=(spec, spec), output_shape=(2,))
    path = batch.save(tmp_path / "b.json")
    assert all(same_spectrum(a, b) for a, b in zip(asj.SpectrumBatch.load(path), batch))
    doc = json.loads(path.read_text())
    for value in ([3], ["2"], 2, [-2]):
        doc["output_shape"] = value
        path.write_text(json.dumps(doc))
        with pytest.raises(asj.SpectrumFormatError, match="output_shape"):
            asj.SpectrumBatch.load(path)


def _batch_reference(tmp_path, suffix):
    spec, _ = _reference(tmp_path, suffix)
    other = dataclasses.replace(spec, coefficients=-spec.coefficients, output_label="z", output_index=1)
    batch = asj.SpectrumBatch(spectra=(spec, other), output_shape=(2,))
    return batch, batch.save(tmp_path / f"batch{suffix}")


def _same_batch(a, b):
    return a.output_shape == b.output_shape and all(same_spectrum(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_batch_round_trips_dense_included(tmp_path, suffix):
    batch, path = _batch_reference(tmp_path, suffix)
    back = asj.SpectrumBatch.load(path)
    assert _same_batch(back, batch)
    assert (back.dense is not None) == (suffix == ".npz")
    if suffix == ".npz":
        np.testing.assert_array_equal(back.dense, batch.dense)


@pytest.mark.parametrize(("field", "value"), MUTATIONS, ids=[f"{f}={v!r}" for f, v in MUTATIONS])
def test_batch_files_refuse_every_field_mutation_of_a_member(tmp_path, field, value):
    _, path = _batch_reference(tmp_path, ".json")
    _edit(path, lambda doc: doc["spectra"][1].__setitem__(field, value))
    with pytest.raises(asj.SpectrumFormatError) as info:
        asj.SpectrumBatch.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"), [("format", "x"), ("version", True), ("version", 9), ("spectra", 3), ("spectra", [])]
)
def test_batch_header_mutations_are_refused(tmp_path, field, value):
    _, path = _batch_reference(tmp_path, ".json")
    _edit(path, lambda doc: doc.__setitem__(field, value))
    with pytest.raises(asj.SpectrumFormatError) as info:
        asj.SpectrumBatch.load(path)
    assert str(path) in str(info.value)


def test_results_files_need_a_results_suffix_and_npz_must_be_a_zip(tmp_path):
    batch, _ = _batch_reference(tmp_path, ".json")
    for target in (batch, batch[0]):
        with pytest.raises(asj.SpectrumFormatError, match=r"\.json .* or \.npz"):
            target.save(tmp_path / "x.txt")
        assert not (tmp_path / "x.txt").exists()
    json_text = tmp_path / "fake.npz"
    json_text.write_text('{"format": "actspec_jax.spectrum"}')
    with pytest.raises(asj.SpectrumFormatError, match="not a zip archive"):
        asj.SpectrumBatch.load(json_text)
    with pytest.raises(FileNotFoundError, match="no results file"):
        asj.Spectrum.load(tmp_path / "missing.json")
    with pytest.raises(asj.SpectrumFormatError, match="no results file"):
        asj.Spectrum.load(tmp_path / "missing.json")


def test_timings_are_the_only_difference_between_identical_runs(tmp_path):
    terms = {(0,): 0.8, (1, 2): -0.6, (3,): 0.3}
    problem = asj.FunctionProblem(lambda x: sum(c * x[:, list(s)].prod(axis=1) for s, c in terms.items()), 6)
    solver = asj.GoldreichLevin(tau=0.1, block_size=2)
    a, b = (solver(problem, key=jax.random.key(1)) for _ in range(2))
    assert a.save(tmp_path / "a.json").read_bytes() != b.save(tmp_path / "b.json").read_bytes()
    pa, pb = a.save(tmp_path / "a2.json", timings=False), b.save(tmp_path / "b2.json", timings=False)
    assert pa.read_bytes() == pb.read_bytes()
    assert "wall_time_s" not in pa.read_text() and "wall_time_s" in (tmp_path / "a.json").read_text()


# ---------------------------------------------------------------------------- checkpoints
TAG, VERSION = "actspec_jax.test_checkpoint", 1


def _checkpoint(tmp_path):
    arrays = {"table": np.arange(64, dtype=np.float32).reshape(2, 32), "level": np.asarray(3, np.int32)}
    meta = {"fingerprint": "abc", "done": 16, "stats": {"seconds": [0.5, 0.25]}}
    return arrays, meta, write_checkpoint(tmp_path / "ck.npz", arrays, meta, format_tag=TAG, version=VERSION)


def _read(path):
    return read_checkpoint(path, format_tag=TAG, version=VERSION, fingerprint="abc", what="test", fix="FIX.")


@settings(max_examples=examples(40))
@given(
    cut=CUTS,
    flips=FLIPS,
)
def test_checkpoint_mutants_load_identically_or_are_refused(tmp_path_factory, cut, flips):
    tmp_path = tmp_path_factory.mktemp("ck")
    arrays, meta, path = _checkpoint(tmp_path)
    _damage(path, cut, flips)
    try:
        got, got_meta = _read(path)
    except asj.CheckpointError as err:
        assert str(path) in str(err) and "FIX." in str(err) and "allow_pickle" not in str(err)
        return
    assert set(got) == set(arrays) and all(np.array_equal(got[k], arrays[k]) for k in arrays)
    assert {k: got_meta[k] for k in meta} == meta


def test_hand_edited_or_foreign_checkpoint_metadata_is_refused(tmp_path):
    arrays, _, path = _checkpoint(tmp_path)
    with np.load(path) as data:
        doc = json.loads(str(data["meta"]))
    edits = [("done", 0), ("stats", None), ("version", 9), ("format", "x"), ("digest", "0" * 64)]
    for field, value in edits:
        np.savez(path, **arrays, meta=np.asarray(json.dumps({**doc, field: value})))
        with pytest.raises(asj.CheckpointError, match="FIX") as info:
            _read(path)
        assert str(path) in str(info.value)
    np.savez(path, **arrays, meta=np.array([object()], dtype=object))
    with pytest.raises(asj.CheckpointError, match="pickled"):
        _read(path)
    np.savez(path, **{**arrays, "table": arrays["table"] + 1}, meta=np.asarray(json.dumps(doc)))
    with pytest.raises(asj.CheckpointError, match="digest"):
        _read(path)


def _batch():
    planted = [synthetic.sparse_polynomial(5, {(0, 1): 1.0, (k,): 0.5}) for k in range(3)]

    def f(x):
        return jnp.stack([p.problem.evaluate_unchecked(x) for p in planted], axis=-1)

    return asj.ExactSolver()(asj.FunctionProblem(f, 5))


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_a_spectrum_batch_round_trips_in_both_formats(tmp_path, suffix):
    batch = _batch()
    assert isinstance(batch, asj.SpectrumBatch) and batch.dense is not None
    back = asj.SpectrumBatch.load(batch.save(tmp_path / f"b{suffix}"))
    assert back.output_shape == batch.output_shape and back.to_dicts() == batch.to_dicts()
    if suffix == ".npz":
        np.testing.assert_array_equal(back.dense, batch.dense)


def test_a_batch_with_nan_is_refused_at_save_and_mixed_n_at_load(tmp_path):
    batch = _batch()
    broken = dataclasses.replace(batch[0], coefficients=np.full_like(batch[0].coefficients, np.nan))
    with pytest.raises(asj.SpectrumFormatError, match="NaN/inf"):
        asj.SpectrumBatch(spectra=(broken, *batch[1:]), output_shape=batch.output_shape).save(
            tmp_path / "x.npz"
        )
    assert not (tmp_path / "x.npz").exists()
    path = batch.save(tmp_path / "b.json")
    doc = json.loads(path.read_text())
    doc["spectra"][1] = asj.ExactSolver()(synthetic.sparse_polynomial(4, {(0,): 1.0}).problem).to_json_dict()
    path.write_text(json.dumps(doc))
    with pytest.raises(asj.SpectrumFormatError, match="must share n"):
        asj.SpectrumBatch.load(path)
    with pytest.raises(asj.SpectrumFormatError, match="is a folder"):
        asj.load_results(tmp_path)
