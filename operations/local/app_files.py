"""An app's files that do not come from its package as is: shared files and rendered config.

web2py apps keep code *and* configuration in ``private/``, so ``private/`` ships with every
release. Three kinds of file are handled apart, all decided on the controller:

- **shared files** (``shared_files``, checked by ``operations/settings/validators.py``;
  Capistrano's ``linked_files``): live on the server in
  ``shared/files/<path>``, are linked into every release, and are seeded once, then kept: from
  the server's old layout, else a file pyinfra pushes, else the package's copy.
- **the auth key** (``private/auth.key``, a default shared file): web2py's
  ``Auth.get_or_create_key()`` writes it on the first request and mixes it into every password
  hash, so all hosts of an app must hold the same one. It comes from the package, else from
  the hosts that already hold one, else ``auth_key`` (a secret from the environment), else it is
  generated once per run on the controller and pushed to every host that lacks it.
- **the rendered config** (``appconfig``): ``private/appconfig.ini`` rendered per host group
  from data, ``${VAR}`` taken from the controller's environment; part of each release, so a
  config change is a release with the same checks and rollback as a code change.

Secrets are wrapped in :class:`Secret` (masked in any repr) and never logged; the rendered
config's masked twin is what diffs show.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..formats import APPCONFIG, sha256_text
from ..settings.validators import ConfigError

AUTH_KEY = "private/auth.key"
# Apply to apps that have them (in the package or on the server); never refused as missing.
DEFAULT_SHARED_FILES = (APPCONFIG, AUTH_KEY)
INI_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "********"


class Secret:
    """A secret value: its repr and str never show it (logs, tracebacks, pyinfra output)."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "Secret(********)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    @property
    def sha256(self) -> str:
        """The secret's sha256 (to compare it with what a host holds, never to show it)."""
        return sha256_text(self.value)


@dataclass(frozen=True)
class RenderedConfig:
    """``private/appconfig.ini`` for one host group: the text (secret) and its masked twin."""

    text: Secret
    masked: str
    sha256: str = field(default="")


def _env(key: str, text: str, environ: Mapping[str, str], secrets: list[str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"{key}: ${{{name}}} is not set in the controller's environment")
        secrets.append(environ[name])
        return environ[name]

    return ENV_REF.sub(substitute, text)


def _ini_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)  # AppConfig reads "a, b" as a list
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected text, a number, true/false or a list, got {value!r}")
    return value


def render_appconfig(key: str, value: Any, environ: Mapping[str, str]) -> RenderedConfig | None:
    """Render ``{section: {option: value}}`` as web2py's ``AppConfig`` reads it (configparser,
    so ``%`` is doubled), ``${VAR}`` substituted from ``environ``; None when not set."""
    if value in (None, {}):
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected {{section: {{option: value}}}}, got {value!r}")
    lines: list[str] = ["; rendered by pyinfra-web2py from the app's appconfig setting"]
    secrets: list[str] = []
    for section, options in value.items():
        if not isinstance(section, str) or not INI_NAME.fullmatch(section):
            raise ConfigError(f"{key}: bad section name {section!r}")
        if not isinstance(options, Mapping):
            raise ConfigError(f"{key}[{section!r}]: expected {{option: value}}, got {options!r}")
        lines.append(f"\n[{section}]")
        for option, raw in options.items():
            where = f"{key}[{section!r}][{option!r}]"
            if not isinstance(option, str) or not INI_NAME.fullmatch(option):
                raise ConfigError(f"{key}[{section!r}]: bad option name {option!r}")
            text = _ini_value(where, raw)
            if "\n" in text or "\r" in text or text != text.strip():
                raise ConfigError(f"{where}: no line breaks or surrounding blanks in values")
            text = _env(where, text, environ, secrets)
            if "\n" in text or "\r" in text:
                raise ConfigError(f"{where}: the environment gave a value with a line break")
            lines.append(f"{option} = {text.replace('%', '%%')}")
    text = "\n".join(lines) + "\n"
    masked = text
    for secret in sorted({s.replace("%", "%%") for s in secrets if s}, key=len, reverse=True):
        masked = masked.replace(secret, MASK)
    return RenderedConfig(Secret(text), masked, sha256_text(text))


