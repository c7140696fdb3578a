"""Never silent, clear errors: each condition warns + records a diagnostic, or raises naming the fix."""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actspec_jax as asj
from actspec_jax.cli import main
from actspec_jax.diagnostics import IncompleteResultWarning
from actspec_jax.errors import format_bytes
from actspec_jax.problems import synthetic


def _codes(spectrum) -> list[str]:
    return [d["code"] for d in spectrum.solver.get("diagnostics", [])]


def _planted(**kwargs):
    terms = {(0,): 0.8, (1, 2): -0.6, (3, 4, 5): 0.5}
    return synthetic.planted_mlp(8, terms, key=jax.random.key(3), num_inputs=1).problem(**kwargs)


SMALL = {"num_samples": 16, "draws_per_z": 4, "leaf_samples": 512, "influence_samples": 8, "passes": 1}


def test_adaptive_rule_hitting_max_samples_warns_and_is_recorded():
    problem = asj.FunctionProblem(lambda x: x[:, 0] * x[:, 1] + 0.3 * x[:, 2] + 0.1 * x[:, 3], n=4)
    solver = asj.GoldreichLevin(tau=0.1, adaptive=True, max_samples=16, block_size=2, **SMALL)
    with pytest.warns(IncompleteResultWarning, match="max_samples=16"):
        spec = solver(problem, key=jax.random.key(0))
    assert "adaptive_cap" in _codes(spec)
    record = next(d for d in spec.solver["diagnostics"] if d["code"] == "adaptive_cap")
    assert "raise max_samples" in record["fix"]


def test_degree_budget_exhausted_warns_and_is_recorded():
    parity = synthetic.parity(6, (0, 1, 2, 3))
    solver = asj.GoldreichLevin(tau=0.2, max_degree=2, order="index", block_size=2, **SMALL)
    with pytest.warns(IncompleteResultWarning, match="max_degree=2"):
        spec = solver(parity.problem, key=jax.random.key(0))
    assert "degree_cap" in _codes(spec)


def test_tiny_output_variance_warns_and_is_recorded(tmp_path):
    problem = asj.FunctionProblem(lambda x: 5.0 + 1e-3 * x[:, 0], n=4)
    with pytest.warns(IncompleteResultWarning, match="variance"):
        spec = asj.GoldreichLevin(tau=0.1, block_size=2, **SMALL)(problem, key=jax.random.key(0))
    assert "tiny_variance" in _codes(spec)
    assert "tiny_variance" in _codes(asj.Spectrum.load(spec.save(tmp_path / "s.json")))  # saved too
    centred = asj.GoldreichLevin(tau=0.1, tau_mode="centered", block_size=2, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteResultWarning)  # a clean search stays quiet
        assert _codes(centred(problem, key=jax.random.key(0))) == []


def test_boolean_mask_as_units_is_refused_with_the_conversion():
    mask = np.zeros(8, bool)
    mask[[1, 3]] = True
    with pytest.raises(asj.ActSpecError, match=r"boolean mask of length 8 \(2 True\).*flatnonzero"):
        _planted(units=mask)
    with pytest.raises(asj.ActSpecError, match="looks like a 0/1 mask"):
        _planted(units=[0, 1, 1, 0, 1, 0, 0, 0])
    with pytest.raises(asj.ActSpecError, match="whole neuron indices"):
        _planted(units=[0.5, 1.0])


def test_single_input_without_batch_axis_and_wrong_dtype_are_named():
    model = synthetic.planted_mlp(8, {(0,): 1.0}, key=jax.random.key(3), num_inputs=1)
    cut = asj.cut_linen(model.module, model.variables, model.layer)
    single = jnp.asarray(model.inputs)[0]
    with pytest.raises(asj.ActSpecError, match=r"no batch axis.*inputs\[None\]"):
        asj.MaskedProblem.from_cut(cut, single, output="logit:0")
    with pytest.raises(asj.ActSpecError, match=r"numeric arrays.*token ids"):
        asj.MaskedProblem.from_cut(cut, np.array([["a", "b"]]), output="logit:0")
    with pytest.raises(asj.ActSpecError, match="leading batch axis"):
        asj.MaskedProblem.from_cut(cut, np.float32(1.0), output="logit:0")


@pytest.mark.parametrize(
    ("kwargs", "key", "match"),
    [
        ({}, 0, r"got the int 0: pass key=jax.random.key\(0\)"),
        ({}, np.zeros(3), "one JAX PRNG key"),
        ({"memory_budget": 0}, None, "memory_budget must be a positive"),
        ({"memory_budget": -(2**20)}, None, "memory_budget must be a positive"),
        ({"beam": 2.5}, None, "beam must be a whole number.*got 2.5"),
        ({"num_samples": True}, None, "num_samples must be a whole number"),
    ],
)
def test_gl_argument_errors(kwargs, key, match):
    problem = asj.FunctionProblem(lambda x: x[:, 0] * x[:, 1], n=4)
    with pytest.raises(asj.ActSpecError, match=match):
        asj.GoldreichLevin(**kwargs)(problem, key=jax.random.key(0) if key is None else key)


