"""Every check of a data value: bad input fails on the controller, before any host is touched.

Each check raises :class:`ConfigError` with one line naming the data key, the bad value and
what was expected. Patterns are matched whole with ``re.fullmatch`` (``$`` alone would also
match before a trailing newline: ``"root\\n"`` would pass).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import PyinfraError

from ..formats import DATA_DIRS

UNIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
APP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+-]*")
SERVER_NAME = re.compile(r"(_|[A-Za-z0-9*.-]+)( [A-Za-z0-9*.-]+)*")
BODY_SIZE = re.compile(r"[0-9]+[kKmMgG]?")
SHA256 = re.compile(r"[0-9a-f]{64}")
HEALTH_PATH = re.compile(r"/[A-Za-z0-9_./?=&%-]*")
# a path inside an app, for shared files
SHARED_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)*")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
MAX_MESSAGE = 2000


class ConfigError(PyinfraError):
    """Bad host data. pyinfra's CLI prints it as one line and exits non-zero."""


def as_bool(key: str, value: Any) -> bool:
    """Data given with ``--data key=value`` arrives as a string: accept the usual words."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def as_int(key: str, value: Any, low: int, high: int) -> int:
    """A whole number (or its text) within ``low``..``high``."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if not low <= number <= high:
        raise ConfigError(f"{key}: {number} is out of range {low}-{high}")
    return number


def as_port(key: str, value: Any) -> int:
    """A TCP port."""
    return as_int(key, value, 1, 65535)


def as_match(key: str, value: Any, pattern: re.Pattern[str], what: str) -> str:
    """A text the whole of which matches ``pattern``."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{key}: expected {what}, got {value!r}")
    return value


def as_unix_name(key: str, value: Any) -> str:
    """A user or group name."""
    return as_match(key, value, UNIX_NAME, "a user or group name like www-data")


def as_app_name(key: str, value: Any) -> str:
    """A web2py app name (a folder under ``applications/``)."""
    return as_match(key, value, APP_NAME, "a web2py app name (letters, digits, _)")


def required_app_name(key: str, value: Any) -> str:
    """The app a run is about: required, and an app name."""
    if not value:
        raise ConfigError(f"{key}: required, e.g. --data {key}=notes")
    return as_app_name(key, value)


def as_app_names(key: str, value: Any) -> tuple[str, ...]:
    """App names: a list, or ``"a,b"`` as ``--data`` gives it."""
    names = value or ()
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    return tuple(as_app_name(key, n) for n in names)


def as_remote_path(key: str, value: Any) -> str:
    """An absolute path on the server, without ``..`` nor a trailing slash."""
    path = as_match(key, value, SAFE_PATH, "an absolute path of letters, digits and ._/+-")
    if "/../" in path + "/" or path.rstrip("/") == "":
        raise ConfigError(f"{key}: expected an absolute path without '..', got {value!r}")
    return path.rstrip("/")


# Folders anyone may write in: a root-only folder of ours there could be pre-empted by a link or a
# folder of someone else's, and /tmp is cleaned behind our back.
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/shm", "/run/lock")


def as_run_dir(key: str, value: Any) -> str:
    """uWSGI's socket and master FIFO: a folder of its own under /run (systemd's
    RuntimeDirectory=, made afresh at every start), never /run itself or a shared one."""
    path = as_remote_path(key, value)
    parts = path.split("/")
    if len(parts) != 3 or parts[1] != "run" or path in SHARED_TMP:
        raise ConfigError(f"{key}: expected a folder right under /run (/run/web2py), got {path!r}")
    return path


def as_cache_dir(key: str, value: Any) -> str:
    """Root's uploads (zips, packages, staged secrets; 0700): never in a world-writable folder."""
    path = as_remote_path(key, value)
    if any(path == tmp or path.startswith(tmp + "/") for tmp in SHARED_TMP) or path in (
        "/run", "/var", "/var/cache", "/home", "/srv",
    ):  # fmt: skip
        raise ConfigError(f"{key}: expected a folder of its own, not in /tmp, got {path!r}")
    return path


