"""``actspec demo``: the embedded default analysis of the shipped MNIST MLP.

Default: the compressive solver over all 256 hidden ReLU units of the paper's MLP
(196→256→10) for class 7's log-probability, averaged over class-7 test images, under a budget
of ``--budget`` (20,000) evaluations; ablated units are set to zero. It is the default because
it is the most faithful per query on this layer: the held-out R² of all recovered terms is 0.94
at the default 20k evaluations (what the demo prints) and 0.90 at 10k
(``benchmarks/bench_compressive_engine.py``), against 0.31 for GL's threshold search at 405k
(``benchmarks/bench_vs_spex.py --compressive``). ``--solver gl`` runs the Goldreich–Levin
threshold search (mask mode);
``--solver gl --estimator paper`` the paper's data-hybrid estimator (±1 class indicator on all
test images, τ = 0.2, 1000 samples, beam 128, γ = δ = 0.2).
``--solver exact`` computes the exact spectrum over the 20 units with the largest
first-order attribution ``|mean activation × (w_unit,7 − mean_c w_unit,c)|``, the other 236
kept. Prints the subsets found and how distributed the code is; writes a report folder.

The report folder is locked while the demo runs (a second demo on it is refused) and holds the
solver's checkpoint: an interrupted demo (Ctrl-C, SIGTERM, a kill) resumes when the same command
is rerun; ``--fresh`` starts over. The compressive solver's query ledger stays after the run, so a
rerun with a larger ``--budget`` evaluates only the masks the smaller one did not.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from actspec_jax.commands import plain_help

__all__ = ["register", "run_demo"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="analyse the shipped MNIST MLP (no arguments needed)",
        description=plain_help(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="actspec_report", help="report folder (default: %(default)s)")
    parser.add_argument("--target", type=int, default=7, help="digit class to explain (default: 7)")
    parser.add_argument(
        "--solver",
        default=None,
        choices=["compressive", "gl", "exact"],
        help="default: compressive (all 256 units, --budget evaluations); gl with --estimator paper",
    )
    parser.add_argument(
        "--budget", type=int, default=20000, help="evaluations of the compressive solver (default: 20000)"
    )
    parser.add_argument(
        "--estimator",
        default="mask",
        choices=["mask", "paper"],
        help="GL estimator (default: mask; paper implies --solver gl)",
    )
    parser.add_argument("--tau", type=float, default=None, help="GL threshold (default 0.05 mask, 0.2 paper)")
    parser.add_argument("--units", type=int, default=20, help="units masked by --solver exact (≤ 24)")
    parser.add_argument("--inputs", type=int, default=64, help="test images of the target class (mask mode)")
    parser.add_argument(
        "--output",
        default="log_prob",
        choices=["log_prob", "prob", "logit", "indicator"],
        help="output of the target class in mask mode (default: log_prob; paper mode: indicator)",
    )
    parser.add_argument("--fill", default="zero", choices=["zero", "mean"], help="value of ablated units")
    parser.add_argument(
        "--profile-evaluations",
        type=int,
        default=16384,
        help="extra uniform masks for the degree profile of the whole spectrum (not exact/paper; 0 = off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of the search and the R² masks")
    parser.add_argument("--fresh", action="store_true", help="discard a checkpoint left by an earlier run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_demo)


def _attribution_units(cut: Any, inputs: Any, kernel: Any, target: int, count: int) -> list[int]:
    import numpy as np

    activations = np.asarray(cut.activations(inputs))
    score = activations.mean(axis=0) * (kernel[:, target] - kernel.mean(axis=1))
    return [int(u) for u in np.argsort(-np.abs(score))[:count]]


def _reading(spectrum: Any, joint: Any, profile: Any, *, recovered: bool) -> str:
    """One paragraph: what the listed terms and the degree profile say about the layer."""
    import numpy as np

    from actspec_jax.spectrum import share_percent

    small = "For the small terms: --solver exact (every coefficient of the top units) or a lower --tau."
    if recovered:  # a budgeted recovery lists small terms too: say which are resolved
        coef = np.abs(np.asarray(joint.coefficients, np.float64))
        err = None if joint.stderr is None else np.asarray(joint.stderr, np.float64)
        resolved = None if err is None else int(np.sum(coef >= 3 * err))
        share = spectrum.interaction_share()
        found = f"{joint.num_terms} joint subsets recovered" + (
            f" ({resolved} at ≥ 3 standard errors)" if resolved is not None else ""
        )
        found += f"; interaction share of the listed terms {share_percent(share)}"
        small = "For every coefficient of the top units: --solver exact."
    elif joint.num_terms:
        found = f"{joint.num_terms} joint subsets clear the threshold (listed above)"
    else:
        found = "No joint subset clears the threshold"
    if profile is None:
        if recovered:
            return f"{found}: units that act together on the output (largest above)."
        if joint.num_terms:
            return (
                f"{joint.num_terms} joint subsets found: units that act together on the output "
                "(largest above)."
            )
        return (
            f"{found}: at this τ the layer acts on the output additively (singletons only); what the "
            f"listed terms miss is spread over many coefficients below τ. {small}"
        )
    joint_share, joint_lower, joint_upper = profile.interaction_share()
    spread = "" if (recovered or joint.num_terms) else ", spread over many terms each below τ"
    return (
        f"{found}; the degree profile of the whole spectrum (listed terms or not) says "
        f"{profile.headline()}: interaction share of the whole spectrum {share_percent(joint_share)} "
        f"[{share_percent(joint_lower)}, {share_percent(joint_upper)}]{spread}. {small}"
    )


#: The checkpoint each solver keeps in the report folder (the compressive ledger stays after the
#: run, so a rerun with a larger --budget re-uses its evaluations; the others go once the report is
#: written).
CHECKPOINTS = {
    "compressive": "compressive_ledger.npz",
    "gl": "gl_checkpoint.npz",
    "exact": "exact_checkpoint.npz",
}


def run_demo(args: argparse.Namespace) -> int:
    """Check the settings, lock the report folder (a second demo on it is refused) and run."""
    from actspec_jax.errors import ActSpecError
    from actspec_jax.runs.safety import guarded_outputs
    from actspec_jax.solvers.common.checkpoint import CheckpointError

    if not 0 <= args.target <= 9:
        raise ActSpecError(f"--target must be a digit class 0..9, got {args.target}.")
    if args.solver is None:
        args.solver = "gl" if args.estimator == "paper" else "compressive"
    if args.estimator == "paper" and args.solver != "gl":
        raise ActSpecError(
            f"--estimator paper is a GL estimator; use it with --solver gl, not {args.solver}."
        )
    if args.inputs < 1:
        raise ActSpecError(f"--inputs must be at least 1, got {args.inputs}.")
    args.resumes_by_default = True  # interrupt hints: rerun resumes from the report folder
    out = Path(args.out)
    checkpoint = out / CHECKPOINTS[args.solver]
    with guarded_outputs(out, checkpoint, args.fresh):
        if args.fresh:
            for stale in out.glob("gl_checkpoint*.npz"):  # one file per GL pass
                stale.unlink()
        try:
            return _run_demo(args, out, checkpoint)
        except CheckpointError as err:
            raise CheckpointError(f"{err} With actspec demo: rerun with --fresh to discard it.") from err


def _run_demo(args: argparse.Namespace, out: Path, checkpoint: Path) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import actspec_jax as asj
    from actspec_jax.data import load_mnist
    from actspec_jax.models import load_pretrained
    from actspec_jax.reports.report import Report, add_spectrum_sections
    from actspec_jax.runs.progress import StageBars
    from actspec_jax.runs.safety import rescued_write
    from actspec_jax.spectrum import share_percent

    started = time.perf_counter()
    paper = args.solver == "gl" and args.estimator == "paper"
    model = load_pretrained("mnist_mlp")
    images, labels = load_mnist("test")
    cut = asj.cut_linen(model.module, model.variables, "relu_0")
    key = jax.random.key(args.seed)

    if paper:
        inputs = jnp.asarray(images)
        problem = asj.masked_problem(cut, inputs, output=f"indicator:{args.target}")
        what = (
            f"paper-mode GL over all 256 units, ±1 indicator of class {args.target}, {len(images)} test rows"
        )
    else:
        inputs = jnp.asarray(images[labels == args.target][: args.inputs])
        output = f"{args.output}:{args.target}"
        units = None
        if args.solver == "exact":
            kernel = np.asarray(model.variables["params"]["logits"]["kernel"])
            units = _attribution_units(cut, inputs, kernel, args.target, args.units)
        problem = asj.masked_problem(cut, inputs, output=output, fill=args.fill, units=units)
        scope = "all 256 units" if units is None else f"{len(units)} of the 256 units (others kept)"
        names = {"exact": "exact spectrum", "gl": "GL search", "compressive": "compressive solver"}
        method = names[args.solver]
        if args.solver == "compressive":
            method += f" ({args.budget:,} evaluations)"
        what = (
            f"{method} of {output} over {scope}, "
            f"{inputs.shape[0]} class-{args.target} test images, fill={args.fill}"
        )
    print(f"actspec demo: {what}")

    bars = StageBars(enabled=not args.quiet, label=args.solver)
    try:
        if args.solver == "exact":
            solver = asj.ExactSolver(keep_checkpoint=True)
            spectrum = solver(problem, progress=bars, checkpoint_path=checkpoint)
        elif args.solver == "compressive":
            from actspec_jax.solvers.common.profile_attach import attach_degree_profile

            solver = asj.CompressiveSolver(max_evaluations=args.budget)
            spectrum = solver(problem, key=key, progress=bars, checkpoint_path=checkpoint)
            if args.profile_evaluations > 0:  # outside the budget: the profile's own masks, reported apart
                spectrum = attach_degree_profile(spectrum, problem, key, evaluations=args.profile_evaluations)
        elif paper:
            solver = asj.GoldreichLevin.paper(**({"tau": args.tau} if args.tau else {}))
            spectrum = solver(problem, key=key, progress=bars, checkpoint_path=checkpoint)
        else:
            solver = asj.GoldreichLevin(
                tau=args.tau or 0.05,
                tau_mode="centered",
                degree_profile=args.profile_evaluations > 0,
                profile_evaluations=max(args.profile_evaluations, 0),
            )
            spectrum = solver(problem, key=key, progress=bars, checkpoint_path=checkpoint)
    finally:
        bars.close()

    print(spectrum.summary(12))
    joint = spectrum.select(min_degree=2)
    print(f"Joint subsets (|S| ≥ 2) found: {joint.num_terms}")
    if joint.num_terms:
        print("\n".join(joint.summary(5).splitlines()[1 : 1 + min(5, joint.num_terms)]))
    profile = spectrum.degree_profile()  # the whole spectrum, listed or not (GL attaches it)
    if profile is not None:
        print(profile.table())
    rows = [
        ["model test accuracy", model.info.get("test_accuracy", "n/a")],
        ["function evaluations", spectrum.solver.get("evaluations", "n/a")],
        ["solver wall time (s)", spectrum.solver.get("wall_time_s", "n/a")],
    ]
    if profile is not None:
        rows.append(["degree-profile evaluations (extra, uniform masks)", profile.evaluations])
    if not paper:
        held = jax.random.fold_in(key, 1)
        if spectrum.num_terms > 64:
            r2_all = spectrum.r2(problem, key=held, num_masks=2048)
            print(f"R² of all {spectrum.num_terms} terms on 2048 held-out random masks: {r2_all:.4f}")
            rows.append([f"R² of all {spectrum.num_terms} terms on held-out masks", r2_all])
        r2 = spectrum.top(64).r2(problem, key=held, num_masks=2048)
        print(f"R² of the top-64-term approximation on 2048 held-out random masks: {r2:.4f}")
        rows.append(["R² of top-64 terms on held-out masks", r2])
    else:
        removed = spectrum.solver.get("redundancy", {}).get("removed", [])
        rows.append(["neurons/subsets removed by non-redundancy constraints", len(removed)])
    reading = _reading(spectrum, joint, profile, recovered=args.solver == "compressive")
    print(reading)

    def write_report() -> Path:
        report = Report(out, f"actspec demo — class {args.target} of the MNIST MLP")
        report.save_spectrum(spectrum)  # first: the result is on disk before any figure
        report.text(
            f"{what[0].upper()}{what[1:]}. Mask convention: +1 = unit kept, −1 = unit ablated "
            f"({'its binarised activation on data, paper mode' if paper else 'set to ' + args.fill})."
        )
        report.table(["setting", "value"], rows)
        report.text(reading)
        add_spectrum_sections(report, spectrum)  # hidden units have no layout: no grid
        return report.write()

    kept = str(checkpoint) if checkpoint.exists() else None
    html = rescued_write(write_report, spectrum, out, kept, lambda text: print(text, file=sys.stderr))
    if args.solver != "compressive":  # the finished result is in spectrum.json
        for finished in (*out.glob("gl_checkpoint*.npz"), out / CHECKPOINTS["exact"]):
            finished.unlink(missing_ok=True)
    d = spectrum.distributedness()
    print(
        f"listed terms: interaction share {share_percent(d['higher_order_share'])}; "
        f"mean degree {d['mean_degree']:.2f}. "
        f"Done in {time.perf_counter() - started:.1f} s."
    )
    print(f"Report written to {html} (spectrum.json, summary.md and figures in {out}/)")
    return 0
