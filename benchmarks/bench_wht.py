"""FWHT speed against the memory floor (a plain copy) and a NumPy radix-2 transform.

For n = 16…24 (length 2^n, float32) measures, in the same run:
  * ``fwht`` (Kronecker / matrix-unit formulation, the default) and its radix-2 variant,
  * a NumPy in-place radix-2 transform (the usual hand-written baseline),
  * a jitted copy ``-x`` of the same array (one read + one write: the memory floor),
  * boofun's transform when boofun is installed (optional).
Targets: FWHT at n = 24 within 8× of the copy (issue 2), within 4× (issue 6).

Usage: ``python benchmarks/bench_wht.py [--max-n 24] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, save, table

from actspec_jax.transforms import fwht


def numpy_radix2(values: np.ndarray) -> np.ndarray:
    """In-place butterfly passes over a copy (the baseline a user would write)."""
    out = values.copy()
    half = 1
    while half < out.shape[0]:
        view = out.reshape(-1, 2, half)
        top = view[:, 0].copy()
        view[:, 0] += view[:, 1]
        view[:, 1] = top - view[:, 1]
        half *= 2
    return out


def boofun_transform() -> object | None:
    """boofun's ``fast_walsh_hadamard`` (unnormalised), or ``None`` when boofun is absent."""
    try:
        from boofun.core.optimizations import fast_walsh_hadamard
    except ImportError:
        return None
    return lambda values: fast_walsh_hadamard(values, normalize=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-n", type=int, default=16)
    parser.add_argument("--max-n", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    check = np.random.default_rng(0).standard_normal(1 << 10).astype(np.float32)
    reference = numpy_radix2(check)
    np.testing.assert_allclose(np.asarray(fwht(jnp.asarray(check))), reference, rtol=1e-4, atol=1e-3)
    copy = jax.jit(lambda a: -a)
    radix2 = jax.jit(lambda a: fwht(a, method="radix2"))
    boo = boofun_transform()
    if boo is not None:
        np.testing.assert_allclose(boo(check), reference, rtol=1e-4, atol=1e-3)
    rows, records = [], []
    for n in range(args.min_n, args.max_n + 1):
        host = np.random.default_rng(n).standard_normal(1 << n).astype(np.float32)
        x = jnp.asarray(host)
        t_copy = best_time(lambda x=x: copy(x), repeats=args.repeats)
        t_fwht = best_time(lambda x=x: fwht(x), repeats=args.repeats)
        t_radix = best_time(lambda x=x: radix2(x), repeats=args.repeats)
        t_numpy = best_time(lambda h=host: numpy_radix2(h), repeats=max(1, args.repeats // 2))
        t_boo = None
        if boo is not None:
            try:
                t_boo = best_time(lambda h=host: boo(h), repeats=max(1, args.repeats // 2))
            except Exception:  # a differently shaped API: report as unavailable
                t_boo = None
        record = {
            "n": n,
            "copy_s": t_copy,
            "fwht_s": t_fwht,
            "fwht_radix2_s": t_radix,
            "numpy_radix2_s": t_numpy,
            "boofun_s": t_boo,
            "fwht_over_copy": t_fwht / t_copy,
            "numpy_over_fwht": t_numpy / t_fwht,
        }
        records.append(record)
        rows.append(
            [
                n,
                t_copy * 1e3,
                t_fwht * 1e3,
                t_radix * 1e3,
                t_numpy * 1e3,
                "-" if t_boo is None else t_boo * 1e3,
                t_fwht / t_copy,
                t_numpy / t_fwht,
            ]
        )
    headers = [
        "n",
        "copy ms",
        "fwht ms",
        "fwht radix-2 ms",
        "NumPy radix-2 ms",
        "boofun ms",
        "fwht / copy",
        "NumPy / fwht",
    ]
    print(table(headers, rows))
    last = records[-1]
    print(
        f"\nn={last['n']}: FWHT is {last['fwht_over_copy']:.2f}× the copy floor "
        f"(targets: ≤ 8× issue 2, ≤ 4× issue 6) and {last['numpy_over_fwht']:.1f}× faster than NumPy."
    )
    path = save("bench_wht", {"records": records, "boofun_available": boo is not None})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
