# ruff: noqa: E501  (a page of prose: long f-string lines read better unsplit)
"""Write ``docs/results.md`` (README-ready) from the experiment outputs under ``docs/``.

Run the two experiments first, then this script::

    python benchmarks/experiments/mnist_classes.py
    python benchmarks/experiments/sentiment.py
    python benchmarks/experiments/results_page.py

Every number on the page is read from ``docs/mnist/mnist_results.json``,
``docs/sentiment/sentiment_results.json`` and the models' sidecar files; the tables are the
experiments' own ``table.md`` files. Statements that compare orderings are computed here, so
they cannot drift from the figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs"


def _mean(values) -> float:
    return float(np.mean([v for v in values if v is not None and np.isfinite(v)]))


def _count_better(rows, k: str, a: str, b: str) -> tuple[int, int]:
    """How many classes have D_a(k) > D_b(k) (among those where both are defined)."""
    pairs = [(r[k][a], r[k][b]) for r in rows if k in r and np.isfinite(r[k][a]) and np.isfinite(r[k][b])]
    return sum(x > y for x, y in pairs), len(pairs)


def summary_section() -> list[str]:
    mnist = json.loads((DOCS / "mnist" / "mnist_results.json").read_text())
    rows = list(mnist["classes"].values())
    cross = mnist["cross_class"]
    pcorr = list(cross["paper"]["coefficient_vs_pattern_mean_correlation"].values())
    curve = mnist["mean_faithfulness"]
    i8 = curve["ks"].index(8)
    spectral8 = max(
        v[i8] for n, v in curve["drops"].items() if n.startswith("spectral") and v[i8] is not None
    )
    single8 = max(curve["drops"][n][i8] for n in ("attribution (grad×act)", "leave-one-out"))
    runs = json.loads((DOCS / "sentiment" / "sentiment_results.json").read_text())["runs"]
    heads = runs["heads_all"]
    f4 = heads["faithfulness_drop"]["4"]
    mlp = [runs[n] for n in ("mlp_block_0", "mlp_block_1") if n in runs]
    return [
        "## Summary",
        "",
        f"* **MNIST, mask mode**: log p(c) as a function of which of the 256 hidden units are kept is close to "
        f"additive — energy share at degree ≥ 2 of {np.mean([r['exact']['higher_order_share'] for r in rows]):.3f} "
        f"among the 20 most attributed units (exact), {np.mean([r['mask']['higher_order_share'] for r in rows]):.3f} "
        "among the terms GL finds over all 256.",
        f"* **MNIST, paper mode** finds mostly pairs (share at degree ≥ 2: "
        f"{np.mean([r['paper']['higher_order_share'] for r in rows]):.2f}), but two keys agree on only "
        f"{np.mean([r['paper']['stability']['jaccard'] for r in rows]):.2f} of the subsets (Jaccard), different "
        f"classes share {cross['paper']['subset_jaccard']:.2f}, and the coefficients track the class-independent "
        f"pattern statistic mean(f)·E_data[χ_S] (r = {min(pcorr):.2f}–{max(pcorr):.2f}).",
        f"* **Sentiment transformer**: the heads of block 0 interact (share at degree ≥ 2: "
        f"{runs['heads_block_0']['higher_order_share']:.2f}); over all 8 heads, ablating the 4 the spectrum picks "
        f"drops the logit difference by {f4['spectral: top subsets']:.3f} against {f4['leave-one-out']:.3f} for the "
        f"4 strongest single heads. The 512 MLP units of each block are additive (whole-spectrum mean degree "
        + " and ".join(f"{e['whole_spectrum_mean_degree']:.2f}" for e in mlp)
        + ").",
        f"* **Faithfulness**: spectral subsets beat single-unit rankings where units interact (the heads); on "
        f"MNIST and the MLP units they do not (MNIST, k = 8: best spectral {spectral8:.3f} vs best single-unit "
        f"{single8:.3f} nats) — the honest curves are below.",
        *language_model_summary(),
        "",
    ]


def language_model_summary() -> list[str]:
    """One bullet from ``benchmarks/bench_language_model.py``'s results (details: language_model.md)."""
    path = ROOT / "benchmarks" / "results" / "bench_language_model.json"
    if not path.is_file():
        return []
    cases = {c["case"]: c for c in json.loads(path.read_text())["cases"]}
    heads, latents, mlp = cases["lm-heads"], cases["lm-sae"], cases["lm-mlp"]
    return [
        f"* **Language model** (`movie_lm`, log p(`movie`) at the last position; compressive, "
        f"{heads['evaluations']:,} evaluations): over the 8 heads of both blocks "
        f"{heads['interaction_share_percent']} of the listed energy is joint, led by two overlapping heads "
        f"of block 0; over all {latents['n']:,} SAE latents {latents['interaction_share_percent']} (R² "
        f"{latents['held_out_r2']:.3f}); the last MLP is additive ({mlp['interaction_share_percent']}). "
        "Details: [the language model and its SAE](language_model.md)."
    ]


