"""The keys that say what one run of a day-two deploy is about (rollback, restore, retrieve,
unlock, cleanup, backup, webserver): read and checked here, as the other settings are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..formats import RELEASE_ID
from .defaults import default, value
from .validators import (
    ConfigError,
    as_bool,
    as_choice,
    as_file_name,
    as_int,
    required_app_name,
)

WEBSERVER_ACTIONS = ("start", "stop", "restart", "reload", "status")


@dataclass(frozen=True)
class RollbackRun:
    """deploys/rollback.py: the app and the release to go back to (``previous``: by the log)."""

    app_name: str
    to: str


def rollback_run(data: Any) -> RollbackRun:
    """``rollback_app``, ``rollback_to``."""
    app_name = required_app_name("rollback_app", value(data, "rollback_app"))
    to = str(value(data, "rollback_to") or "previous")
    if to != "previous" and not RELEASE_ID.fullmatch(to):
        raise ConfigError(
            f"rollback_to: a release id like 20261125T101500Z-9c1e2a3b4c5d, got {to!r}"
        )
    return RollbackRun(app_name, to)


@dataclass(frozen=True)
class RestoreRun:
    """deploys/restore.py: the app, the backup (None: list them) and whether data too."""

    app_name: str
    backup: str | None
    data: bool


def restore_run(data: Any) -> RestoreRun:
    """``restore_app``, ``restore_backup``, ``restore_data``."""
    app_name = required_app_name("restore_app", value(data, "restore_app"))
    backup = value(data, "restore_backup")
    if backup:
        backup = as_file_name("restore_backup", backup, "a backup file name or 'latest'")
    return RestoreRun(
        app_name, backup or None, as_bool("restore_data", value(data, "restore_data"))
    )


@dataclass(frozen=True)
class RetrieveRun:
    """deploys/retrieve.py: the app, which backup (a name, ``latest``, ``snapshot``), where to."""

    app_name: str
    which: str
    local_dir: str


def retrieve_run(data: Any) -> RetrieveRun:
    """``retrieve_app``, ``retrieve_backup``, ``retrieve_dir``."""
    app_name = required_app_name("retrieve_app", value(data, "retrieve_app"))
    which = as_file_name(
        "retrieve_backup",
        value(data, "retrieve_backup") or default("retrieve_backup"),
        "a backup file name, 'latest' or 'snapshot'",
    )
    return RetrieveRun(app_name, which, str(value(data, "retrieve_dir") or default("retrieve_dir")))


def unlock_app(data: Any) -> str:
    """``unlock_app``: the app whose stale lock to release."""
    return required_app_name("unlock_app", value(data, "unlock_app"))


def backup_app(data: Any) -> str:
    """``backup_app``: the app to back up now."""
    return required_app_name("backup_app", value(data, "backup_app"))


def cleanup_days(data: Any) -> int:
    """``cleanup_days``: the age of the runtime files cleanup removes."""
    return as_int("cleanup_days", value(data, "cleanup_days"), 0, 36500)


def webserver_action(data: Any) -> str:
    """``webserver_action``."""
    return as_choice("webserver_action", value(data, "webserver_action"), WEBSERVER_ACTIONS)
