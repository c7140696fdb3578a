r"""The degree profile of a whole spectrum, for any ``n``, without finding a coefficient.

**What.** ``W^k = Σ_{|S|=k} f̂(S)²`` for ``k = 0…K``, the tail ``W^{>K} = Σ_{|S|>K} f̂(S)²``, the
total ``E[f²] = Σ_S f̂(S)²`` and the variance ``Var f = E[f²] − W^0``, each with a confidence
interval, plus the shares ``W^k / Var f`` ("47 % of the variance sits in pairs"). Units: the
output's units squared (shares are fractions). The cost is ``num_evaluations`` uniform masks,
evaluated in one chunked batch; nothing is exponential in ``n``.

**The identity.** For independent uniform ``x, y ∈ {−1,+1}^n`` at Hamming distance ``d``,
``Σ_{|S|=k} χ_S(x)χ_S(y) = K_k(d)``, the Krawtchouk polynomial, and
``E[f(x) f(y) K_k(d(x, y))] = Σ_{S,T} f̂(S) f̂(T) Σ_{|U|=k} E[χ_S χ_U(x)] E[χ_T χ_U(y)] = W^k``.
Over a sample ``x_1…x_N`` the U-statistic
``U_k = Σ_{a≠b} f(x_a) f(x_b) K_k(d_ab) / (N(N−1))`` is therefore unbiased for ``W^k`` and
uses all ``N(N−1)/2`` pairs of ``N`` evaluations (one ``[N, N]`` distance matrix, chunked:
``N²n`` multiply-adds, shared by every ``k``). It is the sample version of "estimate every
``f̂(S)`` by ``mean f χ_S`` and sum the squares, minus each square's own noise" — without
listing the ``C(n, k)`` subsets. Its variance is about
``4 Var(f · f^{=k}) / N + 2 C(n, k) σ⁴ / N²`` (``f^{=k}`` the degree-``k`` part, ``σ² = E[g²]`` of
the function the statistic is applied to): the second term is the price of not knowing which
of the ``C(n, k)`` subsets carry the weight, and is what limits high ``k`` at large ``n`` (the
optimal rate for a quadratic functional; the reported intervals show it).

Why this estimator and not the alternatives: noise stability ``Σ_k ρ^k W^k`` at a few ``ρ``
needs an ill-conditioned inversion and is biased by the unseen degrees; random restrictions
and derivative moments see a degree-``k`` set only through the hypergeometric / binomial mix
of its overlap, so every degree up to ``n`` leaks into every level and un-mixing needs them
all. The Krawtchouk weights cancel every other degree exactly, so ``W^k`` is unbiased for
every ``f`` and ``n``; importance-sampling the pair distance instead of using all pairs of
one sample was considered too: it cannot beat ``E_d|K_k(d)| ≈ √C(n, k)`` per pair, while the
all-pairs U-statistic spends each evaluation on ``N − 1`` pairs.

**Control variate (cross-fitted).** Subtracting a function ``h`` of degree ``≤ 1`` leaves
``W^k`` for ``k ≥ 2`` unchanged and shrinks ``σ²`` — for real layers most of the variance is
first order, so this divides the ``C(n, k) σ⁴ / N²`` floor severalfold. The sample is split
into halves ``A, B``; on ``A`` fit ``h = c + Σ_i â_i x_i`` (``c = mean f``, ``â_i = mean (f − c) x_i``;
the constant alone when ``|A| < 4n``, where ``â`` would add more noise than it removes); on
``B`` with ``g = f − h``, since ``f̂(S) = ĥ(S) + ĝ(S)``:

    W^k = W^k(h) + 2 E[h^{=k} g] + W^k(g),        W^0(h) = c², W^1(h) = Σ â_i², W^{≥2}(h) = 0,

where ``W^k(h)`` is known, ``E[h^{=k} g]`` is a sample mean over ``B`` and ``W^k(g)`` the
U-statistic over ``B``. Given ``A`` every term is unbiased, so the estimate is unbiased for any
fit. Likewise ``E[f²] = c² + Σ â_i² + E[2hg + g²]``, ``Var f = Σ â_i² + E[2h^{=1}g + g²] − W^0(g)``
and the tail ``W^{>K} = E[f²] − Σ_{k≤K} W^k`` (so the reported parts sum exactly to the total).
The roles of ``A`` and ``B`` are then swapped and the two estimates averaged (cross-fitting).

**Intervals.** Each half's estimate is ``const + mean_a u_a + Σ_a q_a / (N(N−1))`` (``q_a`` the
pair sums through point ``a``), so its delete-one values are closed-form and the jackknife
variance ``(N−1)/N Σ_a (θ_{(−a)} − θ̄)²`` costs nothing extra; it estimates the conditional
variance given the other half, which is the whole variance because the estimate is
conditionally unbiased (the jackknife of a U-statistic errs on the high side). The two
halves' estimates are treated as independent (they use disjoint evaluations; only the fitted
``h`` couples them), so ``Var = (v_AB + v_BA) / 4``; intervals are normal,
``θ ± z_{(1+confidence)/2} √Var``, clipped below at 0 (weights) and to ``[0, 1]`` (shares) —
clipping a true value's range never loses coverage. Shares are ratios (consistent, not exactly
unbiased); their intervals use the delete-one ratios. Coverage measured on planted, random and
MNIST problems at ``n ≤ 20``: see ``tests/solvers/test_degree_profile.py``.

**Randomness.** Only through ``key``: the masks are ``rademacher(key, (N, n))``; the same key
gives the same profile, whatever the memory budget.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax.errors import ActSpecError, NonFiniteOutputError
from actspec_jax.problems.base import Problem
from actspec_jax.solvers.common.memory import chunk_size_for_budget, default_memory_budget, evaluate_in_chunks
from actspec_jax.solvers.common.profile_stats import pair_sums
from actspec_jax.solvers.common.validate import check_key

__all__ = [
    "DEFAULT_EVALUATIONS",
    "MIN_EVALUATIONS",
    "DegreeProfile",
    "DegreeProfileError",
    "estimate_degree_profile",
]

DEFAULT_EVALUATIONS = 16384
MIN_EVALUATIONS = 64  # 32 per half: fewer and the jackknife's normal interval is unreliable
DEGREE_NAMES = {1: "singletons", 2: "pairs", 3: "triples", 4: "quadruples"}


class DegreeProfileError(ActSpecError):
    """Settings the degree-profile estimator cannot work with."""


_ARRAYS = (
    "weights",
    "lower",
    "upper",
    "stderr",
    "tail",
    "tail_lower",
    "tail_upper",
    "tail_stderr",
    "total",
    "total_stderr",
    "variance",
    "variance_stderr",
    "shares",
    "share_lower",
    "share_upper",
    "tail_share",
    "tail_share_lower",
    "tail_share_upper",
)


class DegreeProfile(NamedTuple):
    """Estimated energy per degree of a whole spectrum (see the module docstring).

    Shapes: ``[*output_shape, K + 1]`` for the per-degree arrays (index ``k`` = degree),
    ``[*output_shape, K]`` for the shares (index ``k − 1`` = degree ``k``), ``[*output_shape]``
    for the rest (``()`` for a single function: plain floats as 0-d arrays). Units: the
    output's units squared; shares are fractions of ``variance``.
    """

    n: int
    max_degree: int
    weights: np.ndarray  # W^k, k = 0..K
    lower: np.ndarray
    upper: np.ndarray
    stderr: np.ndarray
    tail: np.ndarray  # W^{>K}
    tail_lower: np.ndarray
    tail_upper: np.ndarray
    tail_stderr: np.ndarray
    total: np.ndarray  # E[f²]
    total_stderr: np.ndarray
    variance: np.ndarray  # E[f²] − W^0
    variance_stderr: np.ndarray
    shares: np.ndarray  # W^k / variance, k = 1..K
    share_lower: np.ndarray
    share_upper: np.ndarray
    tail_share: np.ndarray
    tail_share_lower: np.ndarray
    tail_share_upper: np.ndarray
    confidence: float
    evaluations: int
    control: str  # 'linear' or 'constant' (the cross-fitted control variate)
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested lists for arrays); :meth:`from_dict` inverts it."""
        out: dict[str, Any] = {"kind": "degree_profile"}
        for name in self._fields:
            value = getattr(self, name)
            if name in _ARRAYS:  # non-finite entries (a ratio over a zero variance) become None
                array = np.asarray(value, np.float64)
                value = np.where(np.isfinite(array), array, None).tolist()
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, doc: Any) -> DegreeProfile:
        """Rebuild from :meth:`to_dict` output (e.g. a spectrum's ``solver['degree_profile']``)."""
        if not isinstance(doc, dict) or doc.get("kind") != "degree_profile":
            raise DegreeProfileError(
                "not a degree-profile record (expected a dict with kind='degree_profile')."
            )
        try:
            values = {
                name: np.asarray(doc[name], np.float64) if name in _ARRAYS else doc[name]
                for name in cls._fields
                if name in doc or name != "wall_time_s"
            }
        except (KeyError, TypeError, ValueError) as err:
            raise DegreeProfileError(f"malformed degree-profile record ({err}).") from err
        return cls(**values)

    def interaction_share(self, output: int = 0) -> tuple[float, float, float]:
        """The share of the **whole spectrum's** variance in joint subsets (``|S| ≥ 2``), listed
        or not: ``1 − W¹ / Var f``, with its interval ``(1 − upper₁, 1 − lower₁)``, as
        ``(estimate, lower, upper)`` clipped to ``[0, 1]``.

        The listed terms' counterpart is :meth:`actspec_jax.Spectrum.interaction_share`.
        """
        first = lambda a: float(np.asarray(a).reshape(-1, self.max_degree)[output][0])  # noqa: E731
        joint = lambda a: min(max(1.0 - first(a), 0.0), 1.0)  # noqa: E731
        return joint(self.shares), joint(self.share_upper), joint(self.share_lower)

    def headline(self, output: int = 0) -> str:
        """One sentence, e.g. ``'85 % [85–86] of the variance sits in singletons, 12 % [11–13] in pairs, …'``.

        Point estimates below 0 (possible: the estimator is unbiased) are shown as 0; the
        brackets are the intervals.
        """
        pick = lambda a: np.asarray(a).reshape(-1, self.max_degree)[output] if self.max_degree else []  # noqa: E731
        flat = lambda a: float(np.asarray(a).reshape(-1)[output])  # noqa: E731
        pct = lambda e, lo, hi: f"{100 * max(e, 0.0):.0f} % [{100 * lo:.0f}–{100 * hi:.0f}]"  # noqa: E731
        items = zip(pick(self.shares), pick(self.share_lower), pick(self.share_upper))
        parts = [
            f"{pct(float(e), float(lo), float(hi))} in {DEGREE_NAMES.get(k, f'degree-{k} terms')}"
            for k, (e, lo, hi) in enumerate(items, 1)
        ]
        tail = pct(flat(self.tail_share), flat(self.tail_share_lower), flat(self.tail_share_upper))
        parts.append(f"{tail} above degree {self.max_degree}")
        text = ", ".join([parts[0].replace(" in ", " of the variance sits in ", 1), *parts[1:]])
        return text + " (shares rounded)"

    def arrays(self, p: int = 0) -> dict[str, np.ndarray]:
        """Every array field of output ``p`` (flattened outputs), per-degree arrays 1-d."""
        count = int(np.asarray(self.total).size)
        return {name: np.asarray(getattr(self, name)).reshape(count, -1)[p] for name in _ARRAYS}

    def output(self, p: int) -> DegreeProfile:
        """Output ``p``'s profile (flattened outputs) as a single function's: the same fields with
        the output axes dropped (0-d totals, 1-d per-degree arrays)."""
        outputs = np.asarray(self.total).shape
        count = int(np.prod(outputs))
        if not 0 <= p < count:
            raise DegreeProfileError(f"output {p} is out of range for a profile of {count} output(s).")
        fields = {}
        for name in _ARRAYS:
            array = np.asarray(getattr(self, name))
            fields[name] = array.reshape(count, *array.shape[len(outputs) :])[p]
        return self._replace(**fields)

    def __str__(self) -> str:
        text = self.table()
        return text + (f"\n  {self.headline()}." if int(np.asarray(self.total).size) == 1 else "")

    def table(self) -> str:
        """Per-degree shares and weights with their intervals, one block per output."""
        outputs = int(np.asarray(self.total).size)
        z = _z(self.confidence)
        lines = [
            f"Degree profile over n={self.n} ({self.evaluations} uniform masks, "
            f"{100 * self.confidence:.0f} % intervals, control={self.control}):"
        ]
        for p in range(outputs):
            o = self.arrays(p)
            head = f"  output {p}: " if outputs > 1 else "  "
            lines.append(
                f"{head}variance {o['variance'][0]:.4g} ± {z * o['variance_stderr'][0]:.2g}; "
                f"constant term W^0 = {o['weights'][0]:.4g}"
            )
            rows = [
                (
                    f"{k:2d}",
                    o["shares"][k - 1],
                    o["share_lower"][k - 1],
                    o["share_upper"][k - 1],
                    f"W^{k} = {o['weights'][k]:.4g}",
                )
                for k in range(1, self.max_degree + 1)
            ]
            rows.append(
                (
                    f">{self.max_degree}",
                    o["tail_share"][0],
                    o["tail_share_lower"][0],
                    o["tail_share_upper"][0],
                    f"W^>{self.max_degree} = {o['tail'][0]:.4g}",
                )
            )
            clipped = False
            for name, share, lo, hi, weight in rows:
                shown, moved = shown_share(share, lo, hi)
                clipped |= moved
                mark = "*" if moved else " "
                interval = f"[{100 * lo:5.1f}, {100 * hi:5.1f}]"
                lines.append(f"    degree {name}: {100 * shown:5.1f} %{mark}{interval}  {weight}")
            if clipped:
                lines.append(
                    "    * the unbiased point estimate fell outside its interval (it can be negative when "
                    "the true share is ~0); shown at the interval's edge, its W^k as estimated."
                )
        return "\n".join(lines)