def auth_key_setting(key: str, value: Any, environ: Mapping[str, str]) -> Secret | None:
    """``auth_key``: a ``${VAR}`` reference to the controller's environment (never the key
    itself in data files), or None."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not ENV_REF.fullmatch(value):
        raise ConfigError(f"{key}: expected a reference to the environment like ${{SHOP_AUTH_KEY}}")
    found = _env(key, value, environ, []).strip()
    if not found:
        raise ConfigError(f"{key}: {value} is empty in the controller's environment")
    return Secret(found)


def new_auth_key() -> Secret:
    """A key as web2py's ``Auth.get_or_create_key()`` makes one: ``sha512:<uuid4>``."""
    return Secret(f"sha512:{uuid.uuid4()}")


@dataclass(frozen=True)
class HostFiles:
    """What one host holds of an app's shared files (the ``SharedFiles`` fact)."""

    shared: tuple[str, ...]  # paths in shared/files, sorted
    legacy: tuple[str, ...]  # paths (private/...) in the old layouts: shared/private, a folder
    auth_key_sha256: str | None  # of the key the host holds (shared, else legacy), if any


def missing_shared_files(
    app: str, declared: tuple[str, ...], package_files: Mapping[str, str], held: HostFiles
) -> list[str]:
    """Declared shared files that nothing provides on this host: not on the server (shared or
    old layout), not in the package; the auth key is always provided (pushed)."""
    return [
        path
        for path in declared
        if path != AUTH_KEY
        and path not in held.shared
        and path not in held.legacy
        and path not in package_files
    ]


def auth_key_plan(
    key: str,
    package_files: Mapping[str, str],
    hosts: Mapping[str, HostFiles],
    setting: Secret | None,
) -> tuple[str, Secret | None]:
    """How the hosts of a run get one and the same auth key.

    Returns ``(source, key)``: ``key`` is what to push to the hosts that lack one (None: the
    package seeds it, or every host has it, or the holders' key must be read from a holder).
    ``source`` is ``"package"``, ``"hosts"``, ``"setting"`` or ``"generated"``. Raises
    ConfigError, before anything changes, when the hosts (or the package, or the setting)
    disagree: a password hashed on one host would not verify on another."""
    held = {name: h.auth_key_sha256 for name, h in sorted(hosts.items()) if h.auth_key_sha256}
    digests = set(held.values())
    if len(digests) > 1:
        listed = ", ".join(f"{name} {digest[:12]}" for name, digest in held.items())
        raise ConfigError(
            f"{key}: {AUTH_KEY} differs between hosts ({listed}): passwords hashed on one do "
            f"not verify on another; keep one (remove the others' shared/files/{AUTH_KEY}) "
            "or set auth_key"
        )
    wanted = (
        setting.sha256
        if setting
        else package_files.get(AUTH_KEY) or (next(iter(digests)) if digests else None)
    )
    if digests and wanted not in digests:
        origin = "auth_key" if setting else f"the package's {AUTH_KEY}"
        holders = ", ".join(held)
        raise ConfigError(
            f"{key}: {origin} differs from the key {holders} hold{'s' if len(held) == 1 else ''}:"
            " passwords hashed with it would stop verifying; remove it on the server first if "
            "you mean to replace it"
        )
    if setting:
        return "setting", setting
    if AUTH_KEY in package_files:
        return "package", None
    if digests:
        return "hosts", None
    return "generated", new_auth_key()


def recorded_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What a deploy records on the server for later rollbacks and restores (REVISION)."""
    keys = (
        "health_path", "health_status", "health_text", "hooks", "keep_releases",
        "keep_backups", "maintenance", "notice_seconds", "notice_message", "down_message",
        "retry_after",
    )  # fmt: skip
    return {k: settings[k] for k in keys if k in settings}
