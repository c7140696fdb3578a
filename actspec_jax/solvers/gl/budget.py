"""Planning a Goldreich–Levin search under a budget of evaluations (``max_evaluations=``).

GL's cost in mask mode (non-adaptive) is known before it runs, up to the number of levels,
which depends on how many neurons survive the influence pruning. Per pass:
``L`` (norm) ``+ I·(n+1)`` (influence) ``+ levels · m · r`` ``+ L`` (leaves), with
``levels ≤ ⌈n / b⌉``; residual passes add one refit of ``L`` each and the final refits at most
two more. :func:`worst_case_evaluations` is that bound with every neuron searched, so a plan
that fits it can never overshoot — at the price of using less than the budget when pruning
drops neurons (it usually does). :func:`plan_gl_budget` picks, under the bound: two passes
when they fit, ``r = 16`` prefix draws (``bench_gl``'s best at fixed cost), an influence
pre-pass of ``≈ budget/16`` per pass, leaf designs of ``≈ budget/20`` (a power of two in
256…8192) and the rest as base draws ``m`` per level; smaller budgets fall back to one pass and
smaller designs, down to the minimum (``m = r = I = 2``, ``L = 64``).
"""

from __future__ import annotations

import math
from typing import Any

from actspec_jax.errors import ActSpecError

__all__ = ["minimum_gl_evaluations", "plan_gl_budget", "worst_case_evaluations"]

MIN_LEAF = 64
#: Most base draws per level a plan asks for (GoldreichLevin's own bound on ``num_samples``).
MAX_SAMPLES = 1 << 20


def worst_case_evaluations(cfg: dict[str, Any], n: int) -> int:
    """Largest number of mask evaluations GL can use with settings ``cfg`` at ``n`` neurons."""
    passes, leaf, b = int(cfg["passes"]), int(cfg["leaf_samples"]), int(cfg["block_size"])
    influence = int(cfg["influence_samples"]) * (n + 1) if cfg["order"] == "influence" else 0
    searched = len(cfg["order"]) if isinstance(cfg["order"], list) else n
    samples = int(cfg["max_samples"] if cfg["adaptive"] else cfg["num_samples"])
    per_pass = 2 * leaf + influence + math.ceil(searched / b) * samples * int(cfg["draws_per_z"])
    refits = (passes - 1) + 2 if passes > 1 else 0
    return passes * per_pass + refits * leaf


def minimum_gl_evaluations(n: int, block_size: int = 4) -> int:
    """The smallest budget GL accepts at ``n``: one pass, ``m = r = I = 2``, ``L = 64``."""
    cfg = {"passes": 1, "leaf_samples": MIN_LEAF, "block_size": block_size, "influence_samples": 2,
           "order": "influence", "adaptive": False, "num_samples": 2, "draws_per_z": 2}  # fmt: skip
    return worst_case_evaluations(cfg, n)


def plan_gl_budget(budget: int, n: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Settings overriding ``cfg`` so that :func:`worst_case_evaluations` ``≤ budget``."""
    b = int(cfg["block_size"])
    minimum = minimum_gl_evaluations(n, b)
    if budget < minimum:
        raise ActSpecError(
            f"max_evaluations={budget} is below GoldreichLevin's minimum of {minimum} evaluations at n={n} "
            f"(one pass of ⌈n/{b}⌉ levels with 2×2 draws, a 2-point influence pre-pass and 64-mask "
            "designs); raise the budget or use CompressiveSolver, which needs fewer."
        )
    levels = math.ceil(n / b)
    for passes in (int(cfg["passes"]), 1):
        for draws in (16, 8, 4, 2):
            influence = int(min(32, max(2, budget // (16 * (n + 1) * passes))))
            leaf = int(min(8192, max(256, 1 << int(math.log2(max(budget // 20, 1))))))
            while leaf >= MIN_LEAF:
                plan = dict(cfg, passes=passes, adaptive=False, draws_per_z=draws,
                            influence_samples=influence, leaf_samples=leaf, num_samples=2)  # fmt: skip
                spare = budget - worst_case_evaluations(plan, n)
                if spare >= 0:
                    plan["num_samples"] = min(2 + spare // (passes * levels * draws), MAX_SAMPLES)
                    plan["max_samples"] = plan["num_samples"]
                    if plan["num_samples"] >= 8 or (passes == 1 and draws == 2):
                        return plan
                    break
                if influence > 2:
                    influence = max(2, influence // 2)
                else:
                    leaf //= 2
    plan = dict(cfg, passes=1, adaptive=False, draws_per_z=2, influence_samples=2,
                leaf_samples=MIN_LEAF, num_samples=2, max_samples=2)  # fmt: skip
    return plan
