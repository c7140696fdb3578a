"""Saving and loading model weights safely (Flax msgpack; no pickle, no code)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from actspec_jax.errors import ActSpecError

__all__ = ["load_variables", "save_variables"]


def save_variables(path: str | os.PathLike, variables: Any, info: dict[str, Any]) -> Path:
    """Write ``variables`` to ``<path>.msgpack`` and ``info`` (+ sha256) to ``<path>.json``."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = serialization.msgpack_serialize(jax.tree_util.tree_map(np.asarray, variables))
    weights = path.with_suffix(".msgpack")
    weights.write_bytes(blob)
    meta = dict(info, sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return weights


def load_variables(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Read weights written by :func:`save_variables`; verifies the recorded checksum."""
    path = Path(path).with_suffix("")
    weights, meta_path = path.with_suffix(".msgpack"), path.with_suffix(".json")
    if not weights.exists() or not meta_path.exists():
        raise ActSpecError(
            f"no shipped weights at {weights}; reinstall actspec_jax or rerun its training script."
        )
    blob = weights.read_bytes()
    info = json.loads(meta_path.read_text())
    if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
        raise ActSpecError(
            f"{weights} does not match its recorded checksum; the file is corrupt or was edited."
        )
    variables = serialization.msgpack_restore(blob)
    return jax.tree_util.tree_map(jax.numpy.asarray, variables), info
