"""FWHT against the copy floor, a NumPy radix-2 transform and boofun's transform.

For each n (length 2^n, float32, one vector) measures in the same run:
  * ``copy`` — a jitted ``-x`` (one read + one write of the array: the memory floor);
  * ``fwht`` — :func:`actspec_jax.fwht` (Kronecker / matrix-unit formulation), jitted;
  * ``fwht_consuming`` — the exact solver's transform (donated, ≤ 2 arrays alive, scaled);
  * ``previous`` — the earlier Kronecker formulation (passes written as a batched einsum
    ``'ij,bjr->bri'``, for which XLA adds a transpose per pass), to show the change;
  * ``numpy_radix2`` — the textbook in-place butterfly loop in NumPy;
  * ``boofun`` — ``boofun.core.optimizations.fast_walsh_hadamard(v, normalize=False)``
    (optional dependency; only up to ``--boofun-max-n`` because it is slow).
Target (issue 6): fwht at n = 24 within 4× of the copy.
Usage: ``python benchmarks/scale_fwht.py [--ns 16 20 24] [--tiny]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, save, table

from actspec_jax.transforms import fwht, hadamard_matrix
from actspec_jax.transforms.wht import _split_bits, fwht_consuming


@jax.jit
def previous_kronecker(values: jax.Array) -> jax.Array:
    """The formulation before issue 6: each pass a batched einsum (batch axis of size 1)."""
    bits = values.shape[-1].bit_length() - 1
    x = values.reshape((-1, 1 << bits))
    for k in _split_bits(bits, 5):
        x = x.reshape((x.shape[0], 1 << k, -1))
        x = jnp.einsum("ij,bjr->bri", hadamard_matrix(k), x, precision=jax.lax.Precision.HIGHEST)
        x = x.reshape((x.shape[0], -1))
    return x.reshape(values.shape)


def numpy_radix2(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    half = 1
    while half < out.shape[0]:
        view = out.reshape(-1, 2, half)
        top = view[:, 0].copy()
        view[:, 0] += view[:, 1]
        view[:, 1] = top - view[:, 1]
        half *= 2
    return out


def boofun_transform() -> Callable[[np.ndarray], np.ndarray] | None:
    try:
        from boofun.core.optimizations import fast_walsh_hadamard
    except ImportError:
        return None
    return lambda values: np.asarray(fast_walsh_hadamard(values, normalize=False))


def run(ns: list[int], repeats: int = 5, boofun_max_n: int = 20) -> list[dict[str, Any]]:
    check = np.random.default_rng(0).standard_normal(1 << 10).astype(np.float32)
    reference = numpy_radix2(check)
    np.testing.assert_allclose(np.asarray(fwht(jnp.asarray(check))), reference, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        np.asarray(previous_kronecker(jnp.asarray(check))), reference, rtol=1e-4, atol=1e-3
    )
    boo = boofun_transform()
    if boo is not None:
        np.testing.assert_allclose(boo(check.astype(np.float64)), reference, rtol=1e-4, atol=1e-3)
    copy = jax.jit(lambda a: -a)
    records = []
    for n in ns:
        host = np.random.default_rng(n).standard_normal(1 << n).astype(np.float32)
        x = jnp.asarray(host)
        t_copy = best_time(lambda x=x: copy(x), repeats=repeats)
        t_fwht = best_time(lambda x=x: fwht(x), repeats=repeats)
        t_prev = best_time(lambda x=x: previous_kronecker(x), repeats=repeats)
        t_fwht = min(t_fwht, best_time(lambda x=x: fwht(x), repeats=repeats))  # interleave
        t_cons = best_time(lambda x=x, n=n: fwht_consuming(jnp.copy(x), scale=2.0**-n), repeats=repeats)
        t_copy = min(t_copy, best_time(lambda x=x: copy(x), repeats=repeats))  # bracket the run
        t_numpy = best_time(lambda h=host: numpy_radix2(h), repeats=max(1, repeats // 2))
        t_boo = None
        if boo is not None and n <= boofun_max_n:
            h64 = host.astype(np.float64)
            t_boo = best_time(lambda h=h64: boo(h), repeats=1, warmup=0)
        records.append(
            {
                "n": n,
                "copy_s": t_copy,
                "fwht_s": t_fwht,
                "fwht_consuming_s": t_cons,
                "previous_s": t_prev,
                "previous_over_fwht": t_prev / t_fwht,
                "numpy_radix2_s": t_numpy,
                "boofun_s": t_boo,
                "fwht_over_copy": t_fwht / t_copy,
                "numpy_over_fwht": t_numpy / t_fwht,
                "boofun_over_fwht": None if t_boo is None else t_boo / t_fwht,
            }
        )
    return records


def rows(records: list[dict[str, Any]]) -> list[list[Any]]:
    def ms(v: float | None) -> Any:
        return "-" if v is None else v * 1e3

    return [
        [
            r["n"],
            ms(r["copy_s"]),
            ms(r["fwht_s"]),
            ms(r["fwht_consuming_s"]),
            ms(r["previous_s"]),
            ms(r["numpy_radix2_s"]),
            ms(r["boofun_s"]),
            r["fwht_over_copy"],
            r["previous_over_fwht"],
            r["numpy_over_fwht"],
            "-" if r["boofun_over_fwht"] is None else r["boofun_over_fwht"],
        ]
        for r in records
    ]


HEADERS = [
    "n",
    "copy ms",
    "fwht ms",
    "solver transform ms",
    "previous formulation ms",
    "NumPy radix-2 ms",
    "boofun ms",
    "fwht / copy",
    "previous / fwht",
    "NumPy / fwht",
    "boofun / fwht",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[16, 20, 24])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--boofun-max-n", type=int, default=20)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    ns = [10, 12] if args.tiny else args.ns
    records = run(ns, args.repeats, args.boofun_max_n)
    print(table(HEADERS, rows(records)))
    print(f"saved {save('scale_fwht', {'records': records})}")


if __name__ == "__main__":
    main()