def model_section() -> list[str]:
    info = {}
    for name in ("mnist_mlp", "mnist_mlp_deep", "sentiment_transformer", "movie_lm"):
        info[name] = json.loads((ROOT / "actspec_jax" / "models" / "weights" / f"{name}.json").read_text())
    tr = info["sentiment_transformer"]
    acc = tr["accuracy"]
    trunc = tr["truncation"]["imdb/test"]
    return [
        "## Shipped models",
        "",
        "| model | architecture | test accuracy |",
        "|---|---|---|",
        f"| `mnist_mlp` | 14×14 → 256 ReLU → 10 (the paper's MLP) | {100 * info['mnist_mlp']['test_accuracy']:.2f} % "
        "on the 10,000 MNIST test images |",
        f"| `mnist_mlp_deep` | 14×14 → 256 → 256 → 256 → 10 | {100 * info['mnist_mlp_deep']['test_accuracy']:.2f} % "
        "on the 10,000 MNIST test images |",
        f"| `sentiment_transformer` | 2 blocks, width 128, 4 heads, context 256, mean pooling | "
        f"{100 * acc['imdb/test']:.1f} % on the held-out IMDB test split ({trunc['texts']:,} reviews; "
        f"{trunc['truncated']} longer than 256 tokens, truncated); {100 * acc['rotten_tomatoes/test']:.1f} % on "
        "Rotten Tomatoes test sentences (not trained on) |",
        f"| `movie_lm` | causal, 2 blocks, width 128, 4 heads, context 32, 2,048 words; SAE of "
        f"{info['movie_lm']['sae']['latents']:,} latents on `{info['movie_lm']['sae']['layer']}` | held-out "
        f"perplexity {info['movie_lm']['perplexity']['model']:.1f} (bigram {info['movie_lm']['perplexity']['bigram']:.1f}); "
        f"SAE explained variance {info['movie_lm']['sae']['explained_variance']:.3f}, L0 {info['movie_lm']['sae']['l0']:.1f} |",
        "",
    ]


