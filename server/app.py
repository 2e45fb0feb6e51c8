"""One app on this server: its paths, its live release, its history and its audit log."""

from __future__ import annotations

import grp
import json
import os
import pwd
import socket
from dataclasses import fields, replace
from pathlib import Path

from operations import formats
from server.lock import Lock
from server.settings import Checks, Layout, Options


class App:
    """An app under ``layout.apps_dir``, as one call of the tool (``options``) sees it.

    ``checks`` are the call's recorded settings (health check, hooks, retention) with what the
    command line left out filled from what a deploy recorded (see :meth:`apply_recorded`)."""

    def __init__(self, name: str, layout: Layout, options: Options | None = None):
        self.name = name
        self.layout = layout
        self.options = options or Options()
        self.base = Path(layout.apps_dir) / name
        self.releases = self.base / "releases"
        self.shared = self.base / "shared"
        self.current = self.base / "current"
        self.web2py_link = Path(layout.web2py_root) / "applications" / name
        self.data_dirs: tuple[str, ...] = tuple(layout.data_dirs)
        self.lock = Lock(self.base, name)
        self.keep_backup: set[str] = set()  # never pruned (the backup a restore restores)
        self.kept: list[str] = []  # old-layout files kept as shared files (reported)
        self.set_aside: Path | None = None  # the plain app folder this deploy adopted
        self.scheduler_stopped = False  # stopped for a maintenance window: start it again
        self.uid = pwd.getpwnam(layout.user).pw_uid
        self.gid = grp.getgrnam(layout.group).gr_gid
        self.checks = Checks()
        self.apply_recorded(self.live_release())

    def apply_recorded(self, release: str | None) -> None:
        """Fill the settings the command line left out from those the deploy of ``release``
        recorded in its REVISION (so a rollback or restore needs only the app's name)."""
        recorded = self.revision(release).get("settings", {})
        resolved = {}
        for f in fields(Checks):
            value = getattr(self.options.checks, f.name)
            if value is None:
                value = recorded.get(f.name, formats.RECORDED_DEFAULTS[f.name])
            if f.name == "health_path" and value is None:
                value = f"/{self.name}/default/index"
            if f.name == "hooks" and not isinstance(value, str):
                value = json.dumps(value or {}, sort_keys=True)
            resolved[f.name] = value
        self.checks = replace(self.checks, **resolved)

    def live_release(self) -> str | None:
        """The release ``current`` points at, or None."""
        try:
            return os.readlink(self.current).rsplit("/", 1)[-1]
        except OSError:
            return None

    def revision(self, release: str | None) -> dict:
        """What the deploy of ``release`` recorded (its REVISION), or {}."""
        if not release:
            return {}
        try:
            return json.loads((self.releases / release / formats.REVISION).read_text())
        except (OSError, ValueError):
            return {}

    def history(self) -> list[tuple[str, str, str]]:
        """The release log: (utc stamp, release, event), oldest first."""
        try:
            lines = (self.base / "release.log").read_text().splitlines()
        except OSError:
            return []
        return [tuple(line.split(" ", 2)) for line in lines if line.count(" ") >= 2]  # type: ignore[misc]

    def record(self, release: str, event: str) -> None:
        """Append ``event`` (live, failed, rolled-back...) of ``release`` to the release log."""
        with open(self.base / "release.log", "a") as f:
            f.write(f"{formats.utc_stamp()} {release} {event}\n")

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

    def release_ids(self) -> list[str]:
        """The releases on disk, sorted (their ids start with a UTC stamp)."""
        if not self.releases.is_dir():
            return []
        return sorted(
            p.name for p in self.releases.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def legacy_folder(self) -> Path | None:
        """The app as a plain folder (fabfile or install time), not yet under releases."""
        link = self.web2py_link
        return link if link.is_dir() and not link.is_symlink() else None

    def audit(self, entry: formats.AuditRecord) -> None:
        """Append ``entry`` to the app's audit log (``audit.jsonl``)."""
        entry.app, entry.host = self.name, socket.gethostname()
        if self.lock.stale:
            entry.took_over_lock_of = {k: self.lock.stale.get(k) for k in ("who", "since", "pid")}
        # root's alone (0600): records hold hook output, backup names and who ran what
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.base / "audit.jsonl", flags, 0o600)
        os.fchmod(fd, 0o600)  # an older, 0644 log too
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(entry.to_dict(), sort_keys=True) + "\n")
