"""Compressive solver vs SPEX vs GL vs a low-degree least-squares baseline (helpers of bench_vs_spex).

Methods, each at the same budget of evaluations, scored on the same held-out uniform masks:

* ``ours``: :class:`actspec_jax.CompressiveSolver` (``max_evaluations=B``, ``noise_level``
  passed on noisy problems);
* ``gl``: :class:`actspec_jax.GoldreichLevin` with ``max_evaluations=B`` (planned worst case);
* ``ls2``: baseline — least squares on all degree-≤1 characters of ``B`` uniform masks, then
  the pairs most correlated with that fit's residual (all ``n(n−1)/2`` pair correlations at
  once as ``Xᵀ diag(r) X / N``), up to ``N/8 − n`` of them, refitted together: the
  "regression on degree-≤2 characters of the same samples" of issue 10 (a full degree-≤2
  design, 32,897 columns at n = 256, does not fit 10k samples; the screening is what makes
  least squares possible there);
* ``spex``: shapiq's SPEX (FBII, max_order 4 on planted problems, 2 on real ones), told the
  noise level (``noise_sd``) on noisy problems.

Noisy planted problems add ``σ·√2·cos(ω·⟨w, x⟩ + φ)`` with random ``w`` and a large ``ω``: a
fixed function with a dense, flat spectrum of energy ``σ² = 0.1 ×`` the planted energy — the
long tail of a real layer, not per-call randomness.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def noisy(problem: Any, sigma: float, key: jax.Array) -> Any:
    from actspec_jax import FunctionProblem

    w = jax.random.normal(key, (problem.n,))
    phase = float(jax.random.uniform(jax.random.fold_in(key, 1), (), maxval=2 * np.pi))

    def f(x: jax.Array) -> jax.Array:
        return problem.evaluate_unchecked(x) + sigma * jnp.sqrt(2.0) * jnp.cos(97.0 * (x @ w) + phase)

    return FunctionProblem(f, problem.n, name="planted+dense tail")


def ls2(problem: Any, budget: int, seed: int) -> Any:
    """The degree-≤2 least-squares baseline (see the module docstring) → Spectrum."""
    from actspec_jax import Spectrum
    from actspec_jax.analysis.metrics import uniform_masks

    n = problem.n
    x = np.asarray(uniform_masks(jax.random.key(seed), budget, n), np.float64)
    v = np.asarray(problem.evaluate(jnp.asarray(x, jnp.float32)), np.float64)
    design = np.concatenate([np.ones((budget, 1)), x], axis=1)
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    resid = v - design @ coef
    corr = (x * resid[:, None]).T @ x / budget
    iu = np.triu_indices(n, 1)
    scores = np.abs(corr[iu])
    keep = max(0, min(len(scores), budget // 8 - n - 1))
    top = np.argsort(-scores)[:keep]
    pairs = [(int(iu[0][t]), int(iu[1][t])) for t in top]
    if pairs:
        extra = np.stack([x[:, i] * x[:, j] for i, j in pairs], axis=1)
        design = np.concatenate([design, extra], axis=1)
        coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    subsets = [(), *[(i,) for i in range(n)], *pairs]
    return Spectrum.build(n, subsets, coef, solver={"name": "ls2", "evaluations": budget})


def spex(
    problem: Any, budget: int, seed: int, *, max_order: int, noise_sd: float = 0.0, t: int | None = None
):
    """SPEX at ``budget`` (it rounds down); returns (spectrum, seconds, evaluations)."""
    from shapiq.approximator.sparse import SPEX

    from actspec_jax.interop.shapiq import ProblemGame, from_interaction_values

    game = ProblemGame(problem)
    game(np.zeros((game.batch_size, problem.n), bool))
    game.evaluations = 0
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {} if t is None else {"degree_parameter": t}
        approx = SPEX(n=problem.n, index="FBII", max_order=max_order, random_state=seed, **kwargs)
        if noise_sd > 0:
            approx.decoder_args["noise_sd"] = float(noise_sd)
        values = approx.approximate(budget=budget, game=game)
    return from_interaction_values(values), time.perf_counter() - started, game.evaluations


def proxyspex(
    problem: Any, budget: int, seed: int, *, max_order: int, hpo: bool = True
) -> tuple[Any, float, int]:
    """shapiq's ProxySPEX at ``budget`` uniform masks: a LightGBM proxy, with its default grid
    search (``hpo=True``, 8 settings × 5 folds) or a single default fit (``hpo=False``)."""
    from shapiq.approximator import ProxySPEX

    from actspec_jax.interop.shapiq import ProblemGame, from_interaction_values

    game = ProblemGame(problem)
    game(np.zeros((game.batch_size, problem.n), bool))
    game.evaluations = 0
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        approx = ProxySPEX(n=problem.n, index="FBII", max_order=max_order, random_state=seed, hpo=hpo)
        values = approx.approximate(budget=budget, game=game)
    return from_interaction_values(values), time.perf_counter() - started, game.evaluations


def proxy_backend() -> str:
    """The proxy ProxySPEX resolves to here (it silently falls back to a bare tree)."""
    from shapiq.approximator import ProxySPEX

    model = ProxySPEX(n=4, index="FBII", max_order=2).proxy_model
    inner = getattr(model, "estimator", model)
    return f"{type(model).__name__}({type(inner).__module__}.{type(inner).__name__})"


def spex_budget(n: int, b: int, t: int) -> int:
    """Evaluations SPEX uses at ``(t, b)``."""
    from shapiq.approximator.sparse import SPEX
    from sparse_transform.qsft.signals.input_signal_subsampled import SubsampledSignal

    args = dict(SPEX(n=n, index="FBII", max_order=4, degree_parameter=t).query_args)
    return int(SubsampledSignal.get_number_of_samples(n, b, t, 2, args))


def timed(make: Any, problem: Any, seed: int) -> tuple[Any, float, int]:
    started = time.perf_counter()
    spectrum = make(problem, seed)
    elapsed = time.perf_counter() - started
    return spectrum, elapsed, int(spectrum.solver.get("evaluations", 0))


def ours(budget: int, noise: float = 0.0, **kw: Any):
    from actspec_jax import CompressiveSolver

    return lambda p, s: CompressiveSolver(max_evaluations=budget, noise_level=noise, **kw)(
        p, key=jax.random.key(s)
    )


def gl(budget: int):
    from actspec_jax import GoldreichLevin

    return lambda p, s: GoldreichLevin(tau=0.05, max_evaluations=budget)(p, key=jax.random.key(s))


def _score(spectrum: Any, truth: dict | None, masks: Any, values: np.ndarray) -> dict[str, Any]:
    from actspec_jax.analysis.metrics import r2_score

    out: dict[str, Any] = {
        "r2": float(r2_score(values, np.asarray(spectrum.evaluate(masks)))),
        "terms": spectrum.num_terms,
    }
    if truth is not None:
        out.update(recovery(spectrum, truth))
    return out


def recovery(spectrum: Any, truth: dict) -> dict[str, Any]:
    """``recall`` (planted terms found within half their size) and ``false_positives`` (terms of
    ``|ĉ| ≥ 0.15`` outside the planted support) of ``spectrum`` against ``truth``."""
    est = spectrum.to_dict()
    planted = {k: v for k, v in truth.items() if k}
    return {
        "recall": sum(abs(est.get(k, 0.0) - v) <= 0.5 * abs(v) for k, v in planted.items()) / len(planted),
        "false_positives": sum(1 for k, v in est.items() if k and k not in planted and abs(v) >= 0.15),
    }


def _entry(name: str, budget: int, spectrum: Any, seconds: float, used: int, truth, masks, values) -> dict:
    rec = {"method": name, "budget": budget, "evaluations": used, "seconds": seconds,
           **_score(spectrum, truth, masks, values)}  # fmt: skip
    print("   ", rec, flush=True)
    return rec


def planted(n: int, s: int, noise: float, seed: int) -> tuple[Any, dict, float, Any, np.ndarray]:
    """``(problem, truth, sigma, held-out masks, their values)`` of one planted case."""
    from actspec_jax.analysis.metrics import uniform_masks
    from actspec_jax.problems.synthetic import random_sparse_polynomial

    poly = random_sparse_polynomial(jax.random.key(1000 * seed + n + s), n, s, max_degree=4, min_abs=0.3)
    problem, truth = poly.problem, poly.truth
    sigma = float(np.sqrt(noise * sum(v * v for k, v in truth.items() if k))) if noise else 0.0
    if noise:
        problem = noisy(problem, sigma, jax.random.key(77 + n))
    masks = uniform_masks(jax.random.key(12345), 4096, n)
    return problem, truth, sigma, masks, np.asarray(problem.evaluate(masks), np.float64)


def proxy_planted(cases: list[dict[str, Any]], keep: Any = None) -> list[dict[str, Any]]:
    """ProxySPEX (max_order 4) at half and all of SPEX's smallest budget of each finished case."""
    out = []
    for case in cases:
        full = case["spex_smallest_full_recall"] or case["spex_grid"][-1]["budget"]
        problem, truth, _, masks, values = planted(case["n"], case["s"], case["noise"], 0)
        print(f"proxyspex planted n={case['n']} s={case['s']} noise={case['noise']}", flush=True)
        rows = []
        for budget in (full // 2, full):
            sp, sec, used = proxyspex(problem, budget, 1, max_order=4)
            rows.append(_entry("proxyspex", budget, sp, sec, used, truth, masks, values))
        out.append({"n": case["n"], "s": case["s"], "noise": case["noise"], "runs": rows})
        if keep:
            keep(out)
    return out


def planted_case(n: int, s: int, noise: float, seed: int, b_max: int) -> dict[str, Any]:
    problem, truth, sigma, masks, values = planted(n, s, noise, seed)
    print(f"planted n={n} s={s} noise={noise}", flush=True)
    runs, smallest = [], None
    for b in range(3, b_max + 1):  # SPEX's (t = 4, b) grid, smallest b first
        budget = spex_budget(n, b, 4)
        sp, sec, used = spex(problem, budget, 1, max_order=4, noise_sd=sigma, t=4)
        runs.append(dict(_entry("spex", budget, sp, sec, used, truth, masks, values), b=b, t=4))
        if runs[-1]["recall"] >= 1.0:
            smallest = budget
            break
    spex_best = runs[-1]
    full = smallest or spex_best["budget"]
    half = full // 2
    out = {
        "n": n,
        "s": s,
        "noise": noise,
        "sigma": sigma,
        "spex_grid": runs,
        "spex_smallest_full_recall": smallest,
    }
    rows = []
    for name, make, budget in (
        ("ours", ours(half, noise), half),
        ("ours", ours(full, noise), full),
        ("gl", gl(half), half),
        ("ls2", lambda p, sd: ls2(p, half, sd), half),
    ):
        try:
            spectrum, sec, used = timed(make, problem, 1)
            rows.append(_entry(name, budget, spectrum, sec, used, truth, masks, values))
        except Exception as err:  # a budget below a method's minimum is a result too
            rows.append({"method": name, "budget": budget, "error": str(err)})
            print("   ", rows[-1], flush=True)
    out["runs"] = rows
    ours_half = next((r for r in rows if r["method"] == "ours" and r["budget"] == half and "r2" in r), None)
    if ours_half is not None:
        out["targets"] = {
            "recall_ge_spex": ours_half["recall"] >= spex_best["recall"],
            "r2_ge_spex": ours_half["r2"] >= spex_best["r2"] - 1e-4,
            "time_ratio": ours_half["seconds"] / spex_best["seconds"],
        }
    return out


def mnist_problem() -> Any:
    import actspec_jax as asj
    from actspec_jax.data import load_mnist
    from actspec_jax.models import load_pretrained

    model = load_pretrained("mnist_mlp")
    images, labels = load_mnist("test")
    cut = asj.cut_linen(model.module, model.variables, "relu_0")
    inputs = jnp.asarray(images[labels == 7][:64])
    return asj.masked_problem(cut, inputs, output="log_prob:7", fill="zero")


def sentiment_problem(num_reviews: int = 64, pool: int = 256) -> Any:
    """The shipped sentiment transformer cut at ``block_1/mlp/act`` (512 units), zero fill.

    Output: the positive class's log-probability averaged over a fixed set of ``num_reviews``
    validation Rotten Tomatoes reviews — the shortest of a seeded sample of ``pool`` (a
    forward pass costs in proportion to the padded tokens, and SPEX needs tens of thousands).
    """
    import actspec_jax as asj
    from actspec_jax.commands._sentiment import sentiment_inputs, sentiment_model

    sm = sentiment_model()
    tokens, token_mask, _, _ = sentiment_inputs(
        sm, pool, seed=0, split="validation", source="rotten_tomatoes"
    )
    lengths = token_mask.sum(1)
    chosen = np.sort(np.argsort(lengths, kind="stable")[:num_reviews])
    width = int(lengths[chosen].max())
    cut = asj.cut_linen(sm.module, sm.variables, f"block_{sm.depth - 1}/mlp/act")
    inputs = jnp.asarray(tokens[chosen, :width])
    return asj.masked_problem(cut, inputs, output="log_prob:1", fill="zero")


REAL = {
    "mnist": ("mnist_relu0_class7", mnist_problem),
    "sentiment": ("sentiment_block1_mlp", sentiment_problem),
}


def real_case(
    name: str,
    problem: Any,
    budgets: list[int],
    methods: list[str],
    spex_max_seconds: float,
    keep: Any,
    seeds: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    """Every method at every budget on one real function; ``keep(out)`` after every run.

    Our solvers and ls2 run once per seed in ``seeds`` (the key of their random masks; the
    held-out masks stay the same), each row recording its ``seed``; SPEX/ProxySPEX once (seed 1).

    SPEX at a budget is skipped (and the skip recorded, with the estimate) when its time
    extrapolated linearly in evaluations from its smaller-budget run exceeds
    ``spex_max_seconds``.
    """
    from actspec_jax.analysis.metrics import uniform_masks

    masks = uniform_masks(jax.random.key(12345), 4096, problem.n)
    values = np.asarray(problem.evaluate(masks), np.float64)
    print(f"real {name} n={problem.n}", flush=True)
    out: dict[str, Any] = {"name": name, "n": problem.n, "held_out_variance": float(values.var()), "runs": []}
    rows = out["runs"]
    makers = {
        "ours": lambda b: ours(b),
        "ours_d2": lambda b: ours(b, max_degree=2),
        "gl": gl,
        "ls2": lambda b: lambda p, sd: ls2(p, b, sd),
    }
    for budget in budgets:
        for method in methods:
            if method in makers:
                for seed in seeds:
                    spectrum, sec, used = timed(makers[method](budget), problem, seed)
                    entry = _entry(method, budget, spectrum, sec, used, None, masks, values)
                    rows.append(dict(entry, seed=seed))
                    if keep:
                        keep(out)
                continue
            elif method in ("spex", "proxyspex", "proxyspex_nohpo"):
                done = [r for r in rows if r["method"] == method and "seconds" in r]
                if method == "spex" and done:
                    estimate = done[-1]["seconds"] * budget / max(done[-1]["evaluations"], 1)
                    if estimate > spex_max_seconds:
                        rows.append(
                            {
                                "method": method,
                                "budget": budget,
                                "skipped": True,
                                "estimated_seconds": estimate,
                                "from_run": {k: done[-1][k] for k in ("budget", "evaluations", "seconds")},
                                "reason": f"estimated {estimate:.0f} s (linear in evaluations from the "
                                f"{done[-1]['budget']} run) > the {spex_max_seconds:.0f} s allowed",
                            }
                        )
                        print("   ", rows[-1], flush=True)
                        continue
                if method == "spex":
                    sp, sec, used = spex(problem, budget, 1, max_order=2)
                else:
                    sp, sec, used = proxyspex(problem, budget, 1, max_order=2, hpo=method == "proxyspex")
                rows.append(dict(_entry(method, budget, sp, sec, used, None, masks, values), seed=1))
            else:
                raise ValueError(f"unknown method {method!r}")
            if keep:
                keep(out)
    return out


def run(args: Any, save: Any = None) -> dict[str, Any]:
    """Real functions first, then the planted grid; ``save(payload)`` after every run."""
    payload: dict[str, Any] = {"planted": [], "real": []}
    for key in args.real:
        name, make = REAL[key]
        payload["real"].append({"name": name, "runs": []})

        def keep(out: dict[str, Any]) -> None:
            payload["real"][-1] = out
            if save:
                save(payload)

        seeds = tuple(getattr(args, "seeds", None) or (1,))
        keep(real_case(name, make(), args.real_budgets, args.methods, args.spex_max_seconds, keep, seeds))
    for n in args.ns:
        for s in args.sparsity:
            for noise in args.noise:
                payload["planted"].append(planted_case(n, s, noise, 0, args.b_max))
                if save:
                    save(payload)
    return payload
