"""The "diff before applying": per host, which app files a deploy adds, changes and removes."""

from __future__ import annotations

import difflib
from pathlib import Path

from pyinfra import host, logger
from pyinfra.facts.files import FileContents

from .manifest import diff_manifests
from .packaging import Package
from .web2py_app import LiveManifest, LiveRelease

MAX_DIFF_BYTES = 256 * 1024


def report_app_changes(
    app: str, app_dir: Path, package: Package, web2py_root: str, text_diffs: bool
) -> dict[str, str] | None:
    """Log what deploying ``package`` would change on the current host. Returns the live
    release's manifest (the delta's base; {} without a release), or None if ``package`` is
    live."""
    live = host.get_fact(LiveRelease, web2py_root=web2py_root, app=app)
    if live and live.get("sha256") == package.sha256:
        return None
    current = host.get_fact(LiveManifest, web2py_root=web2py_root, app=app)
    diff = diff_manifests(current or {}, package.files)  # pyinfra gives None for no output
    where = f"release {live['release']}" if live else "no release yet"
    logger.info(f"{host.name}: app {app}: {diff.summary()} ({where} → {package.sha256[:12]})")
    for line in diff.lines():
        logger.info(f"{host.name}:     {line}")
    if text_diffs:
        for name in diff.changed:
            _log_text_diff(app, app_dir, name, web2py_root)
    # A delta needs a release to start from: a plain app folder (install time, fabfile) can
    # carry a manifest too, but has no release to link unchanged files from.
    return (current or {}) if live else {}


def _log_text_diff(app: str, app_dir: Path, name: str, web2py_root: str) -> None:
    local = app_dir / name
    if local.stat().st_size > MAX_DIFF_BYTES:
        return
    try:
        new = local.read_text().splitlines()
    except UnicodeDecodeError:
        logger.info(f"{host.name}:     (binary file {name} changed)")
        return
    old = host.get_fact(FileContents, path=f"{web2py_root}/applications/{app}/{name}") or []
    for line in difflib.unified_diff(old, new, f"live/{name}", f"new/{name}", lineterm=""):
        logger.info(f"{host.name}:       {line}")
