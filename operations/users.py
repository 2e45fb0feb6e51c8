"""Pure checks and rendering for create_user (no pyinfra state: unit-tested directly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, as_app_name, as_local_file, as_unix_name

SUDO_SCOPES = ("web2py", "password", "full", "none")
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519", "sk-ecdsa-sha2-")
# Named one by one: a "*" in sudoers matches across arguments too, so
# "systemctl start web2py-scheduler@*" would allow "... web2py-scheduler@x debug-shell.service".
WEB2PY_UNITS = ("nginx", "web2py-uwsgi")
UNIT_VERBS = ("start", "stop", "restart", "reload", "status")


@dataclass(frozen=True)
class UserConfig:
    user: str
    groups: tuple[str, ...]
    public_key: str
    sudo: str
    password: str | None = field(repr=False)
    schedulers: tuple[str, ...] = ()  # apps of web2py_schedulers: their units are in scope


def public_key_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) != 1 or not lines[0].startswith(KEY_TYPES):
        raise ConfigError(f"deploy_user_public_key: {path} is not one SSH public key line")
    return lines[0]


def user_config(data: Any, password: str | None) -> UserConfig:
    user = data.get("deploy_user")
    if not user:
        raise ConfigError(
            "deploy_user: required (the account to create), e.g. --data deploy_user=alice"
        )
    as_unix_name("deploy_user", user)
    if user == "root":
        raise ConfigError("deploy_user: refusing to manage root")
    if user in (data.get("web2py_user", "www-data"), "www-data"):
        raise ConfigError(
            f"deploy_user: {user} runs the web2py apps; a deploy user must be another account"
        )
    groups = data.get("deploy_user_groups", ["www-data"]) or []
    if isinstance(groups, str):
        groups = [g for g in groups.split(",") if g]
    sudo = data.get("deploy_user_sudo", "web2py")
    if sudo not in SUDO_SCOPES:
        raise ConfigError(
            f"deploy_user_sudo: expected one of {', '.join(SUDO_SCOPES)}, got {sudo!r}"
        )
    if sudo == "password" and not password:
        raise ConfigError(
            "deploy_user_sudo: 'password' needs deploy_user_password (or $DEPLOY_USER_PASSWORD)"
        )
    key_path = as_local_file("deploy_user_public_key", data.get("deploy_user_public_key"))
    return UserConfig(
        user=as_unix_name("deploy_user", user),
        groups=tuple(as_unix_name("deploy_user_groups", g) for g in groups),
        public_key=public_key_line(key_path),
        sudo=sudo,
        password=password,
        schedulers=scheduler_apps(data.get("web2py_schedulers")),
    )


def scheduler_apps(value: Any) -> tuple[str, ...]:
    apps = value or ()
    if isinstance(apps, str):
        apps = [a for a in apps.split(",") if a]
    return tuple(as_app_name("web2py_schedulers", a) for a in apps)


def sudoers_rules(user: str, scope: str, schedulers: tuple[str, ...] = ()) -> str | None:
    """The sudoers drop-in for a scope; None for "none" (no drop-in). The "web2py" scope names
    every command in full, the schedulers' units included: no wildcard in it."""
    header = f"# Managed by pyinfra-web2py (deploys/create_user.py): sudo scope {scope!r}\n"
    if scope == "none":
        return None
    if scope == "full":
        return header + f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    if scope == "password":
        return header + f"{user} ALL=(ALL:ALL) ALL\n"
    units = (*WEB2PY_UNITS, *(f"web2py-scheduler@{app}" for app in schedulers))
    commands = ", ".join(
        f"/usr/bin/systemctl {verb} {unit}" for unit in units for verb in UNIT_VERBS
    )
    return header + f"{user} ALL=(root) NOPASSWD: {commands}\n"