def mnist_section() -> list[str]:
    data = json.loads((DOCS / "mnist" / "mnist_results.json").read_text())
    classes = data["classes"]
    rows = list(classes.values())
    table = (DOCS / "mnist" / "table.md").read_text()
    mask_share = _mean(r["mask"]["higher_order_share"] for r in rows)
    exact_share = _mean(r["exact"]["higher_order_share"] for r in rows)
    paper_share = _mean(r["paper"]["higher_order_share"] for r in rows)
    mask_singles = [r["mask"]["sizes"][0] for r in rows]
    mask_r2 = [r["mask"]["r2_heldout_masks"] for r in rows]
    paper_sizes = np.sum([r["paper"]["sizes"] for r in rows], axis=0)
    jacc = [r["paper"]["stability"]["jaccard"] for r in rows]
    refit = [r["paper"]["data_r2_heldout"]["refit"] for r in rows]
    listed = [r["paper"]["data_r2_heldout"]["listed"] for r in rows]
    ind_std = [r["indicator_under_masks"]["std"] for r in rows]
    ind_mean = [r["indicator_under_masks"]["mean"] for r in rows]
    exact_r2 = [r["exact"]["r2_top64"] for r in rows]
    cross = data["cross_class"]
    infl = [r["mask"]["influence_mean_degree"] for r in rows]
    pcorr = list(cross["paper"]["coefficient_vs_pattern_mean_correlation"].values())
    faith = [r["faithfulness_at"] for r in rows]
    mean_curve = data["mean_faithfulness"]
    ks = mean_curve["ks"]
    names = list(mean_curve["drops"])
    faith_rows = []
    for k in (1, 2, 4, 8, 16, 32):
        if k not in ks:
            continue
        i = ks.index(k)
        cells = [mean_curve["drops"][n][i] for n in names]
        faith_rows.append(
            f"| {k} | "
            + " | ".join("–" if c is None else f"{c:.4f}" for c in cells)
            + f" | {mean_curve['random_mean'][i]:.4f} |"
        )
    faith_keys = {str(k): k for k in (4, 8, 16)}
    beats = {k: _count_better(faith, k, "spectral: mask GL", "attribution (grad×act)") for k in faith_keys}
    exact_beats = {
        k: _count_better(faith, k, "spectral: exact top-20, greedy", "leave-one-out") for k in faith_keys
    }
    return [
        "## (a) MNIST: how distributed is each digit's code?",
        "",
        "Layer `relu_0` (256 units) of `mnist_mlp`, every class c = 0…9, three analyses "
        "(`actspec run --preset mnist-mask | mnist-exact | mnist-paper --target c`):",
        "",
        "* **mask mode, GL** — f(x) = mean log p(c) over 100 test images of class c, x a uniform keep/ablate "
        "mask over all 256 units (ablated = 0); GL with τ = 0.05 of std f (`tau_mode='centered'`);",
        "* **exact, top-20** — the same f over the 20 units with the largest gradient×activation attribution "
        "(the other 236 kept), all 2^20 masks;",
        "* **paper mode** — the authors' estimator: the class-c indicator over all 10,000 test images, "
        "hybrids of data rows, characters on the signs of the activations, τ = 0.2, 1000 triples per level, "
        "beam 128, non-redundancy γ = δ = 0.2; run with two keys.",
        "",
        "![Energy by degree per class](mnist/energy_by_degree.png)",
        "",
        "![Participation, mask mode](mnist/participation_mask.png)",
        "",
        "![Participation, paper mode](mnist/participation_paper.png)",
        "",
        "Top subsets of class 7: ![mask mode](mnist/top_subsets_class7_mask.png) "
        "![paper mode](mnist/top_subsets_class7_paper.png)",
        "",
        table,
        "### What differs between the modes",
        "",
        f"* **Mask mode sees an almost additive function.** Averaged over classes, the share of the "
        f"non-constant energy at degree ≥ 2 is {mask_share:.3f} for GL over all 256 units and {exact_share:.3f} "
        f"for the exact spectrum of the top-20 units (whose top 64 terms give R² = {min(exact_r2):.3f}–"
        f"{max(exact_r2):.3f} over all masks). GL finds {min(mask_singles)}–{max(mask_singles)} single units per "
        f"class; they explain R² = {min(mask_r2):.2f}–{max(mask_r2):.2f} of log p(c) on held-out random masks. The "
        "rest is spread thin: GL's influence pre-pass puts the energy-weighted mean degree of the *whole* spectrum "
        f"at {min(infl):.2f}–{max(infl):.2f} (1 = additive), so some classes do carry joint energy, but in many "
        "small terms below τ rather than in a few heavy subsets.",
        f"* **The mask-mode class indicator is nearly constant**: under uniform masks the mean indicator over the "
        f"class-c images is {min(ind_mean):.2f}–{max(ind_mean):.2f} (the class stays correct on most masks) with a "
        f"standard deviation of {min(ind_std):.3f}–{max(ind_std):.3f}, which is why the mask mode explains log p(c).",
        f"* **Paper mode finds many pairs and triples**: {int(paper_sizes[0])} single units, {int(paper_sizes[1])} "
        f"pairs, {int(paper_sizes[2])} triples and {int(paper_sizes[3])} larger subsets over the ten classes "
        f"(mean share at degree ≥ 2: {paper_share:.2f}). Its coefficients are data correlations "
        "E_data[f(a) χ_S(sign(a))] of *correlated* binary patterns, not Fourier coefficients: summing the listed "
        f"terms predicts the indicator on 10,000 held-out training images with R² = {min(listed):.0f} to "
        f"{max(listed):.0f} (they double-count shared variance), while a least-squares refit of the same "
        f"characters reaches R² = {min(refit):.2f}–{max(refit):.2f}.",
        f"* **Paper mode is noisy across keys**: two keys share a Jaccard fraction of {min(jacc):.2f}–{max(jacc):.2f} "
        f"of their subsets (mean {np.mean(jacc):.2f}).",
        f"* **…and hardly class-specific**: the subsets found for two *different* classes overlap with a mean Jaccard "
        f"of {cross['paper']['subset_jaccard']:.2f} (higher than two keys of the same class), and the per-unit "
        f"participation maps of different classes correlate at {cross['paper']['participation_correlation']:.2f}; in "
        f"mask mode the same numbers are {cross['mask']['subset_jaccard']:.3f} and "
        f"{cross['mask']['participation_correlation']:.2f}. The paper estimator does not centre f (the characters "
        "are not mean-zero under the data) and the class indicator is −1 on 90 % of the rows, so a coefficient "
        "E_data[f χ_S] is mostly mean(f)·E_data[χ_S] — a property of which units switch on and off together over "
        "the data, whatever the class: across the ten classes the reported coefficients correlate with "
        f"mean(f)·E_data[χ_S] at {min(pcorr):.2f}–{max(pcorr):.2f}.",
        "",
        "## (c) Faithfulness on MNIST: ablating what each method names",
        "",
        "Deletion curve on the mask-mode function of each class (all 256 units): ablate the first k units of "
        "an ordering together (the other units kept) and measure the drop D(k) = f(intact) − f(k ablated) of "
        "the mean log p(c). Orderings: the top subsets of each spectrum (subsets with the largest drop the "
        "spectrum predicts for ablating them, unit by unit), the exact top-20 spectrum's greedy predicted-drop "
        "order, single units by gradient×activation attribution, single units by their measured "
        "leave-one-out drop, and 20 random orderings (band: 10–90 %). Mean over the ten classes:",
        "",
        "![Faithfulness on MNIST](mnist/faithfulness.png)",
        "",
        "| k | " + " | ".join(names) + " | random (mean) |",
        "|---|" + "---|" * (len(names) + 1),
        *faith_rows,
        "",
        "(– : the ordering has fewer than k units; the mask-GL spectra list only "
        f"{min(mask_singles)}–{max(mask_singles)} units.)",
        "",
        "Counted per class (where both orderings reach k): the mask-GL subsets drop log p(c) more than "
        "gradient×activation attribution at "
        + ", ".join(f"k = {k} in {a} of {n}" for k, (a, n) in beats.items() if n)
        + " classes; the exact top-20 spectrum's greedy order beats the measured leave-one-out order at "
        + ", ".join(f"k = {k} in {a} of {n}" for k, (a, n) in exact_beats.items() if n)
        + " classes. "
        + paper_note(mean_curve),
        "",
        mnist_verdict(mean_curve, mask_share, exact_share),
        "",
    ]


