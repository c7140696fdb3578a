"""Atomic, validated ``.npz`` checkpoints shared by the solvers (private).

A checkpoint is one ``.npz`` file (``np.savez``, never pickles) of named arrays plus a JSON
``meta`` string carrying a format tag, a version, a fingerprint of what was being solved and
a SHA-256 ``digest`` of the content (every array's name, dtype, shape and bytes, and the rest
of the metadata). It is written by :func:`actspec_jax._io.atomic_write` (temporary file,
``fsync``, rename, folder ``fsync``), so a crash or a kill leaves either the previous or the
new checkpoint, never a torn one. Reading checks the tag, the version, the digest (a
truncated, bit-flipped or hand-edited file is refused) and the fingerprint, and names the
file and the fix in every error: :class:`CheckpointError`, never a raw NumPy/zip/JSON error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from actspec_jax._io import atomic_write, clean_stale_temps
from actspec_jax.errors import ActSpecError

__all__ = [
    "CheckpointError",
    "content_digest",
    "fingerprint",
    "problem_digest",
    "read_checkpoint",
    "write_checkpoint",
]


class CheckpointError(ActSpecError):
    """A solver checkpoint that is corrupt, foreign, or from another problem or configuration."""


def _leaf_bytes(leaf: Any) -> list[tuple[str, np.ndarray]]:
    """What a leaf contributes to a digest, never gathering it across devices or hosts.

    PRNG key arrays contribute their key data (``jax.random.key_data``); arrays spread over
    several devices (e.g. parameters sharded over the user's own mesh) contribute each
    addressable shard with its index, read from the device that holds it; other leaves their
    bytes. Non-addressable shards (other hosts' data) are summarised by shape and sharding only.
    """
    if isinstance(leaf, jax.Array):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            impl = str(jax.random.key_impl(leaf))
            return [(f"key<{impl}>{leaf.shape}", np.asarray(jax.random.key_data(leaf)))]
        sharding = getattr(leaf, "sharding", None)
        if sharding is not None and len(sharding.device_set) > 1:
            head = f"{leaf.dtype}{leaf.shape}sharded{len(sharding.device_set)}"
            parts = [(head, np.zeros(0, np.uint8))]
            seen = set()
            for shard in leaf.addressable_shards:
                where = str(shard.index)
                if where in seen:  # replicas hold equal data
                    continue
                seen.add(where)
                parts.append((where, np.asarray(shard.data)))
            return parts
    array = np.asarray(leaf)
    return [(f"{array.dtype}{array.shape}", array)]


def problem_digest(problem: Any) -> str:
    """SHA-256 of the problem's description and of every array it holds (dtype, shape, bytes;
    key data for PRNG keys; per-shard bytes for sharded arrays, see :func:`_leaf_bytes`)."""
    digest = hashlib.sha256(json.dumps(problem.describe(), sort_keys=True, default=str).encode())
    for leaf in jax.tree_util.tree_leaves(problem):
        for head, array in _leaf_bytes(leaf):
            digest.update(head.encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def fingerprint(doc: dict[str, Any]) -> str:
    """SHA-256 of a JSON document (keys sorted) naming what a checkpoint belongs to."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def content_digest(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """SHA-256 of the arrays (name, dtype, shape, bytes; names sorted) and of ``meta`` (sans digest)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    rest = {k: v for k, v in meta.items() if k != "digest"}
    digest.update(json.dumps(rest, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def write_checkpoint(
    path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict, *, format_tag: str, version: int
) -> Path:
    """Write ``arrays`` and ``meta`` durably and atomically (see the module docstring).

    Raises:
      actspec_jax._io.OutputWriteError: the disk is full or the folder not writable (the
        previous checkpoint is left byte for byte as it was).
    """
    path = Path(path)
    clean_stale_temps(path)
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    doc = {k: v for k, v in meta.items() if k != "digest"}
    # the digest is taken over the metadata as it will read back (JSON round trip)
    doc = json.loads(json.dumps({**doc, "format": format_tag, "version": version}, default=str))
    doc["digest"] = content_digest(arrays, doc)
    payload = {**arrays, "meta": np.asarray(json.dumps(doc))}
    return atomic_write(path, lambda handle: np.savez(handle, **payload), "wb", label="checkpoint")


def read_checkpoint(
    path: str | os.PathLike,
    *,
    format_tag: str,
    version: int,
    fingerprint: str,
    what: str,
    fix: str,
    parts: dict[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint written by :func:`write_checkpoint` → ``(arrays, meta)``.

    Args:
      format_tag, version: what this build writes; other tags and newer versions are refused.
      fingerprint: of the current problem + settings; a checkpoint with another one is refused
        (resuming it would splice two different computations).
      what: how errors name the kind of checkpoint (``"Goldreich–Levin search"``, …).
      fix: the sentence every error ends with (how to start afresh).
      parts: ``{name: fingerprint}`` of the fingerprint's parts (problem, key, settings); when the
        file records its own (``meta['parts']``), a mismatch names the parts that differ.
    """
    source = str(path)
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic[:2] != b"PK":  # an .npz is a zip archive; anything else would reach NumPy's pickle path
        raise CheckpointError(
            f"{source} is not a readable checkpoint (not an .npz archive: it starts with {magic!r}); it is "
            f"truncated, corrupt or another kind of file. {fix}"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except Exception as err:  # zip, zlib, header or pickle errors: all mean a damaged file
        reason = "it holds pickled objects" if "allow_pickle" in str(err) else f"{type(err).__name__}: {err}"
        raise CheckpointError(
            f"{source} is not a readable checkpoint ({reason}); it is truncated, corrupt or not a "
            f"checkpoint. {fix}"
        ) from err
    if "meta" not in arrays:
        raise CheckpointError(f"{source} is not an actspec_jax {what} checkpoint (no metadata). {fix}")
    raw = arrays.pop("meta")
    if raw.shape != () or raw.dtype.kind != "U":
        raise CheckpointError(f"{source}: field 'meta' is not a JSON string. {fix}")
    try:
        meta = json.loads(str(raw))
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(
            f"{source}: corrupt checkpoint metadata in field 'meta' ({err}). {fix}"
        ) from err
    if not isinstance(meta, dict) or meta.get("format") != format_tag:
        raise CheckpointError(f"{source} is not an actspec_jax {what} checkpoint. {fix}")
    found = meta.get("version")
    if isinstance(found, bool) or not isinstance(found, int) or found > version or found < 1:
        raise CheckpointError(f"{source} has checkpoint version {found!r}; this build reads {version}. {fix}")
    if meta.get("digest") != content_digest(arrays, meta):
        raise CheckpointError(
            f"{source}: field 'digest' does not match the content: the checkpoint was damaged or "
            f"edited after it was written. {fix}"
        )
    if meta.get("fingerprint") != fingerprint:
        stored = meta.get("parts")
        differ = (
            [name for name in parts if stored.get(name) != parts[name]]
            if parts is not None and isinstance(stored, dict)
            else []
        )
        what_differs = (
            f"a different {', '.join(differ)}" if differ else "a different problem, solver setting or key"
        )
        raise CheckpointError(f"{source} was written for {what_differs}, so it cannot be resumed here. {fix}")
    return arrays, meta
