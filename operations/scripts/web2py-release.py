#!/usr/bin/python3
"""Server side of pyinfra-web2py's app deploys: releases, atomic switch, health checks, rollback.

Shipped to servers by pyinfra-web2py (operations/scripts.py) and run as root. Standard library
only, Python 3.9+ (Debian 11+, Ubuntu 22.04+; bin/test checks it with vermin). Every step of a
deploy that must not be left half-done runs here, in one process, under one lock:

    lock → unpack and verify → link shared data → [notice, then down for maintenance: asked
    for, or to restore data, or to adopt a plain app folder's data] → backup → [data] →
    pre-switch check (migrations, a throwaway uWSGI serving the new release) → hooks → atomic
    switch (rename of a symlink) → chain reload → wait for every worker → health check through
    nginx → on failure: switch back, reload, mark the release bad → [up] → audit line → unlock

Layout of one app (APPS_DIR/APP):
    releases/<id>/       code (root-owned, read-only to uWSGI; private/ readable by the web2py
                         group only) + symlinks to shared data and shared files
    shared/<data dir>/   databases uploads sessions errors cache: owned by the web2py user
    shared/files/<path>  the app's shared files (e.g. private/auth.key): kept on the server,
                         root-owned, readable by the web2py group, linked into every release
    shared/private/      the old layout's private/ (before it shipped with releases): kept for
                         releases made then; its files the package lacks were copied to files/
    current              symlink → releases/<id>: what web2py serves (applications/APP → current)
    release.log          "<utc> <release id> <event>" lines: the history rollback follows
    audit.jsonl          one JSON object per deploy, rollback or restore
    lock/                exists while a deploy runs; lock/info.json says who, when, which version
"""

from __future__ import annotations

import argparse
import datetime as dt
import grp
import hashlib
import http.client
import io
import json
import os
import pickle
import pwd
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

MANIFEST = ".pyinfra-web2py-manifest"
DELTA = ".pyinfra-web2py-delta.json"
REVISION = "REVISION"
MASKED_APPCONFIG = ".pyinfra-web2py-appconfig.masked"  # the rendered config, secrets masked
APPCONFIG = "private/appconfig.ini"
SHARED_FILES = "files"  # shared/files/<path>: the app's shared files
LEGACY_PRIVATE = "private"  # shared/private: the old layout's private data dir
PROVISIONAL = ".provisional"  # in shared/: made by attempts of an app that never went live
# The folders web2py expects in every app (gluon.fileutils.missing_app_folders): it creates the
# missing ones on the first request, which a read-only release refuses (500 on every request).
APP_FOLDERS = (
    "models", "views", "controllers", "databases", "modules", "cron", "errors", "sessions",
    "languages", "static", "private", "uploads",
)  # fmt: skip
EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE = 1, 3, 2
HEALTH_KEY_HEADER = "X-W2p-Health-Key"  # nginx-web2py.conf.j2 maps it; never passed to apps


# What a deploy records (REVISION "settings") for later rollbacks and restores, with the defaults
# used when nothing was recorded (releases made before it was); health_path None: the app's index.
RECORDED_DEFAULTS = {
    "health_path": None,
    "health_status": 200,
    "health_text": "",
    "hooks": "{}",
    "keep_releases": 5,
    "keep_backups": 10,
}


RELEASE_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9][A-Za-z0-9.-]*")  # releases/<id>


class Failure(Exception):
    """A step failed: the message is the one line the operator sees."""


