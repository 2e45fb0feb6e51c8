"""Releases: unpacked from a package, rebuilt from a delta or a backup, finished, pruned."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from operations import formats
from operations.formats import APP_FOLDERS, DELTA, MANIFEST, REVISION
from server import detach, shared
from server.app import App
from server.errors import Failure, cause, log
from server.files import remove_below

STAGING = re.compile(r"\.[^/]+\.tmp")  # .<release>.tmp: a release being built


def _staging(app: App, release: str) -> Path:
    """An empty folder beside the releases to build ``release`` in (published by renaming)."""
    app.releases.mkdir(parents=True, exist_ok=True)
    # the caller holds the lock: any staging folder is a killed run's, and its space is
    # wanted now (a disk it filled would fail this unpack too)
    remove_stale_staging(app)
    name = f".{release}.tmp"
    staging = app.releases / name
    staging.mkdir()
    return staging


@contextlib.contextmanager
def _building(app: App, release: str) -> Iterator[Path]:
    """The staging folder of ``release``, removed if building it fails (a full disk, a bad
    file): a failed unpack leaves nothing, and frees what it took at once."""
    staging = _staging(app, release)
    try:
        yield staging
    except BaseException as error:
        with contextlib.suppress(OSError):
            remove_below(app.releases, staging.name)
        if isinstance(error, OSError):  # a full disk, most likely: where, in one line
            detach.note_exception(error)  # the traceback stays in the run log
            raise Failure(f"{app.name}: unpack failed: {cause(error)} in {app.releases}") from None
        raise


def remove_stale_staging(app: App) -> list[str]:
    """Remove the staging folders a killed run left (``.<release>.tmp``): only ever called
    with the app's lock held, when no release is being built. Each is removed by descriptor
    without following a link (a link is removed itself). Returns the names removed."""
    if not app.releases.is_dir() or app.releases.is_symlink():
        return []
    removed = []
    for name in sorted(os.listdir(app.releases)):
        if STAGING.fullmatch(name):
            with contextlib.suppress(OSError):
                remove_below(app.releases, name)
                removed.append(name)
    if removed:
        log(f"{app.name}: removed what an interrupted unpack left: {', '.join(removed)}")
    return removed


def _safe_members(app: App, tar: tarfile.TarFile, what: str) -> list[tarfile.TarInfo]:
    """The archive's entries, refused unless each is a regular file that stays inside."""
    members = tar.getmembers()
    for member in members:
        if not member.isfile() or member.name.startswith("/") or ".." in member.name.split("/"):
            raise Failure(f"{app.name}: unsafe entry in {what}: {member.name}")
    return members


def _check_files(app: App, staging: Path, files: dict[str, str], what: str) -> None:
    for name, digest in files.items():
        if formats.sha256_file(staging / name) != digest:
            raise Failure(f"{app.name}: {name} does not match {what}")


def unpack(app: App, package: Path, sha: str, release: str, meta: dict) -> Path:
    """A release of the whole package, each file checked against the package's manifest."""
    if formats.sha256_file(package) != sha:
        raise Failure(f"{app.name}: package {package} does not have sha256 {sha}")
    with _building(app, release) as staging:
        with tarfile.open(package) as tar:
            _safe_members(app, tar, "package")
            tar.extractall(staging)  # noqa: S202 (entries checked above)
        detach.pause("unpacked")  # test-only (server.detach.pause)
        manifest = formats.parse_manifest((staging / MANIFEST).read_text())
        _check_files(app, staging, manifest, "the package manifest")
        return finish(app, staging, release, meta)