def test_exact_solver_argument_errors_and_memory_figure_for_any_n():
    problem = asj.FunctionProblem(lambda x: x[:, 0], n=4)
    with pytest.raises(asj.ActSpecError, match="memory_budget must be a positive"):
        asj.ExactSolver(memory_budget=0)(problem)
    with pytest.raises(asj.ActSpecError, match="top_k must be a whole number"):
        asj.ExactSolver(top_k=2.5)(problem)
    for n, figure in [(30, "8.0 GiB"), (62, "32.0 EiB"), (63, "64.0 EiB"), (70, "8.0 ZiB"), (100, "2^103 B")]:
        with pytest.raises(asj.ProblemTooLargeError, match=figure.replace("^", r"\^")):
            asj.ExactSolver()(asj.FunctionProblem(lambda x: x[:, 0], n=n))
    assert format_bytes(1 << 2000) == "2^2000 B" and format_bytes(3 << 2000) == "over 2^2001 B"
    assert format_bytes(1536) == "1.5 KiB"


def test_ctrl_c_is_a_message_not_a_traceback(monkeypatch, capsys, tmp_path):
    import actspec_jax.runs.pipeline as pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_run", interrupted)
    code = main(["run", "--out", str(tmp_path / "r"), "--checkpoint", str(tmp_path / "c.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted; rerun the same command to resume" in err
    assert "Traceback" not in err and not (tmp_path / "c.npz.lock").exists()
    code = main(["run", "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 130 and "--checkpoint FILE" in capsys.readouterr().err


def test_r2_on_a_function_with_nan_values_raises_instead_of_returning_nan():
    spectrum = asj.ExactSolver()(synthetic.sparse_polynomial(6, {(1, 2): 1.0}).problem)
    broken = asj.FunctionProblem(lambda x: jnp.where(x[:, 0] < 0, jnp.nan, x[:, 1]), 6)
    with pytest.raises(asj.NonFiniteOutputError, match="R² is undefined"):
        spectrum.r2(broken, key=jax.random.key(0))


@pytest.mark.parametrize("call", ["degree_profile", "passes", "compressive"])
def test_an_int_seed_as_key_is_a_clear_error(call):
    problem = synthetic.sparse_polynomial(20, {(1, 2): 1.0}).problem
    run = {
        "degree_profile": lambda: asj.estimate_degree_profile(problem, key=0),
        "passes": lambda: asj.ResidualPasses(asj.CompressiveSolver(max_degree=2), passes=2)(problem, key=0),
        "compressive": lambda: asj.CompressiveSolver(max_degree=2)(problem, key=0),
    }[call]
    with pytest.raises(asj.ActSpecError, match=r"jax\.random\.key\(0\)"):
        run()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: asj.FunctionProblem(lambda x: x[:, 0], 2.7), "positive whole number"),
        (lambda: asj.FunctionProblem(lambda x: x[:, 0], 0), "positive whole number"),
        (lambda: asj.FunctionProblem(lambda x: x[:, 0], True), "positive whole number"),
        (lambda: asj.FunctionProblem(lambda x: x[:, 0], 3, labels=["a"]), "1 labels for n=3"),
        (lambda: asj.FunctionProblem(lambda x: jnp.sum(x), 3).output_shape, "must map masks"),
    ],
)
def test_function_problem_input_errors_are_actspec_errors(make, match):
    with pytest.raises(asj.ActSpecError, match=match):
        make()


def _solve_quietly(problem, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteResultWarning)
        return asj.GoldreichLevin(tau=0.2, **settings)(problem, key=jax.random.key(0))


def _advice(spectrum, code: str, setting: str) -> int:
    (fix,) = {d["fix"] for d in spectrum.solver["diagnostics"] if d["code"] == code}
    return int(re.search(rf"{setting}=(\d+)", fix).group(1))


def test_gl_advice_for_a_full_beam_helps_on_the_case_that_raised_it():
    pairs = [(3 * i, 3 * i + 1) for i in range(12)]
    problem = asj.FunctionProblem(lambda x: sum(x[:, a] * x[:, b] for a, b in pairs), 64)
    first = _solve_quietly(problem, beam=4)
    assert "beam_full" in _codes(first)
    beam = _advice(first, "beam_full", "beam")
    assert beam > 4
    second = _solve_quietly(problem, beam=beam)
    assert _codes(second) == []
    assert set(pairs) <= set(second.subset_tuples())
    assert not set(pairs) <= set(first.subset_tuples())


def test_gl_advice_for_the_degree_cap_helps_and_never_repeats_the_setting():
    from actspec_jax.solvers.gl.diagnostics import _degree_fix

    six = (1, 5, 9, 20, 33, 40)
    problem = asj.FunctionProblem(lambda x: jnp.prod(x[:, list(six)], axis=1) + 0.5 * x[:, 2], 64)
    first = _solve_quietly(problem, max_degree=4)
    assert "degree_cap" in _codes(first) and six not in first.subset_tuples()
    degree = _advice(first, "degree_cap", "max_degree")
    assert degree > 4
    second = _solve_quietly(problem, max_degree=degree)
    assert _codes(second) == [] and abs(second.to_dict()[six] - 1.0) < 0.05
    assert "max_degree=" not in _degree_fix(32) and "at its limit" in _degree_fix(32)


def test_an_output_additive_in_the_layer_is_named_with_the_fix():
    w = jax.random.normal(jax.random.key(0), (30,))
    linear = asj.FunctionProblem(lambda x: x @ w + 1.0, 30)  # a linear head: no joint effect exists
    with pytest.warns(IncompleteResultWarning, match="additive in this layer.*log_prob"):
        spectrum = asj.GoldreichLevin(tau=0.2)(linear, key=jax.random.key(1))
    assert "additive_output" in _codes(spectrum)
    paired = asj.FunctionProblem(lambda x: x @ w + 0.3 * x[:, 0] * x[:, 1], 30)  # 0.3 % in a pair
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteResultWarning)
        assert "additive_output" not in _codes(asj.GoldreichLevin(tau=0.2)(paired, key=jax.random.key(1)))