def mnist_verdict(curve: dict, mask_share: float, exact_share: float) -> str:
    """What the MNIST deletion curves mean, from the class-averaged numbers."""
    ks = curve["ks"]
    best_single = {}
    best_spectral = {}
    for k in (4, 8):
        i = ks.index(k)
        singles = [curve["drops"][n][i] for n in ("attribution (grad×act)", "leave-one-out")]
        spectral = [v[i] for n, v in curve["drops"].items() if n.startswith("spectral") and v[i] is not None]
        best_single[k], best_spectral[k] = max(singles), max(spectral)
    wins = [k for k in (4, 8) if best_spectral[k] > best_single[k]]
    head = {
        0: "**Verdict: on MNIST the spectral subsets do not beat the single-unit rankings.**",
        1: f"**Verdict: on MNIST the spectral subsets do not clearly beat the single-unit rankings** (ahead at "
        f"k = {wins[0] if wins else ''} only, by a small margin).",
        2: "**Verdict: on MNIST the best spectral ordering beats the single-unit rankings at k = 4 and 8.**",
    }[len(wins)]
    return (
        f"{head} Class-averaged drops at k = 4 / 8: best spectral ordering {best_spectral[4]:.4f} / "
        f"{best_spectral[8]:.4f}, best single-unit ranking {best_single[4]:.4f} / {best_single[8]:.4f}. This is "
        "what the spectra predict: log p(c) as a function of the mask is nearly additive (energy share at degree "
        f"≥ 2: {mask_share:.3f} over all units, {exact_share:.3f} among the top-20 units), so the heaviest terms "
        "are single units — mostly the ones attribution already ranks first — and there is little joint effect "
        "for a subset ordering to exploit. The spectrum is also an average over random half-ablated networks, "
        "while a deletion curve starts from the intact one, where the measured single-unit drops are the natural "
        "ranking; the mask-GL spectra list only a handful of units above τ, so their curves stop early. Where "
        "the exact spectrum has pair terms, its greedy order edges out leave-one-out at small k."
    )


