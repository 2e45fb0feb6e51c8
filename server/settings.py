"""Typed settings of the release tool: the server's layout (``formats.Layout``, read from the
file install wrote), and what one call asks for.

The cli module builds them; unit tests build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operations.formats import SCHEDULER_SETTLE, Layout

__all__ = ["SCHEDULER_SETTLE", "Checks", "CleanupOptions", "DeployOptions", "Layout", "Options"]


@dataclass
class Checks:
    """The settings a deploy records for later rollbacks and restores (formats.RECORDED_DEFAULTS):
    None here means "as the live release's deploy recorded", resolved by App."""

    health_path: str | None = None  # "": no health check
    health_status: int | None = None
    health_text: str | None = None
    hooks: str | None = None  # JSON {stage: [shell command, ...]}
    keep_releases: int | None = None
    keep_backups: int | None = None


@dataclass
class Options:
    """What one call of the tool asks of an app, beyond its recorded settings."""

    who: str = "unknown"
    checks: Checks = field(default_factory=Checks)
    check_timeout: float = 30
    reload_timeout: float = 60
    lock_wait: float = 0  # wait this long for a live run that holds the lock (deploys pass it)
    hook_timeout: float = 300
    migrate: bool = False
    appconfig: str = ""  # the rendered appconfig.ini, staged root-only ("": none)
    appconfig_masked: str = ""  # the same with its secrets masked
    shared_files: tuple[str, ...] = ()  # paths in the app kept on the server
    seeds: dict[str, str] = field(default_factory=dict)  # shared file → staged seed
    down: bool = False  # deploy under maintenance
    notice_seconds: float = 0
    notice_file: str = ""  # the notice, staged by pyinfra
    drain_timeout: float = 10
    settle: float = SCHEDULER_SETTLE  # a restarted scheduler must keep running this long


@dataclass(frozen=True)
class DeployOptions:
    """``deploy``: the package (or delta) pyinfra staged, and what to record with it."""

    package: str
    sha256: str
    delta_sha256: str = ""  # set: ``package`` is a delta from the live release
    version: str = ""
    backup: bool = True
    settings: dict = field(default_factory=dict)  # recorded in REVISION for later runs
    config_sha256: str = ""  # of the rendered appconfig ("": none)


@dataclass(frozen=True)
class RestoreOptions:
    """``restore``: which backup, and whether its data comes back too."""

    backup_name: str = "latest"
    restore_data: bool = False


@dataclass(frozen=True)
class CleanupOptions:
    """``cleanup``: the age of scratch files to remove; a dry run only reports."""

    days: float = 30
    dry_run: bool = False
