import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.problems import synthetic


@pytest.fixture
def exact_spectrum():
    planted = synthetic.sparse_polynomial(6, {(): 0.5, (0,): 1.0, (1, 2): -0.75, (3, 4, 5): 0.25, (2,): 0.5})
    return planted, asj.ExactSolver()(planted.problem)


def test_contract_to_dict_and_constant(exact_spectrum):
    planted, spec = exact_spectrum
    assert spec.to_dict() == pytest.approx(planted.truth)
    assert spec.constant == pytest.approx(0.5)
    assert list(spec.to_dict())[:2] == [(0,), (1, 2)]  # sorted by |coefficient|


def test_energy_by_degree_and_distributedness(exact_spectrum):
    _, spec = exact_spectrum
    np.testing.assert_allclose(spec.energy_by_degree(), [0.25, 1.25, 0.5625, 0.0625, 0, 0, 0], atol=1e-6)
    sparse = asj.Spectrum.build(6, spec.subset_tuples(), spec.coefficients)  # same terms, no dense
    np.testing.assert_allclose(sparse.energy_by_degree(), [0.25, 1.25, 0.5625, 0.0625], atol=1e-6)
    d = spec.distributedness()
    energy = 1.25 + 0.5625 + 0.0625
    assert d["higher_order_share"] == pytest.approx((0.5625 + 0.0625) / energy, rel=1e-5)
    assert d["mean_degree"] == pytest.approx((1.25 + 2 * 0.5625 + 3 * 0.0625) / energy, rel=1e-5)
    assert d["captured_share"] == pytest.approx(1.0, rel=1e-5)
    assert sparse.distributedness()["higher_order_share"] == pytest.approx(d["higher_order_share"], rel=1e-5)


def test_participation_weighted_and_counts(exact_spectrum):
    _, spec = exact_spectrum
    energy = 1.25 + 0.5625 + 0.0625
    expected = np.array([1.0, 0.5625, 0.5625 + 0.25, 0.0625, 0.0625, 0.0625]) / energy
    np.testing.assert_allclose(spec.participation(), expected, rtol=1e-5)
    sparse = asj.Spectrum.build(6, spec.subset_tuples(), spec.coefficients)
    np.testing.assert_allclose(sparse.participation(), expected, rtol=1e-5)
    np.testing.assert_array_equal(sparse.participation(weighted=False), [1, 1, 2, 1, 1, 1])


def test_top_select_and_evaluate(exact_spectrum):
    planted, spec = exact_spectrum
    assert spec.top(2).to_dict() == pytest.approx({(0,): 1.0, (1, 2): -0.75})
    assert set(spec.select(min_degree=2).to_dict()) == {(1, 2), (3, 4, 5)}
    assert set(spec.select(max_degree=1).to_dict()) == {(), (0,), (2,)}
    masks = asj.metrics.uniform_masks(jax.random.key(0), 64, 6)
    np.testing.assert_allclose(spec.evaluate(masks), planted.problem.evaluate(masks), atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda s, m: s.evaluate(m))(spec, masks), spec.evaluate(masks))
    assert spec.r2(planted.problem, key=jax.random.key(1)) == pytest.approx(1.0, abs=1e-6)
    assert spec.top(1).r2(planted.problem, key=jax.random.key(1)) < 0.8


def test_json_round_trip_keeps_everything_but_dense(exact_spectrum, tmp_path):
    _, spec = exact_spectrum
    path = spec.save(tmp_path / "s.json")
    loaded = asj.Spectrum.load(path)
    assert loaded.to_dict() == pytest.approx(spec.to_dict())
    assert loaded.solver["name"] == "exact" and loaded.problem == spec.problem
    assert loaded.norm_sq == pytest.approx(spec.norm_sq) and loaded.dense is None
    doc = json.loads(path.read_text())
    assert doc["format"] == "actspec_jax.spectrum" and doc["version"] == 1


def test_npz_round_trip_keeps_dense(exact_spectrum, tmp_path):
    _, spec = exact_spectrum
    loaded = asj.load_results(spec.save(tmp_path / "s.npz"))
    np.testing.assert_array_equal(loaded.dense, spec.dense)
    assert loaded.to_dict() == pytest.approx(spec.to_dict())


def test_batch_round_trip(tmp_path):
    problem = asj.FunctionProblem(lambda x: jnp.stack([x[:, 0], x[:, 1] * x[:, 2]], 1), 3)
    batch = asj.ExactSolver()(problem)
    loaded = asj.SpectrumBatch.load(batch.save(tmp_path / "b.json"))
    assert loaded.to_dicts() == [pytest.approx(d) for d in batch.to_dicts()]
    with pytest.raises(asj.SpectrumFormatError, match="batch of spectra"):
        asj.Spectrum.load(tmp_path / "b.json")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"format": "actspec_jax.spec', "not valid JSON"),
        ('{"hello": 1}', "no 'format' field"),
        ('{"format": "other.tool", "version": 1}', "has format 'other.tool'"),
        ('{"format": "actspec_jax.spectrum", "version": 99}', "newer actspec_jax"),
        ('{"format": "actspec_jax.spectrum", "version": 1, "n": 3}', "missing or malformed"),
        (
            '{"format": "actspec_jax.spectrum", "version": 1, "n": 3, "subsets": [[0], [5]],'
            ' "coefficients": [1.0, 2.0]}',
            "neuron 5, outside 0..2",
        ),
        (
            '{"format": "actspec_jax.spectrum", "version": 1, "n": 3, "subsets": [[0]],'
            ' "coefficients": [1.0, 2.0]}',
            "1 subsets but 2 coefficients",
        ),
    ],
)
def test_corrupt_or_foreign_files_are_refused(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(asj.SpectrumFormatError, match=match):
        asj.Spectrum.load(path)


def test_foreign_npz_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, metadata=np.array([object()], dtype=object))
    with pytest.raises(asj.SpectrumFormatError, match=r"not a readable actspec_jax \.npz"):
        asj.Spectrum.load(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results file"):
        asj.Spectrum.load(tmp_path / "absent.json")


def test_summary_names_neurons_and_stderr():
    spec = asj.Spectrum.build(3, [(0, 2), ()], [0.5, 0.1], stderr=[0.01, 0.02], labels=["a", "b", "c"])
    text = spec.summary()
    assert "{a, c}" in text and "∅ (constant)" in text and "stderr" in text


def test_spectrum_is_a_pytree(exact_spectrum):
    _, spec = exact_spectrum
    leaves, treedef = jax.tree_util.tree_flatten(spec)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.to_dict() == pytest.approx(spec.to_dict()) and rebuilt.labels == spec.labels


def test_empty_selection_is_a_valid_spectrum():
    spec = asj.Spectrum.build(40, [(0,), (3,)], [0.5, 0.25])
    empty = spec.select(min_degree=2)
    assert empty.num_terms == 0 and empty.to_dict() == {} and empty.subset_tuples() == []
    assert "interaction share" in empty.summary()
    assert empty.evaluate(jnp.ones((3, 40))).shape == (3,)


def test_a_selection_describes_the_selected_terms_whichever_solver_made_it():
    problem = asj.FunctionProblem(lambda x: x[:, 0] + 0.5 * x[:, 1] * x[:, 2], n=4)
    exact = asj.ExactSolver()(problem)
    assert exact.dense is not None
    joint = exact.select(min_degree=2)
    assert joint.dense is None
    assert joint.distributedness()["higher_order_share"] == 1.0  # the selection: pairs only
    assert exact.distributedness()["higher_order_share"] < 1.0