def shown_share(share: float, lower: float, upper: float) -> tuple[float, bool]:
    """A share as displayed: the point estimate moved into ``[lower, upper]`` (an unbiased estimate
    of a share near 0 can be negative, outside its own interval), and whether it was moved."""
    shown = min(max(float(share), float(lower)), float(upper))
    return shown, shown != float(share)


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def check_profile_arguments(
    problem: Any, key: Any, max_degree: Any, num_evaluations: Any, confidence: Any
) -> tuple[int, int]:
    """``(n, max_degree)`` of a valid profile request; a clear error naming the argument otherwise."""
    if not isinstance(problem, Problem):
        raise DegreeProfileError(f"estimate_degree_profile needs a Problem, got {type(problem).__name__}.")
    if key is None:
        raise DegreeProfileError("the degree profile samples masks at random: pass key=jax.random.key(0).")
    n = int(problem.n)
    if (
        isinstance(max_degree, bool)
        or not isinstance(max_degree, int | np.integer)
        or not 0 <= max_degree < n
    ):
        raise DegreeProfileError(
            f"max_degree must be an integer in 0..n−1 = 0..{n - 1} (degrees above it are the tail), "
            f"got {max_degree!r}."
        )
    if isinstance(num_evaluations, bool) or not isinstance(num_evaluations, int | np.integer):
        raise DegreeProfileError(f"num_evaluations must be an integer, got {num_evaluations!r}.")
    if num_evaluations < MIN_EVALUATIONS:
        raise DegreeProfileError(
            f"num_evaluations={num_evaluations} is below the minimum of {MIN_EVALUATIONS} (two halves of at "
            f"least {MIN_EVALUATIONS // 2} masks for the cross-fit and the jackknife); use "
            f"num_evaluations >= {MIN_EVALUATIONS}."
        )
    if not isinstance(confidence, float | int) or not 0.0 < float(confidence) < 1.0:
        raise DegreeProfileError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence!r}.")
    return n, int(max_degree)