def paper_note(curve: dict) -> str:
    k = 16 if 16 in curve["ks"] else curve["ks"][-1]
    i = curve["ks"].index(k)
    paper = curve["drops"].get("spectral: paper mode", [None] * len(curve["ks"]))[i]
    loo = curve["drops"]["leave-one-out"][i]
    rand = curve["random_mean"][i]
    if paper is None:
        return ""
    return (
        f"At k = {k} the paper-mode subsets drop log p(c) by {paper:.4f} on average, against {loo:.4f} for the "
        f"leave-one-out order and {rand:.4f} for random units: paper mode describes correlations of activation "
        "patterns over all digits, which need not be the units whose removal changes one class's output."
    )


def sentiment_section() -> list[str]:
    data = json.loads((DOCS / "sentiment" / "sentiment_results.json").read_text())
    runs = data["runs"]
    table = (DOCS / "sentiment" / "table.md").read_text()
    firing = (DOCS / "sentiment" / "firing.md").read_text().split("\n", 1)[1].replace("\n## ", "\n#### ")
    lines = [
        "## (b) The sentiment transformer: positive − negative logit",
        "",
        "f = the mean of z_positive − z_negative over balanced IMDB *test* reviews, masks applied at every "
        "token position, ablated units set to zero (`actspec run --preset sentiment-heads | "
        "sentiment-all-heads | sentiment-mlp`). Heads: 32 + 32 reviews of ≤ 128 tokens, exact. MLP units: "
        "8 + 8 reviews of ≤ 64 tokens (the budget of a 2-core CPU), "
        "GL with τ = 0.1 of std f. A positive coefficient pushes towards *positive*.",
        "",
        "![Energy by degree](sentiment/energy_by_degree.png)",
        "",
        table,
    ]
    for name in runs:
        lines += [f"![Top subsets, {name}](sentiment/top_{name}.png)"]
        if (DOCS / "sentiment" / f"faithfulness_{name}.png").is_file():
            lines += [f"![Faithfulness, {name}](sentiment/faithfulness_{name}.png)"]
        if (DOCS / "sentiment" / f"participation_{name}.png").is_file():
            lines += [f"![Participation, {name}](sentiment/participation_{name}.png)"]
        lines.append("")
    heads = runs.get("heads_all")
    if heads and "faithfulness_drop" in heads:
        f = heads["faithfulness_drop"]
        k = "4" if "4" in f else max(f)
        spectral, loo = f[k]["spectral: top subsets"], f[k]["leave-one-out"]
        verdict = (
            "the spectrum's joint terms point to a better set than the single-head ranking"
            if spectral > loo
            else "the single-head ranking does at least as well"
        )
        lines += [
            f"All eight heads: ablating the first {k} heads of the spectral order drops the logit difference by "
            f"{spectral:.3f}, the {k} heads with the largest single-head drops by {loo:.3f} (random: "
            f"{f[k]['random (mean)']:.3f}). Share of energy at degree ≥ 2: {heads['higher_order_share']:.2f}; "
            f"{verdict}.",
            "",
        ]
    for name in ("mlp_block_0", "mlp_block_1"):
        e = runs.get(name)
        if e:
            lines.append(
                f"{name.replace('_', ' ')}: GL lists {sum(e['sizes'])} unit(s) above τ (R² = {e['r2']:.3f} on held-out "
                f"masks); the whole-spectrum mean degree from the influences is {e['whole_spectrum_mean_degree']:.2f}, "
                "so the function is additive with its variance spread over many units. The influence pre-pass finds "
                f"{e['units_with_sqrt_influence_above_tau']} units with √Inf_i ≥ τ·std f (candidates for a single-unit "
                f"term above τ), and the beam was full (128 live buckets) at {e['levels_with_full_beam']} of "
                f"{e['levels']} levels: with 128 × 16 evaluations per level — the budget of this CPU — sampling noise "
                "fills the beam with spurious buckets and units near τ drop out (false negatives; more samples per "
                "level or GL's `adaptive=True` rule would be the remedy — not run here)."
            )
            lines.append("")
    lines += [sentiment_verdict(runs), "", "### Where the top subsets fire", "", firing]
    return lines