def as_local_file(key: str, value: Any) -> Path:
    """A file on the controller (``~`` expanded)."""
    if not isinstance(value, (str, Path)) or not str(value):
        raise ConfigError(f"{key}: expected a file path on the controller, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}: no such file on the controller: {value}")
    return path


def as_sha256(key: str, value: Any) -> str | None:
    """64 hex digits (lowercased), or None when not given."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not SHA256.fullmatch(value.strip().lower()):
        raise ConfigError(f"{key}: expected 64 hexadecimal digits, got {value!r}")
    return value.strip().lower()


def as_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def as_file_name(key: str, value: Any, what: str) -> str:
    """A plain file name (no ``/``), e.g. a backup's."""
    if "/" in str(value):
        raise ConfigError(f"{key}: {what}, got {value!r}")
    return str(value)


def as_json_mapping(key: str, value: Any) -> Any:
    """A mapping given with ``--data key=...`` that pyinfra could not parse as JSON arrives as
    text: parse it here (the caller checks it is a mapping)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as error:
            raise ConfigError(f"{key}: not valid JSON: {error}") from None
    return value


def as_patterns(key: str, value: Any) -> tuple[str, ...]:
    """Glob patterns: a list of texts, or one."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of glob patterns, got {value!r}")
    return tuple(value)


def as_hooks(key: str, value: Any, stages: tuple[str, ...]) -> str:
    """``{stage: [command, ...]}`` as sorted JSON (what the release tool takes)."""
    if not value:
        return "{}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected {{stage: [command, ...]}}, got {value!r}")
    for stage, commands in value.items():
        if stage not in stages:
            raise ConfigError(f"{key}: unknown stage {stage!r} (stages: {', '.join(stages)})")
        if not isinstance(commands, list) or not all(_is_hook(c) for c in commands):
            raise ConfigError(
                f"{key}[{stage!r}]: expected a list of shell commands (each a string, run as the "
                'web2py user, or {"run": "command", "as": "root"})'
            )
    return json.dumps(dict(value), sort_keys=True)


def _is_hook(hook: Any) -> bool:
    if isinstance(hook, str):
        return bool(hook.strip())
    return (
        isinstance(hook, Mapping)
        and set(hook) == {"run", "as"}
        and hook["as"] == "root"
        and isinstance(hook["run"], str)
        and bool(hook["run"].strip())
    )


def as_shared_paths(key: str, value: Any) -> tuple[str, ...]:
    """Paths inside an app (shared files): plain, relative, outside the data folders."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of paths in the app, got {value!r}")
    for path in value:
        if not SHARED_PATH.fullmatch(path) or ".." in path.split("/"):
            raise ConfigError(f"{key}: {path!r} is not a plain relative path in the app")
        if path.split("/", 1)[0] in DATA_DIRS or "/" not in path and path in DATA_DIRS:
            raise ConfigError(f"{key}: {path!r} is in a data folder, which is shared already")
    return tuple(dict.fromkeys(value))


def as_text(key: str, value: Any, default: str) -> str:
    """A message shown to people (plain text, at most ``MAX_MESSAGE`` characters); ``default``
    when not given."""
    if value in (None, ""):
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a text, got {value!r}")
    text = value.strip().replace("\r\n", "\n")
    if not text:
        raise ConfigError(f"{key}: the text is blank")
    if len(text) > MAX_MESSAGE:
        raise ConfigError(f"{key}: {len(text)} characters, at most {MAX_MESSAGE}")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise ConfigError(f"{key}: control characters are not allowed, got {value!r}")
    return text


def as_networks(key: str, value: Any) -> tuple[str, ...]:
    """IP addresses and CIDR networks (v4 or v6), normalized, deduplicated and sorted."""
    if value in (None, "", [], ()):
        return ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of IP addresses or networks, got {value!r}")
    networks = set()
    for item in value:
        try:
            networks.add(ipaddress.ip_network(item.strip(), strict=True))
        except ValueError as error:
            hint = ""
            if "host bits set" in str(error):
                hint = f" (the network is {ipaddress.ip_network(item.strip(), strict=False)})"
            raise ConfigError(f"{key}: {item!r} is not an IP address or network{hint}") from None
    return tuple(
        str(n) for n in sorted(networks, key=lambda n: (n.version, n.network_address, n.prefixlen))
    )
