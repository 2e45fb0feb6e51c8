"""The contract between controller and server: names, layouts and records both sides read.

Standard library only, Python 3.9: this module is imported by the controller (``operations``)
and shipped to servers inside the release tool (``server/``). A name, a record's keys or a
digest is defined here once; neither side spells it out again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# The app's data folders, kept in shared/ across releases (never shipped in a package).
DATA_DIRS = ("databases", "sessions", "errors", "cache", "uploads")
# The folders web2py expects in every app (gluon.fileutils.missing_app_folders): it creates the
# missing ones on the first request, which a read-only release refuses (500 on every request).
APP_FOLDERS = (
    "models", "views", "controllers", "databases", "modules", "cron", "errors", "sessions",
    "languages", "static", "private", "uploads",
)  # fmt: skip

# The server's layout, written at install (deploys/install_web2py.py), read by the release tool.
LAYOUT_FILE = "release.json"  # in web2py_config_dir, root:root 0644


def layout_path(config_dir: str) -> str:
    """Where the server's layout (:class:`Layout`) lives, in the web2py config dir."""
    return f"{config_dir}/{LAYOUT_FILE}"


@dataclass(frozen=True)
class Layout:
    """Where things are on a server and who owns them: fixed at install time, written there
    once as JSON (``LAYOUT_FILE``); a deploy's own settings travel with each call instead."""

    apps_dir: str
    web2py_root: str
    user: str = "www-data"
    group: str = "www-data"
    data_dirs: tuple[str, ...] = DATA_DIRS
    backups_dir: str = "/var/backups/web2py"
    fifo: str = "/run/web2py/uwsgi.fifo"  # uWSGI's master FIFO (chain reloads)
    stats: str = "/run/web2py/stats.sock"  # uWSGI's stats socket (its workers)
    uwsgi: str = "/usr/bin/uwsgi-core"
    maintenance_dir: str = "/etc/web2py/maintenance"
    health_port: int = 443  # nginx's HTTPS port, for the health check

    def to_json(self) -> str:
        """The layout as written on the server: sorted keys, one line per key."""
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Layout:
        """A layout read back; raises ValueError when a key is missing, unknown or mistyped."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        missing = sorted(set(names) - set(data))
        if unknown or missing:
            raise ValueError(f"unknown keys {unknown}, missing keys {missing}")
        if not all(
            isinstance(data[k], str) for k in names if k not in ("data_dirs", "health_port")
        ):
            raise ValueError("paths and names must be strings")
        if not isinstance(data["health_port"], int):
            raise ValueError("health_port must be a number")
        return cls(**{**data, "data_dirs": tuple(str(d) for d in data["data_dirs"])})


# Files in a package and in a release.
MANIFEST = ".pyinfra-web2py-manifest"  # "sha256  path" lines, as sha256sum writes them
DELTA = ".pyinfra-web2py-delta.json"  # in a delta package: what it changes (delta_info)
REVISION = "REVISION"  # in a release: JSON, what its deploy recorded
MASKED_APPCONFIG = ".pyinfra-web2py-appconfig.masked"  # the rendered config, secrets masked
APPCONFIG = "private/appconfig.ini"

# A release's folder name (releases/<id>): a UTC stamp and a label.
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
RELEASE_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9][A-Za-z0-9.-]*")

# The release tool's exit codes: EXIT_LOCKED means another live run holds the app's lock and
# nothing was done (its maintenance notice, if any, is that run's and stays).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 3

SCHEDULER_SETTLE = 5.0  # seconds a (re)started scheduler must keep running to count as up

# What a deploy records (REVISION "settings") for later rollbacks and restores, with the defaults
# used when nothing was recorded (releases made before it was); health_path None: the app's index.
RECORDED_DEFAULTS: dict[str, Any] = {
    "health_path": None,
    "health_status": 200,
    "health_text": "",
    "hooks": "{}",
    "keep_releases": 5,
    "keep_backups": 10,
}


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


def utc_stamp(now: float | None = None) -> str:
    """``now`` (default: the current time) as a UTC stamp, e.g. ``20261125T101500Z``."""
    # dt.timezone.utc, not dt.UTC (3.11+): servers run Python 3.9 and newer
    return dt.datetime.fromtimestamp(now or time.time(), dt.timezone.utc).strftime(STAMP_FORMAT)


def manifest_text(files: dict[str, str]) -> str:
    """A manifest's canonical form: ``sha256  path`` lines, sorted (``sha256sum -c`` reads it)."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))


def manifest_sha256(files: dict[str, str]) -> str:
    """The sha256 of ``files``' canonical manifest: one digest for a whole release."""
    return sha256_text(manifest_text(files))


def parse_manifest(text: str | list[str] | None) -> dict[str, str]:
    """``sha256  path`` lines (a text or its lines) → {path: sha256}; other lines are ignored."""
    if not text:
        return {}
    lines = text.splitlines() if isinstance(text, str) else text
    files: dict[str, str] = {}
    for line in lines:
        digest, sep, name = line.partition("  ")
        if sep and len(digest) == 64:
            files[name] = digest
    return files


DELTA_FORMAT = 1


def delta_info(
    base_files: dict[str, str], files: dict[str, str], changed: list[str], removed: list[str]
) -> dict[str, Any]:
    """The description a delta carries (``DELTA``): the manifest it applies to, the manifest it
    must rebuild, the files it brings (``changed``: name → sha256) and the names it drops."""
    return {
        "format": DELTA_FORMAT,
        "base_manifest_sha256": manifest_sha256(base_files),
        "manifest_sha256": manifest_sha256(files),
        "files": {name: files[name] for name in changed},
        "removed": list(removed),
    }


# An audit record's fields that are written only when set (the others always are).
_AUDIT_OPTIONAL = (
    "from", "restored_from", "restore_data", "kept_files", "down_s", "schedulers",
    "took_over_lock_of", "duration_s", "result", "attention",
)  # fmt: skip


@dataclass
class AuditRecord:
    """One line of an app's ``audit.jsonl``: a deploy, rollback or restore. The release tool
    fills it as the run goes; the controller's report reads it back (:meth:`from_dict`)."""

    action: str = "deploy"
    who: str = ""
    when: str = ""
    release: str | None = None
    version: str | None = None
    package_sha256: str | None = None
    backup: str | None = None  # the backup's file name, in the backups dir
    result: str | None = None  # "ok", "unchanged", "failed: <why>[; rolled back ...]"
    duration_s: float | None = None
    app: str = ""
    host: str = ""
    from_release: str | None = None  # a rollback's previous release (key "from")
    restored_from: str | None = None
    restore_data: bool | None = None
    kept_files: list[str] = field(default_factory=list)
    down_s: float | None = None  # seconds the app answered 503
    schedulers: dict[str, dict[str, Any]] = field(default_factory=dict)  # unit → outcome
    took_over_lock_of: dict[str, Any] | None = None
    # set when the run could not bring every worker back to one version: the operator must look
    attention: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as written: optional fields only when set; ``from_release`` as "from"."""
        record = asdict(self)
        record["from"] = record.pop("from_release")
        return {
            k: v for k, v in record.items() if k not in _AUDIT_OPTIONAL or v not in (None, [], {})
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AuditRecord:
        """A record read back from ``audit.jsonl`` (unknown keys ignored, missing ones unset)."""
        data = dict(data or {})
        if "from" in data:
            data["from_release"] = data.pop("from")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})
