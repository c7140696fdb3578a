"""Search state of the Goldreich–Levin solver and its atomic checkpoint files (private).

The state is a pytree of arrays (:class:`SearchState`: levels done, live buckets, their
weights, the base key's data) plus the fixed result of the pre-passes (:class:`SearchSetup`:
coordinate order, centring constant, norm, thresholds). A checkpoint is one ``.npz`` file
(``np.savez``, no pickles) holding both and a JSON ``meta`` string (format tag, version, a
fingerprint of problem + settings + key, per-level statistics, removal records, counters).
Written and read by :mod:`actspec_jax.solvers.common.checkpoint` (atomic rename; format, version
and fingerprint checked).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from actspec_jax.solvers.common.checkpoint import CheckpointError, read_checkpoint, write_checkpoint

__all__ = ["CheckpointError", "SearchSetup", "SearchState", "load_checkpoint", "save_checkpoint"]

FORMAT = "actspec_jax.gl_checkpoint"
VERSION = 1


class SearchState(NamedTuple):
    """The evolving search state (a pytree of arrays).

    Attributes:
      level: ``int32[]`` levels completed.
      members: ``int32[beam, D]`` neurons of each live bucket's ``S``, padded with ``n``.
      degree: ``int32[beam]`` ``|S|``.
      valid: ``bool[beam]`` live slots.
      weights: ``float32[beam]`` estimated bucket weights ``Σ_T f̂(S ∪ T)²`` (centred ``f``).
      stderr: ``float32[beam]`` their standard errors.
      key: ``uint32[...]`` data of the base PRNG key (level keys are ``fold_in`` of it).
    """

    level: np.ndarray
    members: np.ndarray
    degree: np.ndarray
    valid: np.ndarray
    weights: np.ndarray
    stderr: np.ndarray
    key: np.ndarray


class SearchSetup(NamedTuple):
    """Fixed results of the pre-passes (a pytree of arrays).

    Attributes:
      order: ``int32[⌈n/b⌉·b]`` searched neurons in search order, padded with ``n`` (a fixed
        length, so no kernel shape depends on how many neurons are searched).
      rank: ``int32[n]`` position of each neuron in ``order`` (``len(order)`` = never searched).
      influence: ``float32[n]`` estimated influences (zeros if not estimated).
      scalars: ``float64[4]`` = (centring constant, estimated E[f], E[f²], absolute τ).
    """

    order: np.ndarray
    rank: np.ndarray
    influence: np.ndarray
    scalars: np.ndarray


def _arrays(state: SearchState, setup: SearchSetup) -> dict[str, np.ndarray]:
    out = {f"state_{k}": np.asarray(v) for k, v in state._asdict().items()}
    out.update({f"setup_{k}": np.asarray(v) for k, v in setup._asdict().items()})
    return out


def save_checkpoint(path: str | os.PathLike, state: SearchState, setup: SearchSetup, meta: dict) -> Path:
    """Write the checkpoint atomically (temporary file in the same folder, then rename)."""
    return write_checkpoint(path, _arrays(state, setup), meta, format_tag=FORMAT, version=VERSION)


def load_checkpoint(
    path: str | os.PathLike,
    *,
    fingerprint: str,
    shapes: Callable[[dict[str, Any]], dict[str, tuple[int, ...]]],
) -> tuple[SearchState, SearchSetup, dict[str, Any]]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Args:
      fingerprint: the fingerprint of the current problem + settings + key; a checkpoint
        with another one is refused (resuming it would mix two different searches).
      shapes: expected shape of every array (``'state_members'`` → ``(beam, D)``, …) given the
        checkpoint's metadata.

    Raises:
      CheckpointError: unreadable, not a GL checkpoint, newer version, other search, or
        arrays of the wrong shape.
    """
    source = str(path)
    fix = f"Delete {source} (or pass another checkpoint_path) to start a fresh search."
    arrays, meta = read_checkpoint(
        path, format_tag=FORMAT, version=VERSION, fingerprint=fingerprint, what="Goldreich–Levin", fix=fix
    )
    try:
        expected = shapes(meta)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: incomplete checkpoint metadata ({err}). {fix}") from err
    for name, shape in expected.items():
        if name not in arrays:
            raise CheckpointError(f"{source}: missing array {name!r}. {fix}")
        if tuple(arrays[name].shape) != tuple(shape):
            raise CheckpointError(
                f"{source}: array {name!r} has shape {arrays[name].shape}, expected {tuple(shape)}. {fix}"
            )
    state = SearchState(**{k: arrays[f"state_{k}"] for k in SearchState._fields})
    setup = SearchSetup(**{k: arrays[f"setup_{k}"] for k in SearchSetup._fields})
    return state, setup, meta
