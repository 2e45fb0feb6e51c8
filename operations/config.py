"""Validation of host data: bad input fails on the controller, before any host is touched.

Every check raises :class:`ConfigError` with one line naming the data key, the bad value and
what was expected. Deploy files call these at prepare time, so pyinfra aborts the whole run
(on every host) before executing a single operation.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import PyinfraError

UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
APP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")
SERVER_NAME = re.compile(r"^(_|[A-Za-z0-9*.-]+)( [A-Za-z0-9*.-]+)*$")
BODY_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(PyinfraError):
    """Bad host data. pyinfra's CLI prints it as one line and exits non-zero."""


def sha256_of_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def as_bool(key: str, value: Any) -> bool:
    """Data given with ``--data key=value`` arrives as a string: accept the usual words."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def as_int(key: str, value: Any, low: int, high: int) -> int:
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
    return as_int(key, value, 1, 65535)


def as_match(key: str, value: Any, pattern: re.Pattern[str], what: str) -> str:
    # fullmatch: `$` alone also matches before a trailing newline ("root\n" would pass)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{key}: expected {what}, got {value!r}")
    return value


def as_unix_name(key: str, value: Any) -> str:
    return as_match(key, value, UNIX_NAME, "a user or group name like www-data")


def as_app_name(key: str, value: Any) -> str:
    return as_match(key, value, APP_NAME, "a web2py app name (letters, digits, _)")


def as_remote_path(key: str, value: Any) -> str:
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
    if not isinstance(value, (str, Path)) or not str(value):
        raise ConfigError(f"{key}: expected a file path on the controller, got {value!r}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}: no such file on the controller: {value}")
    return path


def as_sha256(key: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not SHA256.fullmatch(value.strip().lower()):
        raise ConfigError(f"{key}: expected 64 hexadecimal digits, got {value!r}")
    return value.strip().lower()


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Source:
    """Where web2py comes from: a URL fetched by each server, or a zip on the controller."""

    url: str | None
    local_path: Path | None
    sha256: str | None  # always known for a local zip; optional for a URL
    version: tuple[int, int] | None = None  # (major, minor) from a local zip's VERSION


WEB2PY_VERSION = re.compile(r"Version (\d+)\.(\d+)\.")
# web2py 2.x imports modules Python 3.12 removed (imp, cgi...): it needs 3.x there.
PYTHON_FOR_WEB2PY_2 = (3, 11)


def web2py_zip_version(key: str, path: Path) -> tuple[int, int]:
    """(major, minor) of the web2py in a source zip, read from its ``web2py/VERSION``; refuses a
    file that is not a web2py source zip (checked before anything is uploaded)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [
                n for n in ("web2py/VERSION", "web2py/handlers/wsgihandler.py") if n not in names
            ]
            if missing:
                raise ConfigError(f"{key}: {path} is not a web2py source zip (no {missing[0]})")
            text = zf.read("web2py/VERSION").decode(errors="replace")
            unsafe = unsafe_zip_entry(zf)
            if unsafe:
                raise ConfigError(f"{key}: {path}: unsafe entry {unsafe}: refused")
    except (zipfile.BadZipFile, OSError) as error:
        raise ConfigError(f"{key}: {path} is not a web2py source zip ({error})") from None
    found = WEB2PY_VERSION.search(text)
    if not found:
        raise ConfigError(f"{key}: {path}: web2py/VERSION says {text.strip()[:80]!r}, no version")
    return int(found.group(1)), int(found.group(2))


def check_python_for_web2py(version: tuple[int, int], python: tuple[int, int] | None) -> str:
    """Why this web2py cannot run on that Python, or "" (unknown Python: "", checked later on
    the server)."""
    if python and version[0] < 3 and python > PYTHON_FOR_WEB2PY_2:
        return (
            f"web2py {version[0]}.{version[1]} cannot run on Python {python[0]}.{python[1]} "
            "(it needs modules Python 3.12 removed): use web2py 3.x on this server"
        )
    return ""


def unsafe_zip_entry(zf: zipfile.ZipFile) -> str | None:
    """Why a web2py zip is unsafe to extract (its first bad entry), or None. The server checks
    the same (operations/scripts/install-source.py); here a local zip is refused before upload."""
    for info in zf.infolist():
        name, kind = info.filename, stat.S_IFMT(info.external_attr >> 16)
        if info.create_system == 3 and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            return f"{name!r} is {'a link' if kind == stat.S_IFLNK else 'a special file'}"
        rel = name.removeprefix("web2py/").rstrip("/") if info.is_dir() else name[7:]
        if not name.startswith("web2py/") or "\\" in name:
            return f"{name!r} is outside web2py/"
        if rel and any(part in ("", ".", "..") for part in rel.split("/")):
            return f"{name!r} has an empty, '.' or '..' part"
    return None


def check_source(source: Any, expected_sha256: Any) -> Source:
    expected = as_sha256("web2py_sha256", expected_sha256)
    if isinstance(source, str) and is_url(source):
        # without a checksum, only TLS stands between the server and a swapped zip
        if not expected and not source.startswith("https://"):
            raise ConfigError(
                f"web2py_source: {source} is not https://: give web2py_sha256 or an https URL"
            )
        return Source(url=source, local_path=None, sha256=expected)
    path = as_local_file("web2py_source", source)
    actual = sha256_of_file(path)
    if expected and actual != expected:
        raise ConfigError(
            f"web2py_sha256: {path} has sha256 {actual}, expected {expected}",
        )
    version = web2py_zip_version("web2py_source", path)
    return Source(url=None, local_path=path, sha256=actual, version=version)


