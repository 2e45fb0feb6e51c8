"""Pure checks and rendering for create_user (no pyinfra state: unit-tested directly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, as_local_file, as_unix_name

SUDO_SCOPES = ("web2py", "password", "full", "none")
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519", "sk-ecdsa-sha2-")
WEB2PY_UNITS = ("nginx", "web2py-uwsgi", "web2py-scheduler@*")
UNIT_VERBS = ("start", "stop", "restart", "reload", "status")


@dataclass(frozen=True)
class UserConfig:
    user: str
    groups: tuple[str, ...]
    public_key: str
    sudo: str
    password: str | None = field(repr=False)


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
    )


def sudoers_rules(user: str, scope: str) -> str | None:
    """The sudoers drop-in for a scope; None for "none" (no drop-in)."""
    header = f"# Managed by pyinfra-web2py (deploys/create_user.py): sudo scope {scope!r}\n"
    if scope == "none":
        return None
    if scope == "full":
        return header + f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    if scope == "password":
        return header + f"{user} ALL=(ALL:ALL) ALL\n"
    commands = ", ".join(
        f"/usr/bin/systemctl {verb} {unit}" for unit in WEB2PY_UNITS for verb in UNIT_VERBS
    )
    return header + f"{user} ALL=(root) NOPASSWD: {commands}\n"
