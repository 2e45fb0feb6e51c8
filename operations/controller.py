"""Controller-side work done once per run, whatever the number of hosts.

Deploy files are executed once per host (and pyinfra may evaluate operations twice), so
anything expensive or interactive lives here behind a cache keyed by its inputs.
"""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .config import ConfigError
from .packaging import Delta, Package, build_delta, build_package, manifest_sha256

ADMIN_PASSWORD_ENV = "WEB2PY_ADMIN_PASSWORD"
_prompted: dict[str, str] = {}
_packages: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Package] = {}
_deltas: dict[tuple[str, str], Delta | None] = {}
_build_dir = Path(tempfile.mkdtemp(prefix="pyinfra-web2py-"))


def admin_password(data: Any) -> str | None:
    """The web2py admin password: data, else $WEB2PY_ADMIN_PASSWORD, else a prompt on a TTY.

    ``None`` (no TTY, nothing given) leaves web2py's admin app disabled, as web2py itself does
    when there is no parameters file. Passing it with ``--data`` would put it in the process
    list of the controller: use the environment variable or the prompt instead.
    """
    value = data.get("web2py_admin_password") or os.environ.get(ADMIN_PASSWORD_ENV)
    if value:
        if not isinstance(value, str):
            raise ConfigError("web2py_admin_password: expected a string")
        return value
    if "value" not in _prompted and sys.stdin.isatty():
        first = getpass.getpass("web2py admin password (empty: leave admin disabled): ")
        if first and getpass.getpass("again: ") != first:
            raise ConfigError("web2py_admin_password: the two entries differ")
        _prompted["value"] = first
    return _prompted.get("value") or None


def app_package(
    app_dir: Path,
    mode: str = "code",
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> Package:
    """Build (once per run, whatever the number of hosts) the package of a local app folder."""
    key = (str(app_dir.resolve()), mode, include, exclude)
    if key not in _packages:
        out = _build_dir / f"{app_dir.name}-{mode}-{len(_packages)}.tar.gz"
        _packages[key] = build_package(app_dir, out, mode=mode, include=include, exclude=exclude)
    return _packages[key]


def app_delta(package: Package, live_files: dict[str, str] | None) -> Delta | None:
    """The delta from a host's live release to ``package``, built once per distinct live
    release; None when a whole package is as good (no live manifest, or not smaller)."""
    if not live_files:
        return None
    key = (package.sha256, manifest_sha256(live_files))
    if key not in _deltas:
        out = _build_dir / f"{package.path.stem}-delta-{len(_deltas)}.tar.gz"
        delta = build_delta(package, live_files, out)
        smaller = delta.path.stat().st_size < package.path.stat().st_size
        _deltas[key] = delta if smaller else None
    return _deltas[key]
