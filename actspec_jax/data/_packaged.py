"""Locating and verifying data files shipped inside pinned PyPI packages (no network)."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

from actspec_jax.errors import ActSpecError

__all__ = ["install_hint", "packaged_file", "verify_sha256"]


def install_hint(package: str, version: str, extra: str = "") -> str:
    """The install command an error message should offer."""
    return f'pip install "actspec_jax[data]"  (or: pip install {package}=={version}{extra})'


def packaged_file(package: str, version: str, relative: str, *, what: str, install: str) -> Path:
    """Path of ``relative`` inside the installed ``package``; clear errors when it is absent."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ActSpecError(
            f"{what} needs the package {package}=={version}, which is not installed. "
            f"Install it with: {install}"
        ) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise ActSpecError(
            f"{package} {dist.version} does not contain {relative}; "
            f"install the pinned version with: {install}"
        )
    return path


def verify_sha256(path: Path, expected: str, *, install: str, data: bytes | None = None) -> None:
    """Raise unless the file (or its already-read bytes ``data``) has sha256 ``expected``."""
    digest = hashlib.sha256()
    if data is not None:
        digest.update(data)
    else:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    found = digest.hexdigest()
    if found != expected:
        raise ActSpecError(
            f"checksum mismatch for {path}: sha256 {found}, expected {expected}. The file is corrupt or "
            f"from another version; reinstall with: {install}"
        )
