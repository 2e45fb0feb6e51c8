"""create_user's settings: the account, its groups, key, password and sudo scope."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .defaults import value
from .layout import layout_settings
from .validators import ConfigError, as_app_names, as_choice, as_local_file, as_unix_name

PASSWORD_ENV = "DEPLOY_USER_PASSWORD"
SUDO_SCOPES = ("web2py", "password", "full", "none")
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519", "sk-ecdsa-sha2-")


@dataclass(frozen=True)
class UserSettings:
    """What deploys/create_user.py does, checked. Built by :func:`user_settings`."""

    user: str
    groups: tuple[str, ...]
    public_key: str
    sudo: str
    password: str | None = field(repr=False)
    schedulers: tuple[str, ...]  # apps of web2py_schedulers: their units are in sudo's scope


def public_key_line(path: Path) -> str:
    """The one SSH public key line of ``path`` (a private key is refused)."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) != 1 or not lines[0].startswith(KEY_TYPES):
        raise ConfigError(f"deploy_user_public_key: {path} is not one SSH public key line")
    return lines[0]


def user_settings(data: Any, environ: Mapping[str, str] = os.environ) -> UserSettings:
    """Check create_user's data; the password comes from data or ``$DEPLOY_USER_PASSWORD``."""
    user = value(data, "deploy_user")
    if not user:
        raise ConfigError(
            "deploy_user: required (the account to create), e.g. --data deploy_user=alice"
        )
    as_unix_name("deploy_user", user)
    if user == "root":
        raise ConfigError("deploy_user: refusing to manage root")
    if user in (layout_settings(data).user, "www-data"):
        raise ConfigError(
            f"deploy_user: {user} runs the web2py apps; a deploy user must be another account"
        )
    groups = value(data, "deploy_user_groups") or []
    if isinstance(groups, str):
        groups = [g for g in groups.split(",") if g]
    sudo = as_choice("deploy_user_sudo", value(data, "deploy_user_sudo"), SUDO_SCOPES)
    password = value(data, "deploy_user_password") or environ.get(PASSWORD_ENV) or None
    if sudo == "password" and not password:
        raise ConfigError(
            f"deploy_user_sudo: 'password' needs deploy_user_password (or ${PASSWORD_ENV})"
        )
    key_path = as_local_file("deploy_user_public_key", value(data, "deploy_user_public_key"))
    return UserSettings(
        user=user,
        groups=tuple(as_unix_name("deploy_user_groups", g) for g in groups),
        public_key=public_key_line(key_path),
        sudo=sudo,
        password=password,
        schedulers=as_app_names("web2py_schedulers", value(data, "web2py_schedulers")),
    )