def check_app_folders(apps: Any) -> dict[str, Path]:
    if apps in (None, {}):
        return {}
    if isinstance(apps, str):  # --data web2py_apps=... that pyinfra could not parse as JSON
        try:
            apps = json.loads(apps)
        except ValueError as error:
            raise ConfigError(f"web2py_apps: not valid JSON: {error}") from None
    if not isinstance(apps, Mapping):
        raise ConfigError(f"web2py_apps: expected a mapping of app name to folder, got {apps!r}")
    checked: dict[str, Path] = {}
    for name, folder in apps.items():
        as_app_name("web2py_apps", name)
        path = Path(str(folder)).expanduser()
        if not path.is_dir():
            raise ConfigError(f"web2py_apps[{name!r}]: no such folder on the controller: {folder}")
        if not (path / "controllers").is_dir():
            raise ConfigError(
                f"web2py_apps[{name!r}]: {folder} is not a web2py app (no controllers/ folder)",
            )
        checked[name] = path
    return checked


@dataclass(frozen=True)
class InstallConfig:
    """Everything install_web2py needs, checked. Built by :func:`install_config`."""

    source: Source
    root: str
    user: str
    group: str
    admin_password: str | None = field(repr=False)
    admin_port: int
    apps: dict[str, Path]
    schedulers: tuple[str, ...]
    scheduler_stop_timeout: int
    server_name: str
    http_port: int
    https_port: int
    https_redirect: bool
    hsts_seconds: int  # Strict-Transport-Security max-age on HTTPS answers (0: none)
    ipv6: bool
    client_max_body_size: str
    tls_cert: Path | None
    tls_key: Path | None
    tls_key_bits: int
    tls_days: int
    uwsgi_processes: int
    uwsgi_harakiri: int
    uwsgi_max_requests: int
    uwsgi_listen: int
    run_dir: str
    config_dir: str
    cache_dir: str


def install_config(data: Any, admin_password: str | None = None) -> InstallConfig:
    """Check install_web2py's data (``host.data``); raise ConfigError on the first bad key."""
    get = data.get
    tls_cert, tls_key = get("tls_cert"), get("tls_key")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("tls_cert and tls_key: give both (your own certificate) or neither")
    http_port = as_port("http_port", get("http_port", 80))
    https_port = as_port("https_port", get("https_port", 443))
    if http_port == https_port:
        raise ConfigError(f"http_port and https_port: both are {http_port}")
    schedulers = get("web2py_schedulers") or ()
    if isinstance(schedulers, str):
        schedulers = [s for s in schedulers.split(",") if s]
    return InstallConfig(
        source=check_source(get("web2py_source"), get("web2py_sha256")),
        root=as_remote_path("web2py_root", get("web2py_root", "/home/www-data/web2py")),
        user=as_unix_name("web2py_user", get("web2py_user", "www-data")),
        group=as_unix_name("web2py_group", get("web2py_group", "www-data")),
        admin_password=admin_password,
        admin_port=https_port,
        apps=check_app_folders(get("web2py_apps")),
        schedulers=tuple(as_app_name("web2py_schedulers", s) for s in schedulers),
        scheduler_stop_timeout=as_int(
            "web2py_scheduler_stop_timeout", get("web2py_scheduler_stop_timeout", 60), 1, 86400
        ),
        server_name=as_match(
            "nginx_server_name",
            get("nginx_server_name", "_"),
            SERVER_NAME,
            "host names or _",
        ),
        http_port=http_port,
        https_port=https_port,
        https_redirect=as_bool("https_redirect", get("https_redirect", False)),
        hsts_seconds=as_int("nginx_hsts_seconds", get("nginx_hsts_seconds", 0), 0, 63072000),
        ipv6=as_bool("nginx_ipv6", get("nginx_ipv6", True)),
        client_max_body_size=as_match(
            "nginx_client_max_body_size",
            str(get("nginx_client_max_body_size", "10m")),
            BODY_SIZE,
            "a size like 10m",
        ),
        tls_cert=as_local_file("tls_cert", tls_cert) if tls_cert else None,
        tls_key=as_local_file("tls_key", tls_key) if tls_key else None,
        tls_key_bits=as_int("tls_key_bits", get("tls_key_bits", 2048), 2048, 16384),
        tls_days=as_int("tls_days", get("tls_days", 3650), 1, 36500),
        uwsgi_processes=as_int("uwsgi_processes", get("uwsgi_processes", 4), 1, 512),
        uwsgi_harakiri=as_int("uwsgi_harakiri", get("uwsgi_harakiri", 60), 0, 86400),
        uwsgi_max_requests=as_int("uwsgi_max_requests", get("uwsgi_max_requests", 5000), 0, 10**7),
        uwsgi_listen=as_int("uwsgi_listen", get("uwsgi_listen", 1024), 16, 65535),
        run_dir=as_run_dir("web2py_run_dir", get("web2py_run_dir", "/run/web2py")),
        config_dir=as_remote_path("web2py_config_dir", get("web2py_config_dir", "/etc/web2py")),
        cache_dir=as_cache_dir(
            "web2py_cache_dir", get("web2py_cache_dir", "/var/cache/pyinfra-web2py")
        ),
    )
