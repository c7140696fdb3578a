"""Exact spectrum throughput (masks/s): ours (incremental, direct) vs a PyTorch hook loop.

Problem: the shipped MNIST MLP (196 → 256 ReLU → 10), layer ``relu_0``, ``n`` of its 256 units
masked (the ``n`` most relevant to class 7, by |mean activation × read-out weight|; the other
units kept), zero fill, output ``log_prob:7`` averaged over the first ``inputs`` MNIST test
images. Measured in the same run on the same weights:

* ``ours_incremental`` — ``ExactSolver()`` (subset-sum table over the masked units, then the
  rest of the head per mask; includes the FWHT and top-k);
* ``ours_direct`` — ``ExactSolver(incremental=False)``: every mask through the whole head in
  cache-sized blocks (our evaluation before the incremental table);
* ``torch_hook`` — the straightforward PyTorch loop: a forward hook on the ReLU module
  replaces its output by the masked one, batches of masks × all inputs run the whole model;
* ``torch_cached`` — a stronger PyTorch baseline that reuses the layer's activations (the hook
  loop with the first layer hoisted out of the loop).

PyTorch runs on a subset of the masks (its throughput is steady; the values are checked
against ours on that subset). Targets (issue 6): incremental ≥ 10× torch_hook, ≥ 3× direct.
Usage: ``python benchmarks/scale_exact.py [--n 20] [--inputs 256] [--tiny]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save, table

import actspec_jax as asj
from actspec_jax.transforms import enumerate_masks


def mnist_problem(n: int, num_inputs: int) -> tuple[asj.MaskedProblem, Any, np.ndarray, list[int]]:
    from actspec_jax.data import load_mnist
    from actspec_jax.models import load_pretrained

    model = load_pretrained("mnist_mlp")
    images, _ = load_mnist("test")
    inputs = jnp.asarray(images[:num_inputs])
    cut = asj.cut_linen(model.module, model.variables, "relu_0")
    acts = np.asarray(cut.activations(inputs))
    kernel = np.asarray(model.variables["params"]["logits"]["kernel"])
    score = np.abs(acts.mean(0) * (kernel[:, 7] - kernel.mean(1)))
    units = [int(u) for u in np.argsort(-score)[:n]]
    problem = asj.masked_problem(cut, inputs, output="log_prob:7", units=units)
    return problem, model.variables, np.asarray(inputs), units


def solve_time(solver: asj.ExactSolver, problem: asj.MaskedProblem, repeats: int) -> tuple[float, Any]:
    spectrum = solver(problem)  # compile
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        spectrum = solver(problem)
        best = min(best, time.perf_counter() - started)
    return best, spectrum


class TorchBaselines:
    """The same MLP and weights in PyTorch (CPU), evaluated over mask batches."""

    def __init__(self, variables: Any, images: np.ndarray, units: list[int]) -> None:
        import torch

        self.torch = torch
        p = variables["params"]
        self.model = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(196, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        ).eval()
        with torch.no_grad():
            self.model[1].weight.copy_(torch.from_numpy(np.asarray(p["dense_0"]["kernel"]).T.copy()))
            self.model[1].bias.copy_(torch.from_numpy(np.asarray(p["dense_0"]["bias"]).copy()))
            self.model[3].weight.copy_(torch.from_numpy(np.asarray(p["logits"]["kernel"]).T.copy()))
            self.model[3].bias.copy_(torch.from_numpy(np.asarray(p["logits"]["bias"]).copy()))
        self.x = torch.from_numpy(np.array(images, np.float32).reshape(len(images), -1))
        self.units = torch.tensor(units)
        self.keep: Any = None

        def hook(module: Any, args: Any, output: Any) -> Any:
            # output [B·m, 256]; keep [B, 256] broadcast over the m inputs of each mask.
            m = self.x.shape[0]
            return (output.view(self.keep.shape[0], m, -1) * self.keep[:, None, :]).view_as(output)

        self.model[2].register_forward_hook(hook)
        with torch.no_grad():
            self.acts = torch.relu(self.model[1](self.x))

    def _keep(self, masks: np.ndarray) -> Any:
        keep = self.torch.ones((masks.shape[0], 256))
        keep[:, self.units] = self.torch.from_numpy((masks > 0).astype(np.float32))
        return keep

    def hook_loop(self, masks: np.ndarray, batch: int) -> np.ndarray:
        """Whole model per batch of masks, the hook applying each mask to the ReLU output."""
        out = []
        m = self.x.shape[0]
        with self.torch.no_grad():
            for i in range(0, masks.shape[0], batch):
                self.keep = self._keep(masks[i : i + batch])
                logits = self.model(self.x.repeat(self.keep.shape[0], 1))
                logp = self.torch.log_softmax(logits, dim=-1)[:, 7].view(-1, m)
                out.append(logp.mean(dim=1))
        return self.torch.cat(out).numpy()

    def cached(self, masks: np.ndarray, batch: int) -> np.ndarray:
        """Activations computed once; per batch only the masked read-out."""
        out = []
        with self.torch.no_grad():
            for i in range(0, masks.shape[0], batch):
                keep = self._keep(masks[i : i + batch])
                logits = self.model[3](self.acts[None] * keep[:, None, :])
                out.append(self.torch.log_softmax(logits, dim=-1)[..., 7].mean(dim=1))
        return self.torch.cat(out).numpy()


def run(n: int = 20, inputs: int = 256, torch_masks: int = 4096, repeats: int = 2) -> dict[str, Any]:
    problem, variables, images, units = mnist_problem(n, inputs)
    record: dict[str, Any] = {"n": n, "inputs": inputs, "masks": 1 << n, "units": units}
    t_inc, spec_inc = solve_time(asj.ExactSolver(), problem, repeats)
    assert spec_inc.solver["evaluation"] == "incremental"
    t_dir, spec_dir = solve_time(asj.ExactSolver(incremental=False), problem, max(1, repeats - 1))
    record["ours_incremental_s"] = t_inc
    record["ours_direct_s"] = t_dir
    record["max_abs_diff_incremental_vs_direct"] = float(np.max(np.abs(spec_inc.dense - spec_dir.dense)))
    record["ours_incremental_masks_per_s"] = (1 << n) / t_inc
    record["ours_direct_masks_per_s"] = (1 << n) / t_dir
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        base = TorchBaselines(variables, images, units)
        count = min(torch_masks, 1 << n)
        masks = np.asarray(enumerate_masks(0, count, n))
        ours = np.asarray(problem.evaluate(jnp.asarray(masks)))
        for name, fn in (("torch_hook", base.hook_loop), ("torch_cached", base.cached)):
            # Give PyTorch its best mask batch size (measured on a slice), then time all masks.
            trial = masks[: min(count, 256)]
            speeds = {}
            for batch in (16, 64, 256):
                fn(trial[:batch], batch)  # warm-up
                started = time.perf_counter()
                fn(trial, batch)
                speeds[batch] = len(trial) / (time.perf_counter() - started)
            batch = max(speeds, key=speeds.get)
            started = time.perf_counter()
            values = fn(masks, batch)
            elapsed = time.perf_counter() - started
            record[f"{name}_batch"] = batch
            record[f"{name}_masks_per_s"] = count / elapsed
            record[f"{name}_max_abs_diff_vs_ours"] = float(np.max(np.abs(values - ours)))
        record["torch_masks_timed"] = count
        record["torch_threads"] = torch.get_num_threads()
        record["speedup_vs_torch_hook"] = (
            record["ours_incremental_masks_per_s"] / record["torch_hook_masks_per_s"]
        )
        record["speedup_vs_torch_cached"] = (
            record["ours_incremental_masks_per_s"] / record["torch_cached_masks_per_s"]
        )
    record["speedup_vs_direct"] = t_dir / t_inc
    return record


def rows(record: dict[str, Any]) -> list[list[Any]]:
    out = [
        ["ours: incremental table (ExactSolver())", record["ours_incremental_masks_per_s"], 1.0],
        [
            "ours: direct evaluation (incremental=False)",
            record["ours_direct_masks_per_s"],
            record["speedup_vs_direct"],
        ],
    ]
    for name, label in (
        ("torch_hook", "PyTorch forward-hook loop"),
        ("torch_cached", "PyTorch, cached layer"),
    ):
        if f"{name}_masks_per_s" in record:
            out.append(
                [
                    label,
                    record[f"{name}_masks_per_s"],
                    record["ours_incremental_masks_per_s"] / record[f"{name}_masks_per_s"],
                ]
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--torch-masks", type=int, default=4096)
    parser.add_argument("--tiny", action="store_true", help="n=10, 32 inputs (smoke test)")
    args = parser.parse_args()
    if args.tiny:
        args.n, args.inputs, args.torch_masks = 10, 32, 256
    record = run(args.n, args.inputs, args.torch_masks)
    print(table(["method", "masks/s", "incremental speed-up"], rows(record)))
    print(f"saved {save('scale_exact', {'record': record})}")


if __name__ == "__main__":
    main()
