"""Atomic, validated ``.npz`` checkpoints shared by the solvers (private).

A checkpoint is one ``.npz`` file (``np.savez``, never pickles) of named arrays plus a JSON
``meta`` string carrying a format tag, a version and a fingerprint of what was being solved.
It is written to a temporary file in the same folder and renamed over the old one, so a
crash leaves either the previous or the new checkpoint, never a torn one. Reading checks the
tag, the version and the fingerprint, and names the file and the fix in every error.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = ["CheckpointError", "fingerprint", "problem_digest", "read_checkpoint", "write_checkpoint"]


class CheckpointError(ActSpecError):
    """A solver checkpoint that is corrupt, foreign, or from another problem or configuration."""


def problem_digest(problem: Any) -> str:
    """SHA-256 of the problem's description and of every array it holds (dtype, shape, bytes)."""
    digest = hashlib.sha256(json.dumps(problem.describe(), sort_keys=True, default=str).encode())
    for leaf in jax.tree_util.tree_leaves(problem):
        array = np.asarray(leaf)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def fingerprint(doc: dict[str, Any]) -> str:
    """SHA-256 of a JSON document (keys sorted) naming what a checkpoint belongs to."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def write_checkpoint(
    path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict, *, format_tag: str, version: int
) -> Path:
    """Write ``arrays`` and ``meta`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(arrays)
    payload["meta"] = np.asarray(json.dumps({"format": format_tag, "version": version, **meta}))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(
    path: str | os.PathLike,
    *,
    format_tag: str,
    version: int,
    fingerprint: str,
    what: str,
    fix: str,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by :func:`write_checkpoint` → ``(arrays, meta)``.

    Args:
      format_tag, version: what this build writes; other tags and newer versions are refused.
      fingerprint: of the current problem + settings; a checkpoint with another one is refused
        (resuming it would splice two different computations).
      what: how errors name the kind of checkpoint (``"Goldreich–Levin search"``, …).
      fix: the sentence every error ends with (how to start afresh).
    """
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(f"{source} is not a readable checkpoint ({err}). {fix}") from err
    if "meta" not in arrays:
        raise CheckpointError(f"{source} is not an actspec_jax {what} checkpoint (no metadata). {fix}")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: corrupt checkpoint metadata ({err}). {fix}") from err
    if not isinstance(meta, dict) or meta.get("format") != format_tag:
        raise CheckpointError(f"{source} is not an actspec_jax {what} checkpoint. {fix}")
    found = meta.get("version")
    if not isinstance(found, int) or found > version or found < 1:
        raise CheckpointError(f"{source} has checkpoint version {found!r}; this build reads {version}. {fix}")
    if meta.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{source} was written for a different problem, solver setting or key, so it cannot be "
            f"resumed here. {fix}"
        )
    return arrays, meta