def sentiment_verdict(runs: dict) -> str:
    """Compare the spectral and single-unit orderings run by run at two k below n (k = n ablates everything)."""
    parts = []
    for name, entry in runs.items():
        f = entry.get("faithfulness_drop")
        if not f:
            continue
        n = entry["n"]
        for k in ("2", "3") if n <= 4 else ("2", "4") if n <= 8 else ("4", "8"):
            if k not in f:
                continue
            spectral = max(
                (v for n, v in f[k].items() if n.startswith("spectral") and np.isfinite(v)), default=None
            )
            single = max(
                v
                for n, v in f[k].items()
                if n in ("attribution (grad×act)", "leave-one-out") and np.isfinite(v)
            )
            if spectral is None:
                parts.append(f"{name} k = {k}: no spectral ordering reaches k (single units {single:+.3f})")
            else:
                word = (
                    "ahead"
                    if spectral > single + 1e-9
                    else ("tied" if abs(spectral - single) <= 1e-9 else "behind")
                )
                parts.append(
                    f"{name} k = {k}: spectral {spectral:+.3f} vs best single-unit {single:+.3f} ({word})"
                )
    return (
        "**Spectral vs single-unit orderings, run by run** (drop of the mean logit difference): "
        + "; ".join(parts)
        + ". Where units interact (the heads of block 0, all heads together) the spectrum's joint terms pick "
        "better sets than single-unit rankings at equal k; where the function is additive and spread thin (the MLP "
        "units, energy share at degree ≥ 2 near 0 and only a few units above τ), the spectrum's top units are "
        "those that matter *on average over random half-ablated networks* — often units whose presence lowers the "
        "positive logit — and the single-unit rankings measured at the intact model remove more of the output."
    )


def main() -> None:
    lines = [
        "# Results",
        "",
        "Activation spectra of the two shipped models. Regenerate every figure and table with",
        "",
        "```bash",
        "python benchmarks/experiments/mnist_classes.py   # (a) + (c) on MNIST → docs/mnist/",
        "python benchmarks/experiments/sentiment.py       # (b) + (c) on the transformer → docs/sentiment/",
        "python benchmarks/experiments/results_page.py    # this page",
        "```",
        "",
        "(Numbers below come from a shared 2-core CPU; the runs are seeded and deterministic up to "
        "floating-point reduction order.)",
        "",
        *summary_section(),
        *model_section(),
        *mnist_section(),
        *sentiment_section(),
    ]
    path = DOCS / "results.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