def _half(
    fit_x: np.ndarray, fit_f: np.ndarray, x: jax.Array, f: np.ndarray, degree: int, linear: bool, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Estimates ``[J, P]`` and jackknife variances ``[J, P]`` from half ``x`` with ``h`` fitted on the other.

    Rows ``J``: ``W^0…W^K``, tail, total, variance, shares of ``W^1…W^K``, tail share.
    """
    n, degrees = fit_x.shape[1], degree + 1
    count = f.shape[0]
    c = fit_f.mean(axis=0)  # [P]
    a_hat = fit_x.T @ (fit_f - c) / fit_f.shape[0] if linear else np.zeros((n, f.shape[1]))  # [n, P]
    xb = np.asarray(x, np.float64)
    h1 = xb @ a_hat  # [N, P]
    g = f - c - h1
    scale = np.sqrt([math.comb(n, k) for k in range(degrees)])
    q = g[:, None, :] * pair_sums(x, g, degrees - 1, chunk=chunk) * scale[None, :, None]  # [N, K+1, P]
    u = np.zeros_like(q)
    const = np.zeros((degrees, f.shape[1]))
    const[0] = c**2
    u[:, 0] = 2.0 * c * g
    if degrees > 1:
        const[1] = (a_hat**2).sum(axis=0)
        u[:, 1] = 2.0 * h1 * g
    c_total, u_total = c**2 + (a_hat**2).sum(axis=0), 2.0 * (c + h1) * g + g**2
    c_var, u_var, q_var = (a_hat**2).sum(axis=0), 2.0 * h1 * g + g**2, -q[:, 0]
    consts = np.concatenate([const, [c_total - const.sum(0), c_total, c_var]])
    means = np.concatenate([u, (u_total - u.sum(1))[:, None], u_total[:, None], u_var[:, None]], axis=1)
    pairs = np.concatenate([q, -q.sum(1, keepdims=True), np.zeros_like(q[:, :1]), q_var[:, None]], axis=1)
    su, sq = means.sum(0), pairs.sum(0)
    full = consts + su / count + sq / (count * (count - 1))
    drop = consts + (su - means) / (count - 1) + (sq - 2.0 * pairs) / ((count - 1) * (count - 2))  # [N, J, P]
    # shares of the variance (row degrees + 2): degrees 1..K and the tail (row degrees)
    share_rows = [*range(1, degrees), degrees]
    with np.errstate(divide="ignore", invalid="ignore"):
        full = np.concatenate([full, full[share_rows] / full[degrees + 2]])
        drop = np.concatenate([drop, drop[:, share_rows] / drop[:, degrees + 2 : degrees + 3]], axis=1)
    var = (count - 1) / count * ((drop - drop.mean(0)) ** 2).sum(0)
    return full, var


def estimate_degree_profile(
    problem: Problem,
    *,
    key: jax.Array,
    max_degree: int = 3,
    num_evaluations: int = DEFAULT_EVALUATIONS,
    confidence: float = 0.95,
    memory_budget: int | None = None,
) -> DegreeProfile:
    """Estimate ``W^0…W^K``, the tail ``W^{>K}``, ``E[f²]`` and ``Var f`` with intervals.

    Args:
      problem: any problem (a batch of outputs gives one profile per output).
      key: PRNG key; the same key gives the same profile.
      max_degree: ``K`` in ``0…n−1``; default 3 (lowered to ``n − 1`` for ``n ≤ 3``).
      num_evaluations: uniform masks evaluated, ``≥ MIN_EVALUATIONS`` (64); the interval
        half-width of ``W^k`` falls like ``1/N`` where ``C(n, k)`` dominates, else ``1/√N``.
      confidence: coverage of each (per-quantity, normal) interval, in ``(0, 1)``.
      memory_budget: bytes per chunk of mask evaluations and of the pair-distance matrix.

    Returns:
      a :class:`DegreeProfile`. Cost: ``num_evaluations`` evaluations plus ``≈ N² n / 2``
      multiply-adds for the distance matrices (both halves).
    """
    started = time.perf_counter()
    if isinstance(problem, Problem) and max_degree == 3 and problem.n <= 3:
        max_degree = problem.n - 1
    n, degree = check_profile_arguments(problem, key, max_degree, num_evaluations, confidence)
    check_key(key, "estimate_degree_profile")
    count = int(num_evaluations)
    budget = memory_budget if memory_budget is not None else default_memory_budget()
    masks = jax.random.rademacher(key, (count, n), dtype=jnp.float32)
    values = np.asarray(evaluate_in_chunks(problem, masks, memory_budget=budget), np.float64)
    if not np.isfinite(values).all():
        raise NonFiniteOutputError(
            f"the model output is NaN/inf on {int((~np.isfinite(values)).sum())} of {values.size} uniform "
            "masks; check the fill values and the output selector (e.g. log of a zero probability)."
        )
    out_shape = tuple(values.shape[1:])
    values = values.reshape(count, -1)
    half = count // 2
    parts = [(masks[:half], values[:half]), (masks[half:], values[half:])]
    linear = min(half, count - half) >= 4 * n
    per_row = (count - half) * 4 * 6 + 4 * n  # t, the diagonal, two recurrence terms, temporaries
    chunk = chunk_size_for_budget(per_row, budget, limit=count - half, what="row of the pair-distance matrix")
    estimates, variances = [], []
    for (fit_x, fit_f), (x, f) in ((parts[0], parts[1]), (parts[1], parts[0])):
        est, var = _half(np.asarray(fit_x, np.float64), fit_f, x, f, degree, linear, chunk)
        estimates.append(est)
        variances.append(var)
    est = (estimates[0] + estimates[1]) / 2.0
    se = np.sqrt((variances[0] + variances[1]) / 4.0)
    z = _z(float(confidence))
    lo, hi = est - z * se, est + z * se
    r = degree + 1  # row layout of _half: [W^0..W^K, tail, total, variance, shares 1..K, tail share]

    def cols(a: np.ndarray, rows: slice) -> np.ndarray:  # [rows, P] -> [*out, rows]
        block = np.moveaxis(a[rows], 0, -1)
        return block.reshape((*out_shape, block.shape[-1]))

    def row(a: np.ndarray, i: int) -> np.ndarray:  # [rows, P] -> [*out]
        return a[i].reshape(out_shape)

    per_degree, shares = slice(0, r), slice(r + 3, r + 3 + degree)
    return DegreeProfile(
        n=n,
        max_degree=degree,
        weights=cols(est, per_degree),
        lower=np.maximum(cols(lo, per_degree), 0.0),
        upper=cols(hi, per_degree),
        stderr=cols(se, per_degree),
        tail=row(est, r),
        tail_lower=np.maximum(row(lo, r), 0.0),
        tail_upper=row(hi, r),
        tail_stderr=row(se, r),
        total=row(est, r + 1),
        total_stderr=row(se, r + 1),
        variance=row(est, r + 2),
        variance_stderr=row(se, r + 2),
        shares=cols(est, shares),
        share_lower=np.clip(cols(lo, shares), 0.0, 1.0),
        share_upper=np.clip(cols(hi, shares), 0.0, 1.0),
        tail_share=row(est, r + 3 + degree),
        tail_share_lower=np.clip(row(lo, r + 3 + degree), 0.0, 1.0),
        tail_share_upper=np.clip(row(hi, r + 3 + degree), 0.0, 1.0),
        confidence=float(confidence),
        evaluations=count,
        control="linear" if linear else "constant",
        wall_time_s=time.perf_counter() - started,
    )