class Locked(Failure):
    """Another live run holds the app's lock: nothing was done (its notice, if any, stays)."""


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str:
    """The start time of a process (field 22 of /proc/PID/stat), or "" when it is gone: with
    the PID and the boot ID it names one process, even after the PID is reused."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat_line.rsplit(")", 1)[-1].split()[19]


def holder_alive(info: dict) -> bool | None:
    """True/False when the lock's info says which process holds it; None when it cannot tell
    (a lock written by an older tool, or garbled): treated as alive, never broken."""
    pid, started, boot = info.get("pid"), info.get("started"), info.get("boot_id")
    if not isinstance(pid, int) or not started or not boot:
        return None
    if boot != boot_id():
        return False  # held before a reboot: that process is gone
    return process_start(pid) == started


def utc_stamp(now: float | None = None) -> str:
    # dt.timezone.utc, not dt.UTC (3.11+): servers run Python 3.9 and newer
    return dt.datetime.fromtimestamp(now or time.time(), dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def log(message: str) -> None:
    print(message, flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class App:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.name: str = args.app
        self.base = Path(args.apps_dir) / self.name
        self.releases = self.base / "releases"
        self.shared = self.base / "shared"
        self.current = self.base / "current"
        self.lock_dir = self.base / "lock"
        self.web2py_link = Path(args.web2py_root) / "applications" / self.name
        self.data_dirs: list[str] = args.data_dirs.split(",")
        self.keep_backup: set[str] = set()  # never pruned (the backup a restore restores)
        self.kept: list[str] = []  # old-layout files kept as shared files (reported)
        self.set_aside: Path | None = None  # the plain app folder this deploy adopted
        self.stale_lock: dict | None = None  # the dead holder's lock info, when taken over
        self.uid = pwd.getpwnam(args.user).pw_uid
        self.gid = grp.getgrnam(args.group).gr_gid
        # settings not given on the command line come from what a deploy recorded
        self.unset = [key for key in RECORDED_DEFAULTS if getattr(args, key, None) is None]
        self.apply_recorded(self.live_release())

    def apply_recorded(self, release: str | None) -> None:
        """Fill the settings the command line left out from those the deploy of ``release``
        recorded in its REVISION (so a rollback or restore needs only the app's name)."""
        recorded = self.revision(release).get("settings", {})
        for key in self.unset:
            value = recorded.get(key, RECORDED_DEFAULTS[key])
            if key == "health_path" and value is None:
                value = f"/{self.name}/default/index"
            if key == "hooks" and not isinstance(value, str):
                value = json.dumps(value or {}, sort_keys=True)
            setattr(self.args, key, value)

    # --- state -------------------------------------------------------------------------
    def live_release(self) -> str | None:
        try:
            return os.readlink(self.current).rsplit("/", 1)[-1]
        except OSError:
            return None

    def revision(self, release: str | None) -> dict:
        if not release:
            return {}
        try:
            return json.loads((self.releases / release / REVISION).read_text())
        except (OSError, ValueError):
            return {}

    def history(self) -> list[tuple[str, str, str]]:
        try:
            lines = (self.base / "release.log").read_text().splitlines()
        except OSError:
            return []
        return [tuple(line.split(" ", 2)) for line in lines if line.count(" ") >= 2]  # type: ignore[misc]

    def record(self, release: str, event: str) -> None:
        with open(self.base / "release.log", "a") as f:
            f.write(f"{utc_stamp()} {release} {event}\n")

    def good_releases(self) -> list[str]:
        """Releases that were live and healthy, oldest first, without repeats."""
        bad = {rel for _, rel, event in self.history() if event in ("failed", "bad")}
        seen: list[str] = []
        for _, rel, event in self.history():
            if event == "live" and rel not in bad and (self.releases / rel).is_dir():
                if rel in seen:
                    seen.remove(rel)
                seen.append(rel)
        return seen

    def audit(self, entry: dict) -> None:
        entry = {"app": self.name, "host": socket.gethostname(), **entry}
        if self.stale_lock:
            entry["took_over_lock_of"] = {
                k: self.stale_lock.get(k) for k in ("who", "since", "pid")
            }
        with open(self.base / "audit.jsonl", "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    # --- lock --------------------------------------------------------------------------
    def acquire(self, version: str) -> None:
        """Take the app's lock; a lock whose holder is provably dead (gone, or from before a
        reboot) is taken over and said so; a live or unknown holder refuses with Locked."""
        self.base.mkdir(parents=True, exist_ok=True)
        try:
            self.lock_dir.mkdir()
        except FileExistsError:
            info = self.lock_info()
            if holder_alive(info) is not False:
                raise Locked(f"{self.name}: {self.describe_lock()}") from None
            log(f"{self.name}: taking over a stale lock ({self.describe_lock().split(';')[0]})")
            self.stale_lock = info
        pid = os.getpid()
        info = {
            "who": self.args.who, "since": utc_stamp(), "version": version, "pid": pid,
            "started": process_start(pid), "boot_id": boot_id(),
        }  # fmt: skip
        temp = self.lock_dir / f".info.{pid}"
        temp.write_text(json.dumps(info, sort_keys=True) + "\n")
        os.replace(temp, self.lock_dir / "info.json")

    def lock_info(self) -> dict:
        try:
            info = json.loads((self.lock_dir / "info.json").read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def describe_lock(self) -> str:
        info = self.lock_info()
        return (
            f"locked by {info.get('who', '?')} since {info.get('since', '?')} "
            f"(version {info.get('version', '?')}); if that deploy is dead, release it with: "
            f"pyinfra INVENTORY deploys/unlock.py --data unlock_app={self.name}"
        )

    def release_lock(self) -> None:
        shutil.rmtree(self.lock_dir, ignore_errors=True)

    # --- backup ------------------------------------------------------------------------
    def backup(self) -> str | None:
        """Zip the live app (code and data) to BACKUPS/APP.<stamp>.zip with a .sha256."""
        source = self.web2py_link
        if not source.exists():
            return None
        backups = Path(self.args.backups_dir)
        backups.mkdir(parents=True, exist_ok=True)
        os.chmod(backups, 0o700)
        stamp = utc_stamp()
        name, n = f"{self.name}.{stamp}.zip", 1
        while True:  # never collide, even for two deploys in one second
            try:
                fd = os.open(backups / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                n += 1
                name = f"{self.name}.{stamp}-{n}.zip"
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            root = source.resolve()
            for path in sorted(walk_files(root)):
                rel = path.relative_to(root)
                if rel.parts and rel.parts[0] in ("sessions", "cache"):
                    continue  # runtime scratch, not worth restoring
                if path.name.endswith(SQLITE_SIDECARS) and is_sqlite(
                    path.with_name(path.name.rsplit("-", 1)[0])
                ):
                    continue  # the database's snapshot holds what it committed
                arcname = f"{self.name}/{rel.as_posix()}"
                try:
                    if is_sqlite(path):
                        write_sqlite_snapshot(zf, path, arcname, backups)
                    else:
                        zf.write(path, arcname)
                except FileNotFoundError:
                    continue  # removed by the app while we walked (a temp file, a deleted upload)
        digest = sha256_file(backups / name)
        (backups / f"{name}.sha256").write_text(f"{digest}  {name}\n")
        self.prune_backups()
        return name

    def prune_backups(self, dry_run: bool = False) -> list[Path]:
        keep = self.args.keep_backups
        backups = Path(self.args.backups_dir)
        zips = sorted(backups.glob(f"{self.name}.*.zip"), key=lambda p: p.stat().st_mtime)
        old = [p for p in (zips[:-keep] if keep > 0 else []) if p.name not in self.keep_backup]
        for path in [] if dry_run else old:
            path.unlink(missing_ok=True)
            Path(f"{path}.sha256").unlink(missing_ok=True)
        return old

    def verified_backup(self, name: str) -> Path:
        """The backup named (or the latest), refused unless its sha256 and contents check out."""
        backups = Path(self.args.backups_dir)
        if name in ("", "latest"):
            zips = sorted(backups.glob(f"{self.name}.*.zip"), key=lambda p: p.stat().st_mtime)
            if not zips:
                raise Failure(f"{self.name}: no backups in {backups}")
            path = zips[-1]
        else:
            path = backups / name
            if "/" in name or not name.startswith(f"{self.name}.") or not path.is_file():
                raise Failure(f"{self.name}: no backup {name!r} of this app in {backups}")
        try:
            digest, listed = Path(f"{path}.sha256").read_text().split()
        except (OSError, ValueError):
            raise Failure(f"{self.name}: {path.name} has no readable .sha256: refused") from None
        if listed != path.name or sha256_file(path) != digest:
            raise Failure(f"{self.name}: {path.name} does not match its sha256: corrupt, refused")
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                bad = zf.testzip()
        except zipfile.BadZipFile:
            raise Failure(f"{self.name}: {path.name} is not a zip: refused") from None
        if bad or not names or any(not safe_member(n, f"{self.name}/") for n in names):
            raise Failure(f"{self.name}: {path.name} is not a backup of this app: refused")
        if f"{self.name}/controllers/" not in {n[: len(self.name) + 13] for n in names}:
            raise Failure(f"{self.name}: {path.name} holds no controllers/: refused")
        return path

    def unpack_backup(self, zip_path: Path, release: str, meta: dict) -> Path:
        """A release made of a backup's code (its data folders are left out)."""
        staging = self.releases / f".{release}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        prefix = f"{self.name}/"
        files: dict[str, str] = {}
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                rel = info.filename[len(prefix) :]
                if info.is_dir() or rel.split("/")[0] in self.data_dirs or rel in (
                    REVISION, MANIFEST,
                ):  # fmt: skip
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                data = zf.read(info)
                target.write_bytes(data)
                files[rel] = hashlib.sha256(data).hexdigest()
        (staging / MANIFEST).write_text(manifest_text(files))
        return self.finish_release(staging, release, meta)

    def restore_data(self, zip_path: Path) -> None:
        """Replace shared data with the backup's; the current data is kept aside."""
        stamp = utc_stamp()
        with zipfile.ZipFile(zip_path) as zf:
            for data in self.data_dirs:
                members = [
                    i for i in zf.infolist() if i.filename.startswith(f"{self.name}/{data}/")
                ]
                if not members and data in ("sessions", "cache"):
                    continue  # scratch: never in backups, the current one stays
                shared = self.shared / data
                if shared.exists():
                    os.rename(shared, self.shared / f".{data}.before-restore-{stamp}")
                shared.mkdir()
                for info in members:
                    if info.is_dir():
                        continue
                    target = self.shared / info.filename[len(self.name) + 1 :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(info))
                for path in [shared, *shared.rglob("*")]:
                    os.chown(path, self.uid, self.gid)
                os.chmod(shared, 0o770)
        log(
            f"{self.name}: data restored from {zip_path.name}; "
            f"the data it replaced is kept as shared/.*.before-restore-{stamp}"
        )

    # --- unpack --------------------------------------------------------------------------
    def unpack(self, package: Path, sha: str, release: str, meta: dict) -> Path:
        if sha256_file(package) != sha:
            raise Failure(f"{self.name}: package {package} does not have sha256 {sha}")
        self.releases.mkdir(parents=True, exist_ok=True)
        staging = self.releases / f".{release}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        with tarfile.open(package) as tar:
            for member in tar.getmembers():
                if (
                    not member.isfile()
                    or member.name.startswith("/")
                    or ".." in member.name.split("/")
                ):
                    raise Failure(f"{self.name}: unsafe entry in package: {member.name}")
            tar.extractall(staging)  # noqa: S202 (entries checked above)
        manifest = parse_manifest((staging / MANIFEST).read_text())
        for name, digest in manifest.items():
            if sha256_file(staging / name) != digest:
                raise Failure(f"{self.name}: {name} does not match the package manifest")
        return self.finish_release(staging, release, meta)

    def unpack_delta(self, delta: Path, delta_sha: str, release: str, meta: dict) -> Path:
        """A release rebuilt from the live one and a delta (operations/packaging.py
        build_delta): unchanged files are hard links to the live release's (root-owned,
        read-only, checked when it was deployed), the delta's files are checked one by one,
        and the whole manifest must come out as the package's."""
        if sha256_file(delta) != delta_sha:
            raise Failure(f"{self.name}: delta {delta} does not have sha256 {delta_sha}")
        live = self.live_release()
        base = self.releases / live if live else None
        if base is None or not (base / MANIFEST).is_file():
            raise Failure(f"{self.name}: no live release to apply the delta to; run again")
        base_files = parse_manifest((base / MANIFEST).read_text())
        staging = self.releases / f".{release}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        with tarfile.open(delta) as tar:
            members = tar.getmembers()
            for member in members:
                if (
                    not member.isfile()
                    or member.name.startswith("/")
                    or ".." in member.name.split("/")
                ):
                    raise Failure(f"{self.name}: unsafe entry in delta: {member.name}")
            described = tar.extractfile(DELTA)
            info = json.loads(described.read()) if described else {}
            if manifest_sha256(base_files) != info.get("base_manifest_sha256"):
                raise Failure(
                    f"{self.name}: the live release changed since this run looked at it; "
                    "run the deploy again"
                )
            files = {n: d for n, d in base_files.items() if n not in set(info["removed"])}
            files.update(info["files"])
            if manifest_sha256(files) != info["manifest_sha256"]:
                raise Failure(f"{self.name}: the delta does not rebuild the package's manifest")
            tar.extractall(staging, members=[m for m in members if m.name != DELTA])  # noqa: S202
        (staging / DELTA).unlink(missing_ok=True)
        for name, digest in info["files"].items():
            if sha256_file(staging / name) != digest:
                raise Failure(f"{self.name}: {name} does not match the delta's manifest")
        overlays = set(self.revision(live).get("overlays", []))
        for name in files.keys() - info["files"].keys():
            if name.split("/", 1)[0] in self.data_dirs:
                continue  # data lives in shared/: these become links to it
            if name in overlays or (base / name).is_symlink():
                # the live release holds a shared file's link or a rendered config there
                raise Failure(f"{self.name}: the delta lacks {name}; run the deploy again")
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(base / name, target)
            except OSError:
                shutil.copy2(base / name, target)
        (staging / MANIFEST).write_text(manifest_text(files))
        return self.finish_release(staging, release, meta)

    def finish_release(self, staging: Path, release: str, meta: dict) -> Path:
        """Link shared data and shared files, put the rendered config in, write REVISION, make
        the code root-owned and read-only (private/ readable by the web2py group only),
        publish."""
        self.seed_shared(staging)
        for folder in APP_FOLDERS:
            if folder not in self.data_dirs:
                (staging / folder).mkdir(exist_ok=True)
        for data in self.data_dirs:
            target = staging / data
            if target.is_symlink() or target.exists():
                shutil.rmtree(
                    target
                ) if target.is_dir() and not target.is_symlink() else target.unlink()
            os.symlink(f"../../shared/{data}", target)
        for path in [staging, *staging.rglob("*")]:
            if path.is_symlink():
                continue
            private = path.relative_to(staging).parts[:1] == ("private",)
            os.chown(path, 0, self.gid if private else 0)
            if path.is_dir():
                os.chmod(path, 0o750 if private else 0o755)
            else:
                os.chmod(path, 0o640 if private else 0o644)
        overlays = self.link_shared_files(staging)
        if self.args.appconfig:
            overlays.append(self.place_appconfig(staging))
        (staging / REVISION).write_text(
            json.dumps(
                {"release": release, **meta, "overlays": sorted(set(overlays))}, sort_keys=True
            )
            + "\n"
        )
        os.chmod(staging / REVISION, 0o644)
        final = self.releases / release
        os.rename(staging, final)
        os.chmod(self.releases, 0o755)
        return final

    def legacy_folder(self) -> Path | None:
        """The app as a plain folder (fabfile or install time), not yet under releases."""
        link = self.web2py_link
        return link if link.is_dir() and not link.is_symlink() else None

    def seed_shared(self, staging: Path) -> None:
        """Create missing shared data dirs, seeded from a full package. Dirs a plain app
        folder still holds are left to :meth:`adopt_legacy`, which copies them while the app
        is down (the folder is live: copied while it serves, writes made after would be lost)."""
        if self.provisional():
            # Nothing ever served from these: they hold what the checks of releases that never
            # went live wrote (or a copy of a plain folder's data taken then, now stale). Start
            # afresh, so a fixed app, or another package_mode, deploys as a first deploy does.
            # Of the shared files, only the package's seeds go (the fix may be in them): the
            # server's own and those pyinfra pushed (the auth key all hosts share) stay.
            for name in self.data_dirs:
                if (self.shared / name).is_symlink():
                    (self.shared / name).unlink()
                elif (self.shared / name).is_dir():
                    shutil.rmtree(self.shared / name)
            for rel in self.package_seeds():
                if lexists_below(self.shared / SHARED_FILES, rel):
                    (self.shared / SHARED_FILES / rel).unlink()
            (self.shared / PROVISIONAL).write_text("")
            log(f"{self.name}: no release went live yet: shared data of earlier attempts reset")
        self.shared.mkdir(parents=True, exist_ok=True)
        if not self.current.is_symlink():
            (self.shared / PROVISIONAL).touch()
        legacy = self.legacy_folder()
        for data in self.data_dirs:
            shared = self.shared / data
            if shared.exists() or (legacy and (legacy / data).is_dir()):
                continue
            seed = staging / data
            if seed.is_dir() and not seed.is_symlink():
                shutil.copytree(seed, shared, symlinks=True)
                self.own_tree(shared)
            else:
                shared.mkdir()
        self.fix_shared_modes()

    def package_seeds(self) -> list[str]:
        """Shared files seeded from a package while the app had not gone live yet."""
        try:
            text = (self.shared / PROVISIONAL).read_text()
        except OSError:
            return []
        return [line for line in text.splitlines() if line and ".." not in line.split("/")]

    def provisional(self) -> bool:
        """True when the app never went live but an earlier attempt left shared/ behind."""
        if self.current.is_symlink() or not self.shared.is_dir():
            return False
        if (self.shared / PROVISIONAL).exists():
            return True
        # attempts by tools older than the marker: a release log without a live release
        history = self.history()
        return bool(history) and not any(event == "live" for _, _, event in history)

    def link_shared_files(self, staging: Path) -> list[str]:
        """Seed the app's shared files where missing, then link every shared file into the
        release (over the package's copy). Returns the linked paths.

        A missing shared file is taken from the old layout (shared/private, or a plain app
        folder's private/) first, as that is the server's own copy, else from a file pyinfra
        staged (--seed), else from the package. When shared/files is new, the old layout's
        private files that the package lacks are kept too: copied and reported, never lost."""
        files_dir = self.shared / SHARED_FILES
        first = not files_dir.is_dir()
        make_root_dir(files_dir, self.gid)
        legacy_dirs = self.legacy_private_dirs()
        seeds = dict(seed.split("=", 1) for seed in self.args.seed or [])
        declared = [f for f in (self.args.shared_files or "").split(",") if f]
        rendered = {APPCONFIG} if self.args.appconfig else set()
        for rel in declared:
            if rel in rendered or lexists_below(files_dir, rel):
                continue
            found = None
            for label, folder in legacy_dirs if rel.startswith("private/") else ():
                found = found or read_regular(folder, rel.split("/", 1)[1], label)
            if found is None and rel in seeds:
                found = read_regular(Path(seeds[rel]).parent, Path(seeds[rel]).name, "pyinfra")
            if found is None:
                found = read_regular(staging, rel, "the package")
            if found is not None:
                write_root_file(files_dir, rel, found[0], self.gid)
                log(f"{self.name}: shared file {rel}: seeded from {found[1]}")
                if found[1] == "the package" and not self.current.is_symlink():
                    with open(self.shared / PROVISIONAL, "a") as marker:
                        marker.write(rel + "\n")  # replaced by the next attempt's, if any
        if first:
            for label, folder in legacy_dirs:
                for sub in regular_files(folder):
                    rel = f"private/{sub}"
                    if (staging / rel).exists() or lexists_below(files_dir, rel):
                        continue
                    found = read_regular(folder, sub, label)
                    if found is not None:
                        write_root_file(files_dir, rel, found[0], self.gid)
                        log(
                            f"{self.name}: kept {rel} from {label} (not in the package): now "
                            f"a shared file; declare it in shared_files"
                        )
                        self.kept.append(rel)
        linked = []
        for rel in regular_files(files_dir):
            if rel in rendered:
                log(
                    f"{self.name}: {rel} is rendered from the appconfig setting; shared copy unused"
                )
                continue
            link = staging / rel
            if link.is_dir() and not link.is_symlink():
                log(f"{self.name}: shared file {rel} is a folder in the package: not linked")
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(os.path.relpath(files_dir / rel, link.parent), link)
            linked.append(rel)
        return linked

    def legacy_private_dirs(self) -> list[tuple[str, Path]]:
        """Where the old layouts kept private/: shared/private (releases before private/
        shipped with them) and a plain app folder's private/ (fabfile, install time)."""
        found = []
        old = self.shared / LEGACY_PRIVATE
        if old.is_dir() and not old.is_symlink():
            found.append(("shared/private", old))
        plain = self.legacy_folder()
        if plain and (plain / "private").is_dir() and not (plain / "private").is_symlink():
            found.append((f"the app folder {plain}", plain / "private"))
        return found

    def place_appconfig(self, staging: Path) -> str:
        """The config pyinfra rendered for this host (--appconfig, staged root-only) becomes
        the release's private/appconfig.ini: readable by the web2py group, written by root."""
        data = Path(self.args.appconfig).read_bytes()
        target = staging / APPCONFIG
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chown(target.parent, 0, self.gid)
        os.chmod(target.parent, 0o750)
        if target.is_symlink() or target.exists():
            target.unlink()  # never write through: it may be a link to a shared file
        write_root_file(staging, APPCONFIG, data, self.gid)
        masked = (
            Path(self.args.appconfig_masked).read_bytes() if self.args.appconfig_masked else b""
        )
        write_root_file(staging, MASKED_APPCONFIG, masked, 0, mode=0o600)
        return APPCONFIG

    def adopt_legacy(self) -> list[str]:
        """Copy a plain app folder's data into shared/ (the app must be down). Existing data
        in shared/ is live and never overwritten."""
        legacy, copied = self.legacy_folder(), []
        for data in self.data_dirs if legacy else ():
            shared = self.shared / data
            if not shared.exists() and (legacy / data).is_dir():
                shutil.copytree(legacy / data, shared, symlinks=True)
                self.own_tree(shared)
                copied.append(data)
        self.fix_shared_modes()
        return copied

    def own_tree(self, top: Path) -> None:
        for path in [top, *top.rglob("*")]:
            if not path.is_symlink():
                os.chown(path, self.uid, self.gid)

    def fix_shared_modes(self) -> None:
        # Existing data is live: the app writes (and deletes) in it right now, so it is never
        # walked here; only the folders themselves are checked.
        for data in self.data_dirs:
            shared = self.shared / data
            if shared.is_dir():
                os.chown(shared, self.uid, self.gid)
                os.chmod(shared, 0o770)
        os.chmod(self.base, 0o755)

    # --- checks ----------------------------------------------------------------------------
    def precheck(self, release_dir: Path) -> None:
        """Before the switch, in a shadow web2py tree whose app is the new release: run the
        migrations if asked, then serve it from a throwaway uWSGI and demand a healthy answer."""
        if not (self.args.health_path or self.args.migrate):
            return
        shadow = self.base / f".check-{release_dir.name}"
        shutil.rmtree(shadow, ignore_errors=True)
        (shadow / "applications").mkdir(parents=True)
        root = Path(self.args.web2py_root)
        for entry in root.iterdir():
            if entry.name not in ("applications", "deposit", "logs", "site-packages"):
                os.symlink(entry, shadow / entry.name)
        for name in ("deposit", "logs", "site-packages"):
            (shadow / name).mkdir()
        (shadow / "applications" / "__init__.py").write_text("")
        os.symlink(release_dir, shadow / "applications" / self.name)
        for path in [shadow, *shadow.rglob("*")]:
            if not path.is_symlink():
                os.chown(path, self.uid, self.gid)
        try:
            if self.args.migrate:
                self.migrate(shadow)
            if self.args.health_path:
                self.serve_check(shadow, release_dir.name)
        finally:
            shutil.rmtree(shadow, ignore_errors=True)

    def migrate(self, shadow: Path) -> None:
        """web2py's own way: run the app's models (DAL migrations) with web2py.py -S -M -R."""
        script = shadow / "migrate.py"
        script.write_text("db.commit() if 'db' in globals() else None\n")
        os.chown(script, self.uid, self.gid)
        result = subprocess.run(
            ["python3", "web2py.py", "-S", self.name, "-M", "-R", str(script)],
            cwd=shadow, capture_output=True, text=True, timeout=self.args.hook_timeout,
            user=self.uid, group=self.gid, extra_groups=[],
        )  # fmt: skip
        if result.returncode != 0:
            tail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise Failure(f"{self.name}: migrations failed: {tail}")
        log(f"{self.name}: migrations ran")

    def serve_check(self, shadow: Path, release: str) -> None:
        sock = shadow / "check.sock"
        command = [
            self.args.uwsgi, "--plugins", "python3", "--http-socket", str(sock),
            "--chdir", str(shadow), "--module", "wsgihandler:application",
            "--processes", "1", "--need-app", "--uid", str(self.uid), "--gid", str(self.gid),
            "--chmod-socket=600", "--disable-logging",
        ]  # fmt: skip
        # One process, no master: it is thrown away with SIGKILL after one request (a graceful
        # uWSGI shutdown takes about a second, a third of a whole deploy's server time).
        # Its log is root's, outside the shadow tree (which the app user may write in).
        fd, log_name = tempfile.mkstemp(prefix=".check-log-", dir=self.base)
        log_path = Path(log_name)
        with os.fdopen(fd, "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

        def log_tail() -> str:
            return " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])

        try:
            deadline = time.monotonic() + self.args.check_timeout
            while True:
                # the socket file exists a moment before uWSGI listens on it: retry, bounded
                try:
                    status, body = unix_http_get(
                        sock, self.args.health_path, self.args.check_timeout
                    )
                    break
                except (FileNotFoundError, ConnectionRefusedError) as error:
                    if proc.poll() is not None:
                        raise Failure(
                            f"{self.name}: release {release} does not load: {log_tail()}"
                        ) from None
                    if time.monotonic() > deadline:
                        raise Failure(
                            f"{self.name}: release {release} did not answer its pre-switch "
                            f"check within {self.args.check_timeout:.0f}s ({error.strerror})"
                        ) from None
                    time.sleep(0.05)
                except (OSError, http.client.HTTPException) as error:
                    raise Failure(
                        f"{self.name}: pre-switch check of {self.args.health_path} failed: "
                        f"{error or type(error).__name__}"
                    ) from None
            self.judge("pre-switch check", status, body)
        finally:
            proc.kill()
            proc.wait()
            log_path.unlink(missing_ok=True)

    def judge(self, what: str, status: int, body: bytes) -> None:
        if status != self.args.health_status:
            why = self.error_summary(body)
            raise Failure(
                f"{self.name}: {what} of {self.args.health_path} answered {status}, "
                f"expected {self.args.health_status}" + (f": {why}" if why else "")
            )
        if self.args.health_text and self.args.health_text.encode() not in body:
            raise Failure(
                f"{self.name}: {what} of {self.args.health_path} lacks {self.args.health_text!r}"
            )

    def error_summary(self, body: bytes) -> str:
        """The error behind a bad answer, for the operator's one line: the last lines of the
        traceback in web2py's ticket (read without following links, unpickled without running
        anything: tickets sit in a folder the app writes), else the start of the page's text."""
        found = TICKET_LINK.search(body)
        if found:
            ticket = read_regular(self.shared / "errors", found.group(1).decode(), "ticket")
            trace = ticket_traceback(ticket[0]) if ticket else ""
            lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
            if lines:
                return f"{' | '.join(lines[-3:])[-400:]} (ticket {found.group(1).decode()})"
        text = re.sub(rb"(?:<[^>]*>|\s)+", b" ", body[:2000]).decode(errors="replace").strip()
        return text[:200]

    def health_through_nginx(self) -> None:
        if not self.args.health_path:
            return
        deadline = time.monotonic() + self.args.check_timeout
        while True:
            try:
                status, body = https_get(
                    self.args.health_port, self.args.health_path, self.health_key()
                )
                self.judge("health check", status, body)
                return
            except (OSError, Failure) as error:
                if time.monotonic() > deadline:
                    raise Failure(str(error)) from None
                time.sleep(0.2)

    def health_key(self) -> str:
        """The server's health-check key (written at install, root-only): with it in a header,
        nginx lets the health check through to an app that is down for maintenance."""
        try:
            text = (Path(self.args.maintenance_dir) / "health-key.conf").read_text()
        except OSError:
            return ""
        found = re.search(r"[0-9a-f]{64}", text)
        return found.group(0) if found else ""

    # --- switch and reload ----------------------------------------------------------------
    def switch(self, release: str) -> None:
        temp = self.base / f".current-{os.getpid()}"
        temp.unlink(missing_ok=True)
        os.symlink(f"releases/{release}", temp)
        os.replace(temp, self.current)  # rename(2): atomic, never a moment without `current`
        link = self.web2py_link
        if link.is_symlink() and os.readlink(link) == str(self.current):
            return
        if link.exists() and not link.is_symlink():
            legacy = link.with_name(f".{self.name}.pre-releases-{utc_stamp()}")
            os.rename(link, legacy)
            self.set_aside = legacy
            log(f"{self.name}: adopted the existing app folder; it was moved to {legacy}")
        temp_link = link.with_name(f".{self.name}.link-{os.getpid()}")
        temp_link.unlink(missing_ok=True)
        os.symlink(self.current, temp_link)
        os.replace(temp_link, link)

    def chain_reload(self) -> None:
        chain_reload(self.args.fifo, self.args.stats, self.args.reload_timeout)

    def unadopt(self) -> None:
        """Put the plain app folder this deploy set aside back in place (its release failed
        after the switch, and there is no earlier release to go back to)."""
        if not self.set_aside:
            return
        link = self.web2py_link
        if link.is_symlink():
            link.unlink()  # a moment without the app (404) rather than a failed release
        os.rename(self.set_aside, link)
        self.current.unlink(missing_ok=True)
        self.set_aside = None
        log(f"{self.name}: the app folder is back in place")

    def drop_set_aside(self, backed_up: bool) -> None:
        """Once the adopted release is live: the old folder is in the backup just taken (and
        its data in shared/), so it goes; without a backup it is kept under shared/."""
        if not self.set_aside:
            return
        if backed_up:
            shutil.rmtree(self.set_aside)
            log(f"{self.name}: removed the adopted folder {self.set_aside} (it is in the backup)")
        else:
            kept = self.shared / self.set_aside.name
            os.rename(self.set_aside, kept)
            log(f"{self.name}: the adopted folder is kept as {kept} (no backup was taken)")
        self.set_aside = None

    def prune_releases(self, dry_run: bool = False) -> list[str]:
        keep = max(self.args.keep_releases, 1)
        live = self.live_release()
        good = self.good_releases()
        protected = {live, *(good[-2:])}  # the live one and the last known-good before it
        releases = sorted(
            p.name for p in self.releases.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        removable = [r for r in releases if r not in protected]
        excess = len(releases) - keep
        removed = []
        for rel in removable[: max(excess, 0)]:
            if not dry_run:
                shutil.rmtree(self.releases / rel, ignore_errors=True)
            removed.append(rel)
        return removed

    # --- commands ---------------------------------------------------------------------------
    def hooks(self, stage: str, release_dir: Path) -> None:
        for command in json.loads(self.args.hooks or "{}").get(stage, []):
            result = subprocess.run(
                command, shell=True, cwd=release_dir, capture_output=True, text=True,
                env={**os.environ, "APP": self.name, "RELEASE": release_dir.name},
                timeout=self.args.hook_timeout,
            )  # fmt: skip
            if result.returncode != 0:
                raise Failure(
                    f"{self.name}: {stage} hook {command!r} exited {result.returncode}: "
                    f"{result.stderr.strip()[-300:]}"
                )


def chain_reload(fifo: str, stats: str, timeout: float) -> None:
    """FIFO 'c': uWSGI replaces workers one at a time; return once none of the old is left.

    Waiting matters beyond deploys: a stop that arrives in the middle of a chain reload hangs
    uWSGI 2.0 until systemd kills it, so `systemctl reload` (ExecReload) waits here too.
    """
    before = {w.get("pid") for w in uwsgi_workers(stats)}
    with open(fifo, "w") as f:
        f.write("c")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        workers = uwsgi_workers(stats)
        if workers and all(
            w.get("pid") not in before and w.get("status") in ("idle", "busy") for w in workers
        ):
            return
    raise Failure(f"uWSGI workers were not all replaced within {timeout}s")


SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-journal", "-wal", "-shm")


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def write_sqlite_snapshot(zf: zipfile.ZipFile, path: Path, arcname: str, scratch: Path) -> None:
    """Zip a consistent copy of a live SQLite database (web2py's default storage.sqlite).

    Copying the file while the app writes can catch half a transaction; SQLite's online backup
    copies it in one step under a read lock (writers wait, up to the busy timeout), so the
    snapshot is a committed state and its journal is not needed. If SQLite cannot (a database
    in WAL mode without its -shm, an odd file), the plain copy is the fallback."""
    try:
        import sqlite3  # here: only servers with SQLite apps need the module
    except ImportError:
        zf.write(path, arcname)
        return
    fd, temp = tempfile.mkstemp(prefix=".sqlite-snapshot-", dir=scratch)
    os.close(fd)
    try:
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                target = sqlite3.connect(temp)
                try:
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.Error:
            zf.write(path, arcname)
            return
        info = zipfile.ZipInfo.from_file(path, arcname)
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(temp, "rb") as snapshot, zf.open(info, "w") as out:
            shutil.copyfileobj(snapshot, out, 1 << 20)
    finally:
        os.unlink(temp)


# web2py's error page links the ticket: /admin/default/ticket/<app>/<ticket id>
TICKET_LINK = re.compile(rb"/admin/default/ticket/[A-Za-z0-9_]+/([A-Za-z0-9_.:-]+)")


class _Inert:
    """What every class or function a ticket's pickle names becomes: constructing or calling
    it does nothing, so nothing in the pickle runs (web2py's real tickets name a few of its own
    classes, gluon.html.XML among them, in their snapshot)."""

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _DataOnlyUnpickler(pickle.Unpickler):
    """Loads dicts, lists, strings and numbers as they are and every class or function a pickle
    names as :class:`_Inert`: a ticket the app user planted cannot run code as root."""

    def find_class(self, module: str, name: str):
        return _Inert


def ticket_traceback(data: bytes) -> str:
    """The traceback in a web2py ticket (a pickled dict), or ""."""
    try:
        ticket = _DataOnlyUnpickler(io.BytesIO(data)).load()
    except Exception:  # a truncated, foreign or hostile file: no summary, not a failure
        return ""
    trace = ticket.get("traceback") if isinstance(ticket, dict) else None
    return trace if isinstance(trace, str) else ""


def safe_member(name: str, prefix: str) -> bool:
    """An archive entry that stays inside its folder: under ``prefix``, relative, no empty,
    "." or ".." part ("app//tmp/x" would be written to /tmp/x by Path joining)."""
    if not name.startswith(prefix):
        return False
    parts = name[len(prefix) :].rstrip("/").split("/")
    return all(part not in ("", ".", "..") for part in parts) and "\\" not in name


def make_root_dir(path: Path, gid: int) -> None:
    """A folder root owns and the web2py group may read (never a link: refused)."""
    if path.is_symlink():
        raise Failure(f"{path} is a symbolic link: refused")
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, gid)
    os.chmod(path, 0o750)


def _open_below(base: Path, rel: str) -> tuple[int, str]:
    """A descriptor of ``rel``'s folder, reached from ``base`` without following a link at
    any step (base included), and the last name. Raises OSError."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        os.close(fd)
        raise OSError(f"bad path {rel!r}")
    try:
        for part in parts[:-1]:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError:
        os.close(fd)
        raise
    return fd, parts[-1]


def read_regular(base: Path, rel: str, label: str) -> tuple[bytes, str] | None:
    """The bytes of the regular file ``base/rel`` and ``label``, or None: links (at any
    step), folders, FIFOs and devices are never followed or opened for reading, so a file
    planted by the app user cannot make root read something else or block."""
    try:
        dir_fd, name = _open_below(base, rel)
    except OSError:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(), label


def lexists_below(base: Path, rel: str) -> bool:
    try:
        dir_fd, name = _open_below(base, rel)
    except OSError:
        return False
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False
    finally:
        os.close(dir_fd)


def write_root_file(base: Path, rel: str, data: bytes, gid: int, mode: int = 0o640) -> None:
    """Write ``base/rel`` (root:gid, ``mode``) atomically; missing folders are made root's,
    readable by ``gid`` (0750)."""
    target = base / rel
    for parent in reversed(list(target.relative_to(base).parents)[:-1]):
        make_root_dir(base / parent, gid)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        os.fchown(f.fileno(), 0, gid)
        os.fchmod(f.fileno(), mode)
    os.replace(temp, target)


def regular_files(root: Path) -> list[str]:
    """Relative paths of the regular files under ``root``, sorted; links are not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") and name.endswith(".tmp"):
                continue  # write_root_file's temporary file, left by a killed run
            if stat.S_ISREG(path.lstat().st_mode):
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def old_scratch_files(shared: Path, folders, cutoff: float) -> list[tuple[str, str, int]]:
    """(folder, relative path, size) of the files older than ``cutoff`` in shared/<folder>,
    found without following links (os.fwalk checks each folder it enters is the one it saw)."""
    found = []
    for folder in folders:
        top = shared / folder
        if top.is_symlink() or not top.is_dir():
            continue
        for dirpath, _dirs, files, dirfd in os.fwalk(top, follow_symlinks=False):
            for name in files:
                try:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except OSError:
                    continue
                if st.st_mtime < cutoff and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    found.append(
                        (folder, os.path.relpath(os.path.join(dirpath, name), top), st.st_size)
                    )
    return found


def remove_old_scratch_files(shared: Path, folders, cutoff: float) -> int:
    """Remove what :func:`old_scratch_files` finds, each by its folder's descriptor (a link is
    removed itself, never followed)."""
    removed = 0
    for folder in folders:
        top = shared / folder
        if top.is_symlink() or not top.is_dir():
            continue
        for _dirpath, _dirs, files, dirfd in os.fwalk(top, follow_symlinks=False):
            for name in files:
                try:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                    if st.st_mtime < cutoff and (
                        stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
                    ):
                        os.unlink(name, dir_fd=dirfd)
                        removed += 1
                except OSError:
                    continue
    return removed


def walk_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in filenames:
            yield Path(dirpath) / name


def manifest_text(files: dict[str, str]) -> str:
    """The manifest's canonical form (operations/packaging.py writes the same)."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))


def manifest_sha256(files: dict[str, str]) -> str:
    return hashlib.sha256(manifest_text(files).encode()).hexdigest()


def parse_manifest(text: str) -> dict[str, str]:
    files = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if sep and len(digest) == 64:
            files[name] = digest
    return files


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def unix_http_get(sock: Path, path: str, timeout: float) -> tuple[int, bytes]:
    conn = UnixHTTPConnection(str(sock), timeout)
    try:
        # X-Forwarded-For: web2py treats local clients specially (maintenance, admin)
        conn.request("GET", path, headers={"X-Forwarded-For": "203.0.113.1", "Host": "localhost"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def https_get(port: int, path: str, key: str = "") -> tuple[int, bytes]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    headers = {"X-Forwarded-For": "203.0.113.1"}
    if key:
        headers[HEALTH_KEY_HEADER] = key
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def uwsgi_workers(stats_path: str) -> list[dict]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(stats_path)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data).get("workers", [])
    except (OSError, ValueError):
        return []


class Window:
    """An app's maintenance window during a deploy or restore: nginx answers 503 with the app's
    page and Retry-After (the files it tests per request: operations/maintenance.py), while
    the backup, data, migrations and switch happen. Lifted on the way out, whatever happened,
    unless the app was already down when we came (then it stays down: the operator's call)."""

    def __init__(self, app: App):
        self.app = app
        folder = Path(app.args.maintenance_dir)
        self.flag = folder / f"{app.name}.down"
        self.notice = folder / f"{app.name}.notify"
        self.opened, self.opened_at = False, 0.0

    def show_notice(self) -> None:
        """Put up the notice pyinfra staged (--notice-file), unless the app is down already.
        Done here, once the deploy holds the lock and has something to do, so that a run that
        never got this far leaves no notice behind; main() takes it down if we stop early."""
        staged = Path(self.app.args.notice_file) if self.app.args.notice_file else None
        if staged is None or not staged.is_file():
            return
        if not self.flag.exists() and self.app.web2py_link.exists():
            temp = self.notice.with_name(f".{self.notice.name}.{os.getpid()}")
            shutil.copyfile(staged, temp)
            os.chmod(temp, 0o644)
            os.replace(temp, self.notice)  # nginx reads the old or the new, never half
            log(f"{self.app.name}: notice up for {self.app.args.notice_seconds:.0f}s")
        staged.unlink(missing_ok=True)

    def wait_for_notice(self) -> None:
        """Let the notice stay up for --notice-seconds, counted from when it went up: preparing
        the release runs meanwhile."""
        try:
            until = self.notice.stat().st_mtime + self.app.args.notice_seconds
        except OSError:
            return
        if until > time.time():
            time.sleep(max(0.0, until - time.time()))

    def open(self, why: str) -> None:
        if not self.app.web2py_link.exists():
            return  # a new app: nothing serves yet
        if self.flag.exists():
            log(f"{self.app.name}: already down for maintenance; it stays down")
            return
        self.wait_for_notice()
        self.flag.parent.mkdir(parents=True, exist_ok=True)
        self.flag.touch()
        self.opened, self.opened_at = True, time.monotonic()
        log(f"{self.app.name}: down for maintenance ({why})")
        self.drain()

    def drain(self) -> None:
        """Requests nginx passed before the flag finish first: wait (bounded) until every uWSGI
        worker is idle. Other apps' traffic can keep workers busy: then go on after the bound."""
        deadline = time.monotonic() + self.app.args.drain_timeout
        while time.monotonic() < deadline:
            workers = uwsgi_workers(self.app.args.stats)
            if all(w.get("status") == "idle" for w in workers):
                return
            time.sleep(0.05)
        log(f"{self.app.name}: workers still busy after {self.app.args.drain_timeout:.0f}s")

    def close(self) -> float | None:
        """Lift the window; the seconds the app answered 503 (None: it was not taken down)."""
        if not self.opened:
            return None
        # The notice goes while the flag still holds, not when it went up: a request that
        # passed the flag test just before would lose its notice and look like the app is up.
        self.notice.unlink(missing_ok=True)
        self.flag.unlink(missing_ok=True)
        self.opened = False
        log(f"{self.app.name}: up")
        return time.monotonic() - self.opened_at


def go_live(app: App, release: str, unpack, entry: dict, backup: bool = True, data=None) -> int:
    """Unpack a release (``unpack() -> release dir``), then (down for maintenance if asked, or
    if a plain app folder's data must be adopted) back up, restore ``data()`` if given, check,
    switch, reload, check health; on any failure switch back to what was live. The caller holds
    the lock. The maintenance window, if opened here, is lifted whatever happens."""
    previous = app.live_release()
    switched = False
    window = Window(app)
    try:
        if app.args.down:
            window.show_notice()
        release_dir = unpack()
        if app.kept:
            entry["kept_files"] = app.kept  # the operator's report names them
        legacy = app.legacy_folder()
        if app.args.down or data or legacy:
            why = "deploy" if app.args.down else "data restore" if data else "adopting its folder"
            window.open(why)
            stop_app_scheduler(app, entry)  # nothing writes while the app is down
        if backup:
            take_backup(app, entry)
        if legacy:
            copied = app.adopt_legacy()
            if copied:
                log(f"{app.name}: copied {', '.join(copied)} of {legacy} into shared/")
        if data:
            data()
        app.hooks("before_check", release_dir)
        app.precheck(release_dir)
        app.hooks("before_switch", release_dir)
        app.switch(release)
        switched = True
        app.chain_reload()
        app.health_through_nginx()
        app.hooks("after_switch", release_dir)
        app.record(release, "live")
        (app.shared / PROVISIONAL).unlink(missing_ok=True)  # its data is the app's now
        app.drop_set_aside(backed_up=bool(entry.get("backup")))
        removed = app.prune_releases()
        entry["result"] = "ok"
        log(
            f"{app.name}: release {release} is live"
            + (f"; pruned {', '.join(removed)}" if removed else "")
        )
        return 0
    except Exception as error:  # whatever broke, put back what was live
        if not isinstance(error, Failure):
            error = Failure(f"{app.name}: {type(error).__name__}: {error}")
        entry["result"] = f"failed: {error}"
        app.record(release, "failed")
        if switched and previous:
            app.switch(previous)
            try:
                app.chain_reload()
            except Failure as reload_error:
                log(f"{app.name}: after rolling back: {reload_error}")
            app.record(previous, "live")
            entry["result"] += f"; rolled back to {previous}"
        elif switched and app.set_aside:
            app.unadopt()
            try:
                app.chain_reload()
            except Failure as reload_error:
                log(f"{app.name}: after putting the app folder back: {reload_error}")
            entry["result"] += "; the app folder it adopted is back in place"
        print(
            f"{error}" + (f" (rolled back to {previous})" if switched and previous else ""),
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        down = window.close()
        if down is not None:
            entry["down_s"] = round(down, 2)  # for the audit log and the operator's report


def take_backup(app: App, entry: dict) -> None:
    entry["backup"] = app.backup()
    if entry["backup"]:
        log(f"{app.name}: backup {app.args.backups_dir}/{entry['backup']}")


def seed_paths(args: argparse.Namespace) -> list[str]:
    return [seed.split("=", 1)[1] for seed in args.seed or [] if "=" in seed]


def cmd_deploy(args: argparse.Namespace) -> int:
    app = App(args)
    started = time.time()
    meta = {
        "sha256": args.sha256,
        "version": args.version,
        "who": args.who,
        "config_sha256": args.config_sha256,
        "settings": json.loads(args.settings or "{}"),
    }
    meta["when"] = utc_stamp(started)
    release = f"{utc_stamp(started)}-{args.sha256[:12]}"
    entry = {
        "action": "deploy",
        "who": args.who,
        "when": meta["when"],
        "version": args.version,
        "package_sha256": args.sha256,
        "release": release,
        "backup": None,
    }
    app.acquire(args.version)
    try:
        live = app.revision(app.live_release())
        if (live.get("sha256"), live.get("config_sha256", "")) == (
            args.sha256,
            args.config_sha256,
        ):
            log(f"{app.name}: the live release already holds {args.sha256[:12]}")
            entry["result"] = "unchanged"
            return 0

        def unpack() -> Path:
            if args.delta_sha256:
                return app.unpack_delta(Path(args.package), args.delta_sha256, release, meta)
            return app.unpack(Path(args.package), args.sha256, release, meta)

        code = go_live(app, release, unpack, entry, backup=args.backup)
        if code == 0 or entry.get("scheduler_stopped"):
            restart_app_scheduler(app, entry)  # never raises: the release stays live
        return code
    except Failure as error:  # before go_live: nothing switched
        entry["result"] = f"failed: {error}"
        raise
    finally:
        entry["duration_s"] = round(time.time() - started, 3)
        if "result" in entry:
            app.audit(entry)
        app.release_lock()
        for staged in [args.package, args.appconfig, args.appconfig_masked, *seed_paths(args)]:
            if staged:
                Path(staged).unlink(missing_ok=True)


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup as a new release (code), and its data only with --restore-data."""
    app = App(args)
    started = time.time()
    zip_path = app.verified_backup(args.backup_name)
    name = zip_path.name
    app.keep_backup.add(name)  # the restore's own fresh backup must not prune it
    digest = sha256_file(zip_path)
    release = f"{utc_stamp(started)}-restore-{digest[:8]}"
    meta = {
        "sha256": f"restore:{digest}",
        "version": f"restored from {name}",
        "who": args.who,
        "settings": app.revision(app.live_release()).get("settings", {}),
    }
    meta["when"] = utc_stamp(started)
    entry = {
        "action": "restore",
        "who": args.who,
        "when": meta["when"],
        "version": meta["version"],
        "package_sha256": digest,
        "release": release,
        "backup": None,
        "restored_from": name,
        "restore_data": args.restore_data,
    }
    app.acquire(f"restore {name}")
    try:

        def unpack() -> Path:
            return app.unpack_backup(zip_path, release, meta)

        def data() -> None:
            app.restore_data(zip_path)

        # the backup first, so that the restore itself can be undone; data only under
        # maintenance (go_live takes the app down for it)
        code = go_live(
            app, release, unpack, entry, backup=True, data=data if args.restore_data else None
        )
        if code == 0 or entry.get("scheduler_stopped"):
            restart_app_scheduler(app, entry)  # never raises: the release stays live
        return code
    finally:
        entry["duration_s"] = round(time.time() - started, 3)
        if "result" in entry:
            app.audit(entry)
        app.release_lock()


def cmd_rollback(args: argparse.Namespace) -> int:
    """Back to the previous good release (by the release log) or a named one, under the lock:
    the target is chosen once the lock is held, so a deploy that just ended counts."""
    app = App(args)
    started = time.time()
    app.acquire(f"rollback to {args.to or 'previous'}")
    entry: dict = {}
    try:
        live = app.live_release()
        good = [r for r in app.good_releases() if r != live]
        target = args.to if args.to and args.to != "previous" else (good[-1] if good else None)
        if not target or not RELEASE_ID.fullmatch(target) or not (app.releases / target).is_dir():
            raise Failure(f"{app.name}: no release to roll back to ({args.to or 'previous'})")
        if target == live:
            log(f"{app.name}: release {target} is already live")
            return 0
        app.apply_recorded(target)  # the target's own health check
        entry = {
            "action": "rollback",
            "who": args.who,
            "when": utc_stamp(started),
            "from": live,
            "release": target,
            "version": app.revision(target).get("version"),
            "package_sha256": app.revision(target).get("sha256"),
            "backup": None,
        }
        try:
            app.switch(target)
            app.chain_reload()
            app.health_through_nginx()
            app.record(target, "live")
            if live:
                app.record(live, "rolled-back")
            entry["result"] = "ok"
            log(f"{app.name}: rolled back from {live} to {target}")
            restart_app_scheduler(app, entry)  # never raises: the rollback stands
            return 0
        except Failure as error:
            if live:
                app.switch(live)
                app.chain_reload()
            entry["result"] = f"failed: {error}"
            print(f"{error} (kept {live})", file=sys.stderr)
            return EXIT_FAILED
    finally:
        if entry:
            entry["duration_s"] = round(time.time() - started, 3)
            app.audit(entry)
        app.release_lock()


# --- schedulers -------------------------------------------------------------------------------
# An app's scheduler is the unit web2py-scheduler@<app> (`web2py.py -K <app>`, from
# templates/web2py-scheduler@.service.j2). Deploys, rollbacks and restores restart it once the
# new release is live, so it runs that release's code; its ExecStop (scheduler-stop, below)
# makes every stop graceful: web2py's own TERMINATE lets a running task finish. A bare SIGTERM
# is not graceful, nor even a stop, for web2py 2.x's worker: it stops the running task (STOPPED)
# and goes on with the next one; only when idle does it exit.

SCHEDULER_SETTLE = 5.0  # seconds a (re)started scheduler must keep running to count as up
UNIT_PROPERTIES = ("ActiveState", "SubState", "MainPID", "ExecMainStatus", "TimeoutStopUSec")
TERMINATE_MARK = "pyinfra-web2py-terminate:"
# Run by `web2py.py -S APP -M -R` (so with the app's models, which define its Scheduler and
# its database): asks one worker, by name, to TERMINATE. Scheduler.terminate() cannot name a
# worker in web2py 2.26 (it ignores worker_name) and would stop every worker of the group,
# those of other hosts sharing the database too.
TERMINATE_SCRIPT = """\
import sys
from gluon import current
scheduler = getattr(current, '_scheduler', None)
if scheduler is None:
    print('MARK none')
else:
    workers = scheduler.db.scheduler_worker
    asked = scheduler.db(workers.worker_name == sys.argv[1]).update(status='TERMINATE')
    scheduler.db.commit()
    print('MARK %d' % asked)
""".replace("MARK", TERMINATE_MARK)


def scheduler_unit(app: str) -> str:
    return f"web2py-scheduler@{app}.service"


def parse_properties(text: str) -> dict[str, str]:
    """`systemctl show` output (KEY=VALUE lines) as a dict."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


def unit_properties(unit: str) -> dict[str, str]:
    result = subprocess.run(
        ["systemctl", "show", unit, f"--property={','.join(UNIT_PROPERTIES)}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return parse_properties(result.stdout)


TIMESPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_timespan(text: str) -> float | None:
    """systemd's time span ("1min 30s", "500ms") in seconds; None for "infinity" or nonsense."""
    total, parts = 0.0, text.split()
    for part in parts:
        found = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s|min|h|d)", part)
        if not found:
            return None
        total += float(found.group(1)) * TIMESPAN_UNITS[found.group(2)]
    return total if parts else None


def describe_unit(props: dict[str, str]) -> str:
    """'active (running), pid 42' or 'activating (auto-restart), last exit status 0'."""
    state = f"{props.get('ActiveState') or '?'} ({props.get('SubState') or '?'})"
    if props.get("MainPID", "0") not in ("", "0"):
        return f"{state}, pid {props['MainPID']}"
    if props.get("ExecMainStatus", "") != "":
        return f"{state}, last exit status {props['ExecMainStatus']}"
    return state


def scheduler_verdict(
    props: dict[str, str], first_pid: str | None, running_for: float, settle: float
) -> str:
    """'up', 'wait' or 'down' for a scheduler unit seen in state ``props``, whose main process
    ``first_pid`` (None: none seen yet) has been seen running for ``running_for`` seconds."""
    pid = props.get("MainPID", "0") or "0"
    if props.get("ActiveState") == "active" and props.get("SubState") == "running" and pid != "0":
        if first_pid is not None and pid != first_pid:
            return "down"  # it exited and was started again in between
        return "up" if first_pid is not None and running_for >= settle else "wait"
    if props.get("ActiveState") == "activating" and props.get("SubState") in (
        "start-pre", "start", "start-post", "condition",
    ):  # fmt: skip
        return "wait"
    return "down"  # auto-restart, failed, inactive, deactivating...


def wait_for_scheduler(
    unit: str, settle: float, properties=unit_properties, clock=time.monotonic, sleep=time.sleep
) -> tuple[bool, str]:
    """Watch ``unit`` until one main process has kept running for ``settle`` seconds: (True,
    its state) or, as soon as it exits, restarts or fails, (False, what it is doing)."""
    deadline = clock() + settle + 30
    first_pid, since = None, clock()
    while True:
        props = properties(unit)
        now = clock()
        verdict = scheduler_verdict(props, first_pid, now - since, settle)
        pid = props.get("MainPID", "0") or "0"
        if verdict == "down" and first_pid is not None and pid not in ("0", first_pid):
            return False, f"restarted (pid {first_pid}, then {pid})"
        if verdict != "wait":
            return verdict == "up", describe_unit(props)
        if first_pid is None and pid != "0" and props.get("SubState") == "running":
            first_pid, since = pid, now
        if now > deadline:
            return False, f"not running for {settle:g} s after {settle + 30:g} s: " + (
                describe_unit(props)
            )
        sleep(0.25)


def journal_tail(unit: str, lines: int = 4) -> str:
    """The last lines the unit's own processes wrote to the journal, on one line."""
    for attempt in range(2):
        try:
            result = subprocess.run(
                ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines),
                 f"_SYSTEMD_UNIT={unit}"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return ""
        found = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        if found or attempt:
            return " | ".join(found)[-600:]
        time.sleep(1)  # journald may not have indexed the last lines yet
    return ""


def scheduler_failure(unit: str, state: str) -> dict:
    """What the audit entry and the operator get when a scheduler is not up: its state, the
    journal's last lines and, when they show it, the usual cause."""
    journal = journal_tail(unit)
    info = {"ok": False, "state": state, "journal": journal}
    if "_scheduler" in journal:
        info["hint"] = "the app's models define no Scheduler (web2py.py -K needs one)"
    return info


def failure_detail(info: dict) -> str:
    return (
        info["state"]
        + (f" ({info['hint']})" if info.get("hint") else "")
        + (f"; journal: {info['journal']}" if info.get("journal") else "; journal: empty")
    )


def failure_line(unit: str, info: dict) -> str:
    return f"{unit}: {failure_detail(info)}"


def scheduler_enabled(unit: str) -> bool:
    try:
        enabled = subprocess.run(
            ["systemctl", "is-enabled", unit], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False  # no systemd here: no scheduler
    return enabled == "enabled"


def scheduler_job(unit: str, action: str) -> str | None:
    """``systemctl stop|restart`` of a scheduler unit, bounded (its ExecStop waits for a running
    task, then systemd's SIGTERM and SIGKILL, each bounded by the unit's stop timeout): None
    when it went through, else why not."""
    stop = parse_timespan(unit_properties(unit).get("TimeoutStopUSec", "")) or 90.0
    try:
        result = subprocess.run(
            ["systemctl", action, unit], capture_output=True, text=True, timeout=2 * stop + 60
        )
    except subprocess.TimeoutExpired:
        return f"systemctl {action} did not return in {2 * stop + 60:.0f} s"
    if result.returncode != 0:
        error = (result.stderr.strip().splitlines() or ["?"])[-1]
        return f"systemctl {action} exited {result.returncode}: {error}"
    return None


def restart_scheduler(app: str, settle: float = SCHEDULER_SETTLE) -> dict | None:
    """Restart the app's scheduler if its unit is enabled (None when it is not): the unit's
    ExecStop lets a running task finish first (bounded by its stop timeout); then the new
    worker must keep running for ``settle`` seconds. Returns what happened, for the audit."""
    unit = scheduler_unit(app)
    if not scheduler_enabled(unit):
        return None
    started = time.monotonic()
    log(f"{app}: restarting {unit} (a running task may finish first)")
    error = scheduler_job(unit, "restart")
    if error:
        info = scheduler_failure(unit, error)
    else:
        ok, state = wait_for_scheduler(unit, settle)
        info = {"ok": True, "state": state} if ok else scheduler_failure(unit, state)
    info["seconds"] = round(time.monotonic() - started, 1)
    if info["ok"]:
        log(f"{app}: {unit} restarted in {info['seconds']:.1f} s: {info['state']}")
    else:
        print(f"{app}: scheduler not running: {failure_line(unit, info)}", file=sys.stderr)
    return {"unit": unit, **info}


def stop_app_scheduler(app: App, entry: dict) -> None:
    """While an app is down (its data adopted, restored, or backed up as a consistent
    snapshot): its scheduler must not write either. Stop it, gracefully (a running task
    finishes first); restart_app_scheduler starts it again, whatever the deploy's outcome."""
    unit = scheduler_unit(app.name)
    if not scheduler_enabled(unit):
        return
    started = time.monotonic()
    error = scheduler_job(unit, "stop")
    entry["scheduler_stopped"] = True  # started again at the end, even if the stop failed
    took = time.monotonic() - started
    log(f"{app.name}: {unit}: {error}" if error else f"{app.name}: {unit} stopped ({took:.1f} s)")


def restart_app_scheduler(app: App, entry: dict) -> None:
    """After a release went live (or after a failed deploy that stopped it): restart the app's
    scheduler, if it has one, and record the outcome in the audit entry. Never raises: the
    release is live and healthy, and a scheduler that did not come back is reported (and
    retried by systemd), not rolled back for."""
    entry.pop("scheduler_stopped", None)
    try:
        info = restart_scheduler(app.name, app.args.settle)
    except Exception as error:  # noqa: BLE001 (reported, never fatal)
        info = {"unit": scheduler_unit(app.name), "ok": False, "state": f"{error!r}"}
    if info is not None:
        entry["schedulers"] = {info.pop("unit"): info}


def process_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def ask_terminate(args: argparse.Namespace, worker: str, timeout: float) -> int | None:
    """Ask the worker named ``worker`` to TERMINATE through web2py (the app's models open its
    scheduler's database): the number of workers asked, or None when web2py could not."""
    fd, script = tempfile.mkstemp(prefix="terminate-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(TERMINATE_SCRIPT)
        as_user = {}
        if os.geteuid() == 0:  # run by hand as root: web2py runs as its user, as in the unit
            uid, gid = pwd.getpwnam(args.user).pw_uid, grp.getgrnam(args.group).gr_gid
            os.chown(script, uid, gid)
            as_user = {"user": uid, "group": gid, "extra_groups": []}
        result = subprocess.run(
            ["python3", "web2py.py", "--no_banner", "-S", args.app, "-M", "-R", script,
             "-A", worker],
            cwd=args.web2py_root, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, **as_user,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        log(f"could not ask {worker} to terminate: {error}")
        return None
    finally:
        os.unlink(script)
    for line in result.stdout.splitlines():
        if line.startswith(TERMINATE_MARK):
            value = line[len(TERMINATE_MARK) :].strip()
            if value.isdigit():
                return int(value)
            log(f"{args.app}: its models define no Scheduler: cannot ask {worker} to terminate")
            return None
    tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
    log(f"could not ask {worker} to terminate (exit {result.returncode}): {tail}")
    return None


def stop_by_signal(pid: int, seconds: float) -> None:
    """SIGTERM until the worker exits (bounded): the first stops its running task, if any, and
    the worker goes on; a later one finds it idle, and it exits."""
    deadline = time.monotonic() + seconds
    while process_alive(pid) and time.monotonic() < deadline:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait_until = min(deadline, time.monotonic() + 2)
        while process_alive(pid) and time.monotonic() < wait_until:
            time.sleep(0.1)


def cmd_scheduler_stop(args: argparse.Namespace) -> int:
    """The scheduler unit's ExecStop (as the web2py user, $MAINPID in --pid): a graceful stop.
    Ask the worker to TERMINATE (it finishes its running task, then exits) and wait for it, up
    to --stop-timeout; then, or if web2py cannot ask, SIGTERM. Always exits 0: systemd's own
    SIGTERM and SIGKILL follow anyway."""
    pid = int(args.pid) if args.pid.isdigit() else 0
    if not pid or not process_alive(pid):
        return 0  # it exited by itself (systemd runs ExecStop then too)
    started = time.monotonic()
    deadline = started + args.stop_timeout
    worker = f"{socket.gethostname()}#{pid}"  # web2py's default worker name
    asked_at = None
    while process_alive(pid) and time.monotonic() < deadline:
        if asked_at is None or time.monotonic() - asked_at > 15:
            # again every 15 s: a heartbeat written just after our update can overwrite it
            asked = ask_terminate(args, worker, max(1.0, min(60.0, deadline - time.monotonic())))
            if asked is None or (asked == 0 and asked_at is None):
                break  # unknown to web2py: the signal it is
            if asked_at is None:
                log(f"asked {worker} to terminate: a running task finishes first")
            asked_at = time.monotonic()
        time.sleep(0.2)
    if process_alive(pid):
        log(f"{worker} still runs after {time.monotonic() - started:.1f} s: SIGTERM")
        stop_by_signal(pid, 10)
    log(f"{worker} stopped in {time.monotonic() - started:.1f} s")
    return 0


def cmd_scheduler_check(args: argparse.Namespace) -> int:
    """install_web2py's check: the app's scheduler keeps running for --settle seconds."""
    unit = scheduler_unit(args.app)
    ok, state = wait_for_scheduler(unit, args.settle)
    if ok:
        log(f"{unit}: {state}")
        return 0
    info = scheduler_failure(unit, state)
    print(
        f"{unit} is not running {args.settle:g} s after its start: {failure_detail(info)}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    app = App(args)
    live = app.live_release()
    info = {
        "live": live,
        "revision": app.revision(live),
        "locked": app.describe_lock() if app.lock_dir.exists() else None,
        "releases": sorted(p.name for p in app.releases.iterdir() if p.is_dir())
        if app.releases.is_dir()
        else [],
        "good": app.good_releases(),
    }
    print(json.dumps(info, sort_keys=True))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    app = App(args)
    app.acquire("backup")
    try:
        name = app.backup()
    finally:
        app.release_lock()
    log(
        f"{app.name}: backup {args.backups_dir}/{name}"
        if name
        else f"{app.name}: nothing to back up"
    )
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Old sessions, errors and cache entries; backups and releases beyond retention.
    --dry-run prints what would go as JSON (a fact reads it); otherwise it is removed."""
    app = App(args)
    cutoff = time.time() - args.days * 86400
    # The app user writes these folders: walked by descriptor without following a link, and
    # files removed relative to their folder's descriptor, so a link planted anywhere in them
    # (or a folder swapped for one meanwhile) never makes root delete outside them.
    stale = old_scratch_files(app.shared, ("sessions", "errors", "cache"), cutoff)
    releases = app.prune_releases(dry_run=True) if app.releases.is_dir() else []
    backups = app.prune_backups(dry_run=True)
    freed = sum(size for _, _, size in stale)
    freed += sum(p.stat().st_size for p in backups)
    freed += sum(
        f.lstat().st_size
        for rel in releases
        for f in (app.releases / rel).rglob("*")
        if f.is_file()
    )
    report = {
        "files": len(stale),
        "releases": releases,
        "backups": [p.name for p in backups],
        "bytes": freed,
    }
    if not args.dry_run:
        app.acquire("cleanup")
        try:
            remove_old_scratch_files(app.shared, ("sessions", "errors", "cache"), cutoff)
            if app.releases.is_dir():
                app.prune_releases()
            app.prune_backups()
        finally:
            app.release_lock()
        log(
            f"{app.name}: removed {len(stale)} old files, {len(releases)} releases, "
            f"{len(backups)} backups: {freed / 1e6:.1f} MB freed"
        )
    else:
        print(json.dumps(report, sort_keys=True))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    chain_reload(args.fifo, args.stats, args.reload_timeout)
    log("uWSGI chain reload complete")
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    """Release a lock whose holder is dead; a holder that still runs is left alone."""
    app = App(args)
    if not app.lock_dir.exists():
        log(f"{app.name}: not locked")
        return 0
    info = app.lock_info()
    if holder_alive(info):
        raise Failure(
            f"{app.name}: {app.describe_lock().split(';')[0]} is still running (pid "
            f"{info.get('pid')}): wait for it to end; nothing was removed"
        )
    log(f"{app.name}: removing lock: {app.describe_lock().split(';')[0]}")
    app.release_lock()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "command",
        choices=(
            "deploy",
            "rollback",
            "status",
            "unlock",
            "reload",
            "backup",
            "restore",
            "cleanup",
            "scheduler-stop",
            "scheduler-check",
        ),
    )
    p.add_argument("--app")
    p.add_argument("--apps-dir")
    p.add_argument("--web2py-root")
    p.add_argument("--user", default="www-data")
    p.add_argument("--group", default="www-data")
    p.add_argument("--data-dirs", default="databases,sessions,errors,cache,uploads")
    p.add_argument("--package")
    p.add_argument("--sha256")
    p.add_argument("--delta-sha256", default="")  # --package is a delta from the live release
    p.add_argument("--version", default="")
    p.add_argument("--who", default="unknown")
    p.add_argument("--backup", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--backups-dir", default="/var/backups/web2py")
    # None: as recorded by the live release's deploy (RECORDED_DEFAULTS)
    p.add_argument("--keep-backups", type=int)
    p.add_argument("--keep-releases", type=int)
    p.add_argument("--health-path")  # "": no health check
    p.add_argument("--health-status", type=int)
    p.add_argument("--health-text")
    p.add_argument("--health-port", type=int, default=443)
    p.add_argument("--check-timeout", type=float, default=30)
    p.add_argument("--reload-timeout", type=float, default=60)
    p.add_argument("--hook-timeout", type=float, default=300)
    p.add_argument("--hooks")
    p.add_argument("--settings", default="")  # JSON: recorded in REVISION for later runs
    p.add_argument("--config-sha256", default="")  # of the rendered appconfig ("": none)
    p.add_argument("--appconfig", default="")  # the rendered appconfig.ini, staged root-only
    p.add_argument("--appconfig-masked", default="")  # the same with its secrets masked
    p.add_argument("--shared-files", default="")  # comma-separated paths in the app
    p.add_argument("--seed", action="append", default=[])  # PATH=STAGED: a shared file's seed
    p.add_argument("--migrate", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--fifo", default="/run/web2py/uwsgi.fifo")
    p.add_argument("--stats", default="/run/web2py/stats.sock")
    p.add_argument("--uwsgi", default="/usr/bin/uwsgi-core")
    p.add_argument("--to", default="")
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--backup-name", dest="backup_name", default="latest")
    p.add_argument("--restore-data", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--maintenance-dir", default="/etc/web2py/maintenance")
    p.add_argument("--down", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--notice-seconds", type=float, default=0)
    p.add_argument("--notice-file", default="")  # the notice, staged by pyinfra
    p.add_argument("--drain-timeout", type=float, default=10)
    p.add_argument("--pid", default="")  # scheduler-stop: the worker ($MAINPID; "": none)
    p.add_argument("--stop-timeout", type=float, default=60)  # scheduler-stop: for its task
    p.add_argument("--settle", type=float, default=SCHEDULER_SETTLE)  # a scheduler must run
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {
        "deploy": cmd_deploy,
        "rollback": cmd_rollback,
        "status": cmd_status,
        "unlock": cmd_unlock,
        "reload": cmd_reload,
        "backup": cmd_backup,
        "restore": cmd_restore,
        "cleanup": cmd_cleanup,
        "scheduler-stop": cmd_scheduler_stop,
        "scheduler-check": cmd_scheduler_check,
    }
    if args.command.startswith("scheduler-"):
        if not (args.app and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.app)):
            print(f"{args.command} needs --app, an app name", file=sys.stderr)
            return EXIT_USAGE
        if args.command == "scheduler-stop" and not args.web2py_root:
            print("scheduler-stop needs --web2py-root", file=sys.stderr)
            return EXIT_USAGE
    elif args.command != "reload" and not (args.app and args.apps_dir and args.web2py_root):
        print(f"{args.command} needs --app, --apps-dir and --web2py-root", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "deploy" and not (args.package and args.sha256):
        print("deploy needs --package and --sha256", file=sys.stderr)
        return EXIT_USAGE
    code = EXIT_FAILED
    try:
        code = commands[args.command](args)
        return code
    except Failure as error:
        print(str(error), file=sys.stderr)
        code = EXIT_LOCKED if isinstance(error, Locked) else EXIT_FAILED
        return code
    finally:
        if args.command in ("deploy", "restore") and args.down and code != EXIT_LOCKED:
            # The notice this deploy put up (or staged) must not outlive it (it ended before
            # going down: a broken package, a refused backup...). A deploy holding the lock
            # keeps its own, staged file included: both runs stage at the same path.
            (Path(args.maintenance_dir) / f"{args.app}.notify").unlink(missing_ok=True)
            if args.notice_file:
                Path(args.notice_file).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
