"""install_web2py's settings: the web2py source, nginx, TLS, uWSGI and the admin password."""

from __future__ import annotations

import getpass
import os
import re
import stat
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..formats import sha256_file
from .defaults import value
from .layout import Layout, layout_settings
from .validators import (
    BODY_SIZE,
    SERVER_NAME,
    ConfigError,
    as_app_name,
    as_app_names,
    as_bool,
    as_int,
    as_json_mapping,
    as_local_file,
    as_match,
    as_port,
    as_sha256,
)

ADMIN_PASSWORD_ENV = "WEB2PY_ADMIN_PASSWORD"
WEB2PY_VERSION = re.compile(r"Version (\d+)\.(\d+)\.")
# web2py 2.x imports modules Python 3.12 removed (imp, cgi...): it needs 3.x there.
PYTHON_FOR_WEB2PY_2 = (3, 11)
_prompted: dict[str, str] = {}


def is_url(source: str) -> bool:
    """True for a source each server downloads."""
    return source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Source:
    """Where web2py comes from: a URL fetched by each server, or a zip on the controller."""

    url: str | None
    local_path: Path | None
    sha256: str | None  # always known for a local zip; optional for a URL
    version: tuple[int, int] | None  # (major, minor) from a local zip's VERSION


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
    """``web2py_source`` and ``web2py_sha256``: a local zip is hashed and its version read."""
    expected = as_sha256("web2py_sha256", expected_sha256)
    if isinstance(source, str) and is_url(source):
        # without a checksum, only TLS stands between the server and a swapped zip
        if not expected and not source.startswith("https://"):
            raise ConfigError(
                f"web2py_source: {source} is not https://: give web2py_sha256 or an https URL"
            )
        return Source(url=source, local_path=None, sha256=expected, version=None)
    path = as_local_file("web2py_source", source)
    actual = sha256_file(path)
    if expected and actual != expected:
        raise ConfigError(
            f"web2py_sha256: {path} has sha256 {actual}, expected {expected}",
        )
    version = web2py_zip_version("web2py_source", path)
    return Source(url=None, local_path=path, sha256=actual, version=version)


def check_app_folders(apps: Any) -> dict[str, Path]:
    """``web2py_apps``: {app name: a web2py app folder on the controller}."""
    if apps in (None, {}):
        return {}
    apps = as_json_mapping("web2py_apps", apps)
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
class InstallSettings(Layout):
    """Everything install_web2py needs, checked. Built by :func:`install_settings`."""

    source: Source
    admin_password: str | None = field(repr=False)
    admin_port: int
    apps: dict[str, Path]
    schedulers: tuple[str, ...]
    scheduler_stop_timeout: int
    server_name: str
    http_port: int
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


def install_settings(data: Any, admin_password: str | None = None) -> InstallSettings:
    """Check install_web2py's data (``host.data``); raise ConfigError on the first bad key."""
    tls_cert, tls_key = value(data, "tls_cert"), value(data, "tls_key")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("tls_cert and tls_key: give both (your own certificate) or neither")
    http_port = as_port("http_port", value(data, "http_port"))
    https_port = as_port("https_port", value(data, "https_port"))
    if http_port == https_port:
        raise ConfigError(f"http_port and https_port: both are {http_port}")
    layout = layout_settings(data)
    return InstallSettings(
        **layout.layout(),
        source=check_source(value(data, "web2py_source"), value(data, "web2py_sha256")),
        admin_password=admin_password,
        admin_port=layout.https_port,
        apps=check_app_folders(value(data, "web2py_apps")),
        schedulers=as_app_names("web2py_schedulers", value(data, "web2py_schedulers")),
        scheduler_stop_timeout=as_int(
            "web2py_scheduler_stop_timeout", value(data, "web2py_scheduler_stop_timeout"), 1, 86400
        ),
        server_name=as_match(
            "nginx_server_name", value(data, "nginx_server_name"), SERVER_NAME, "host names or _"
        ),
        http_port=http_port,
        https_redirect=as_bool("https_redirect", value(data, "https_redirect")),
        hsts_seconds=as_int("nginx_hsts_seconds", value(data, "nginx_hsts_seconds"), 0, 63072000),
        ipv6=as_bool("nginx_ipv6", value(data, "nginx_ipv6")),
        client_max_body_size=as_match(
            "nginx_client_max_body_size",
            str(value(data, "nginx_client_max_body_size")),
            BODY_SIZE,
            "a size like 10m",
        ),
        tls_cert=as_local_file("tls_cert", tls_cert) if tls_cert else None,
        tls_key=as_local_file("tls_key", tls_key) if tls_key else None,
        tls_key_bits=as_int("tls_key_bits", value(data, "tls_key_bits"), 2048, 16384),
        tls_days=as_int("tls_days", value(data, "tls_days"), 1, 36500),
        uwsgi_processes=as_int("uwsgi_processes", value(data, "uwsgi_processes"), 1, 512),
        uwsgi_harakiri=as_int("uwsgi_harakiri", value(data, "uwsgi_harakiri"), 0, 86400),
        uwsgi_max_requests=as_int(
            "uwsgi_max_requests", value(data, "uwsgi_max_requests"), 0, 10**7
        ),
        uwsgi_listen=as_int("uwsgi_listen", value(data, "uwsgi_listen"), 16, 65535),
    )


def admin_password(data: Any) -> str | None:
    """The web2py admin password: data, else $WEB2PY_ADMIN_PASSWORD, else a prompt on a TTY.

    ``None`` (no TTY, nothing given) leaves web2py's admin app disabled, as web2py itself does
    when there is no parameters file. Passing it with ``--data`` would put it in the process
    list of the controller: use the environment variable or the prompt instead. Asked once
    per run, whatever the number of hosts.
    """
    given = value(data, "web2py_admin_password") or os.environ.get(ADMIN_PASSWORD_ENV)
    if given:
        if not isinstance(given, str):
            raise ConfigError("web2py_admin_password: expected a string")
        return given
    if "value" not in _prompted and sys.stdin.isatty():
        first = getpass.getpass("web2py admin password (empty: leave admin disabled): ")
        if first and getpass.getpass("again: ") != first:
            raise ConfigError("web2py_admin_password: the two entries differ")
        _prompted["value"] = first
    return _prompted.get("value") or None
