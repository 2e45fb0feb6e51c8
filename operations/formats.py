"""The contract between controller and server: names, layouts and records both sides read.

Standard library only, Python 3.9: this module is imported by the controller (``operations``)
and shipped to servers inside the release tool (``server/``). A name, a record's keys or a
digest is defined here once; neither side spells it out again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# The app's data folders, kept in shared/ across releases (never shipped in a package).
DATA_DIRS = ("databases", "sessions", "errors", "cache", "uploads")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8."""
    return sha256_bytes(text.encode())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
