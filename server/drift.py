"""Drift: files of a live release whose bytes no longer match the manifest it shipped with.

A release is root-owned and read-only to the app, so a difference means someone edited the
server by hand (or something worse). The walk never follows a link (shared data and shared
files are links by design) and opens regular files only, without blocking.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Collection, Mapping
from pathlib import Path

from operations import formats


def hash_tree(top: Path) -> dict[str, str]:
    """sha256 of every regular file under ``top`` (relative paths), links not followed."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames, dirfd in os.fwalk(top, follow_symlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, top)
        for name in sorted(filenames):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
            except OSError:
                continue  # a link (ELOOP) or gone: not a file of the release
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                digest = hashlib.sha256()
                while True:
                    block = os.read(fd, 1 << 20)
                    if not block:
                        break
                    digest.update(block)
            finally:
                os.close(fd)
            found[name if rel_dir == "." else f"{rel_dir}/{name}"] = digest.hexdigest()
    return found


def drift(
    manifest: Mapping[str, str], actual: Mapping[str, str], skip: Collection[str]
) -> dict[str, list[str]]:
    """What differs between ``manifest`` and the files found, leaving out ``skip`` (the
    release's own records and its overlays: shared-file links, the rendered config)."""
    return {
        "changed": sorted(
            p for p, d in manifest.items() if p not in skip and p in actual and actual[p] != d
        ),
        "missing": sorted(p for p in manifest if p not in skip and p not in actual),
        "added": sorted(p for p in actual if p not in manifest and p not in skip),
    }


# A release's own records: written at deploy, not shipped in its package.
RECORDS = (formats.REVISION, formats.MANIFEST, formats.MASKED_APPCONFIG, formats.DELTA)


def release_drift(release_dir: Path, overlays: Collection[str]) -> dict[str, list[str]]:
    """Drift of ``release_dir`` against its manifest; ``overlays`` (its REVISION's: the
    shared-file links and the rendered config) are the server's by design."""
    try:
        manifest = formats.parse_manifest((release_dir / formats.MANIFEST).read_text())
    except OSError:
        return {"changed": [], "missing": [], "added": [], "unknown": [formats.MANIFEST]}
    return drift(manifest, hash_tree(release_dir), skip={*RECORDS, *overlays})
