"""The "diff before applying": per host, which app files a deploy adds, changes and removes."""

from __future__ import annotations

import difflib
from pathlib import Path

from pyinfra import host, logger
from pyinfra.facts.files import FileContents

from ..facts.releases import LiveManifest, LiveRelease
from ..formats import APPCONFIG, MASKED_APPCONFIG
from .app_files import RenderedConfig
from .manifest import diff_manifests
from .packaging import Package

MAX_DIFF_BYTES = 256 * 1024


def report_app_changes(
    app_name: str,
    app_dir: Path,
    package: Package,
    web2py_root: str,
    text_diffs: bool,
    appconfig: RenderedConfig | None = None,
    shared: tuple[str, ...] = (),
) -> tuple[dict[str, str], tuple[str, ...]] | None:
    """Log what deploying ``package`` (and ``appconfig``) would change on the current host.
    Returns the live release's manifest (the delta's base; {} without a release) and the paths
    it overlays (links to shared files, the rendered config), or None if nothing would change.
    Shared files are never shown as text: the server keeps its own copy; the rendered config
    is shown with its secrets masked."""
    live = host.get_fact(LiveRelease, web2py_root=web2py_root, app_name=app_name)
    config_sha = appconfig.sha256 if appconfig else ""
    if live and (live.get("sha256"), live.get("config_sha256", "")) == (
        package.sha256,
        config_sha,
    ):
        return None
    if live and live.get("config_sha256", "") != config_sha:
        _log_config_diff(app_name, web2py_root, appconfig)
    overlays = tuple(live.get("overlays", [])) if live else ()
    if live and live.get("sha256") == package.sha256:
        return {}, overlays  # the config alone changes: a new release of the same package
    current = host.get_fact(LiveManifest, web2py_root=web2py_root, app_name=app_name)
    diff = diff_manifests(current or {}, package.files)  # pyinfra gives None for no output
    where = f"release {live['release']}" if live else "no release yet"
    logger.info(f"{host.name}: app {app_name}: {diff.summary()} ({where} → {package.sha256[:12]})")
    for line in diff.lines():
        logger.info(f"{host.name}:     {line}")
    if text_diffs:
        for name in diff.changed:
            if name in shared or name in overlays:
                logger.info(f"{host.name}:     ({name}: kept on the server, not shown)")
                continue
            _log_text_diff(app_name, app_dir, name, web2py_root)
    # A delta needs a release to start from: a plain app folder (install time, fabfile) can
    # carry a manifest too, but has no release to link unchanged files from.
    return ((current or {}) if live else {}), overlays


def _log_config_diff(app_name: str, web2py_root: str, appconfig: RenderedConfig | None) -> None:
    """The rendered config's change, secrets masked on both sides."""
    old = (
        host.get_fact(
            FileContents, path=f"{web2py_root}/applications/{app_name}/{MASKED_APPCONFIG}"
        )
        or []
    )
    new = appconfig.masked.splitlines() if appconfig else []
    logger.info(f"{host.name}: app {app_name}: {APPCONFIG} (rendered, secrets masked) changes:")
    if not new:
        logger.info(f"{host.name}:       (no longer rendered: the package's or the shared copy)")
    for line in difflib.unified_diff(
        old, new, f"live/{APPCONFIG}", f"new/{APPCONFIG}", lineterm=""
    ):
        logger.info(f"{host.name}:       {line}")


def _log_text_diff(app_name: str, app_dir: Path, name: str, web2py_root: str) -> None:
    local = app_dir / name
    if local.stat().st_size > MAX_DIFF_BYTES:
        return
    try:
        new = local.read_text().splitlines()
    except UnicodeDecodeError:
        logger.info(f"{host.name}:     (binary file {name} changed)")
        return
    old = host.get_fact(FileContents, path=f"{web2py_root}/applications/{app_name}/{name}") or []
    for line in difflib.unified_diff(old, new, f"live/{name}", f"new/{name}", lineterm=""):
        logger.info(f"{host.name}:       {line}")