def unpack_delta(app: App, delta: Path, delta_sha: str, release: str, meta: dict) -> Path:
    """A release rebuilt from the live one and a delta (operations/packaging.py
    build_delta): unchanged files are hard links to the live release's (root-owned,
    read-only, checked when it was deployed), the delta's files are checked one by one,
    and the whole manifest must come out as the package's."""
    if formats.sha256_file(delta) != delta_sha:
        raise Failure(f"{app.name}: delta {delta} does not have sha256 {delta_sha}")
    live = app.live_release()
    base = app.releases / live if live else None
    if base is None or not (base / MANIFEST).is_file():
        raise Failure(f"{app.name}: no live release to apply the delta to; run again")
    base_files = formats.parse_manifest((base / MANIFEST).read_text())
    with _building(app, release) as staging:
        with tarfile.open(delta) as tar:
            members = _safe_members(app, tar, "delta")
            described = tar.extractfile(DELTA)
            info = json.loads(described.read()) if described else {}
            if formats.manifest_sha256(base_files) != info.get("base_manifest_sha256"):
                raise Failure(
                    f"{app.name}: the live release changed since this run looked at it; "
                    "run the deploy again"
                )
            files = {n: d for n, d in base_files.items() if n not in set(info["removed"])}
            files.update(info["files"])
            if formats.manifest_sha256(files) != info["manifest_sha256"]:
                raise Failure(f"{app.name}: the delta does not rebuild the package's manifest")
            tar.extractall(staging, members=[m for m in members if m.name != DELTA])  # noqa: S202
        detach.pause("unpacked")  # test-only (server.detach.pause)
        (staging / DELTA).unlink(missing_ok=True)
        _check_files(app, staging, info["files"], "the delta's manifest")
        overlays = set(app.revision(live).get("overlays", []))
        for name in files.keys() - info["files"].keys():
            if name.split("/", 1)[0] in app.data_dirs:
                continue  # data lives in shared/: these become links to it
            if name in overlays or (base / name).is_symlink():
                # the live release holds a shared file's link or a rendered config there
                raise Failure(f"{app.name}: the delta lacks {name}; run the deploy again")
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(base / name, target)
            except OSError:
                shutil.copy2(base / name, target)
        (staging / MANIFEST).write_text(formats.manifest_text(files))
        return finish(app, staging, release, meta)


def unpack_backup(app: App, zip_path: Path, release: str, meta: dict) -> Path:
    """A release made of a backup's code (its data folders are left out)."""
    with _building(app, release) as staging:
        prefix = f"{app.name}/"
        files: dict[str, str] = {}
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                rel = info.filename[len(prefix) :]
                data_dir = rel.split("/")[0] in app.data_dirs
                if info.is_dir() or data_dir or rel in (REVISION, MANIFEST):
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                data = zf.read(info)
                target.write_bytes(data)
                files[rel] = formats.sha256_bytes(data)
        (staging / MANIFEST).write_text(formats.manifest_text(files))
        return finish(app, staging, release, meta)


def finish(app: App, staging: Path, release: str, meta: dict) -> Path:
    """Link shared data and shared files, put the rendered config in, write REVISION, make
    the code root-owned and read-only (private/ readable by the web2py group only),
    publish."""
    shared.seed_shared(app, staging)
    for folder in APP_FOLDERS:
        if folder not in app.data_dirs:
            (staging / folder).mkdir(exist_ok=True)
    for data in app.data_dirs:
        target = staging / data
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(f"../../shared/{data}", target)
    for path in [staging, *staging.rglob("*")]:
        if path.is_symlink():
            continue
        private = path.relative_to(staging).parts[:1] == ("private",)
        os.chown(path, 0, app.gid if private else 0)
        if path.is_dir():
            os.chmod(path, 0o750 if private else 0o755)
        else:
            os.chmod(path, 0o640 if private else 0o644)
    overlays = shared.link_shared_files(app, staging)
    if app.options.appconfig:
        overlays.append(shared.place_appconfig(app, staging))
    revision = {"release": release, **meta, "overlays": sorted(set(overlays))}
    (staging / REVISION).write_text(json.dumps(revision, sort_keys=True) + "\n")
    os.chmod(staging / REVISION, 0o644)
    final = app.releases / release
    os.rename(staging, final)
    os.chmod(app.releases, 0o755)
    return final


def prune(app: App, dry_run: bool = False) -> list[str]:
    """Remove releases beyond ``keep_releases``, oldest first, never the live one nor the last
    good ones; returns what goes (with ``dry_run``, nothing is removed)."""
    keep = max(app.checks.keep_releases or 0, 1)
    good = app.good_releases()
    protected = {app.live_release(), *(good[-2:])}  # the live one and the last known-good
    if not dry_run:
        remove_stale_staging(app)  # under the lock (as every prune that removes)
    releases = app.release_ids()
    removable = [r for r in releases if r not in protected]
    removed = []
    for rel in removable[: max(len(releases) - keep, 0)]:
        if not dry_run:
            shutil.rmtree(app.releases / rel, ignore_errors=True)
        removed.append(rel)
    return removed
