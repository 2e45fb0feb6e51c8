"""Selective, reproducible packaging of a web2py app folder on the controller.

``code`` mode ships what a web2py app *is* (models, controllers, modules, views at any depth,
static, languages, cron, private, top-level .py/ABOUT/LICENSE/routes files) and never its runtime
data; ``full`` mode ships everything but runtime scratch (sessions, errors, cache) and junk.

``private/`` is code and configuration in web2py apps (the welcome scaffold reads
``private/appconfig.ini``, the examples app keeps its pages in ``private/content/``): it ships
with every release. The few files that must live on the server instead (the app's ``shared_files``,
e.g. ``private/auth.key``) are seeded from the package once and linked into each release there.

The archive is reproducible: entries sorted, timestamps, owners and modes fixed, gzip header
without a name or time. Same files in, same bytes and same sha256 out, so a server can tell
"nothing changed" from one hash.
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..formats import (
    DELTA,
    MANIFEST,
    delta_info,
    manifest_text,
    sha256_bytes,
    sha256_file,
)

CODE_DIRS = (
    "models", "controllers", "modules", "views", "static", "languages", "cron", "private",
)  # fmt: skip
CODE_TOP_FILES = ("*.py", "ABOUT", "LICENSE", "routes.*", "__init__.py", "VERSION")
# Runtime data (formats.DATA_DIRS) never ships in code mode; of it, these are scratch, never
# shipped at all.
RUNTIME_DIRS = ("sessions", "errors", "cache")
JUNK_DIRS = (".git", ".hg", ".svn", ".bzr", "__pycache__", "compiled", ".idea", ".vscode")
JUNK_FILES = ("*~", "*.bak", "#*", ".#*", "*.pyc", "*.pyo", "*.swp", ".DS_Store")
FIXED_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z


class PackagingError(ValueError):
    """An app folder that cannot be packaged."""


@dataclass(frozen=True)
class Package:
    """A built package: the ``.tar.gz``, its sha256, and the sha256 of each file in it."""

    path: Path
    sha256: str
    files: dict[str, str]  # relative path -> sha256 of its bytes


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def select_files(
    app_dir: Path,
    mode: str = "code",
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> list[str]:
    """Relative POSIX paths of the files to ship, sorted.

    ``include``/``exclude`` are glob patterns on the relative path (``exclude`` wins).
    """
    if mode not in ("code", "full"):
        raise PackagingError(f"package_mode: expected 'code' or 'full', got {mode!r}")
    if not app_dir.is_dir():
        raise PackagingError(f"no such app folder: {app_dir}")
    include, exclude = tuple(include), tuple(exclude)
    selected = []
    for path in _walk(app_dir):
        rel = PurePosixPath(path.relative_to(app_dir).as_posix())
        parts = rel.parts
        if any(part in JUNK_DIRS for part in parts[:-1]) or _matches(rel.name, JUNK_FILES):
            continue
        if _matches(str(rel), exclude):
            continue
        top = parts[0]
        if mode == "code":
            wanted = (len(parts) > 1 and top in CODE_DIRS) or (
                len(parts) == 1 and _matches(top, CODE_TOP_FILES)
            )
        else:
            wanted = not (len(parts) > 1 and top in RUNTIME_DIRS)
        if wanted or _matches(str(rel), include):
            selected.append(str(rel))
    return sorted(selected)


def _walk(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def build_package(
    app_dir: Path,
    out_path: Path,
    mode: str = "code",
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> Package:
    """
    Selective packaging: write a reproducible ``.tar.gz`` of an app's selected files
    (:func:`select_files`) plus a sha256 manifest of them (``formats.MANIFEST``).

    + app_dir: the app folder on the controller
    + out_path: where to write the package
    + mode: ``code`` or ``full`` (see the module's docstring)
    + include: extra glob patterns on paths inside the app
    + exclude: glob patterns left out (they win over ``include``)

    **Example:**

    .. code:: python

        package = build_package(Path("apps/shop"), Path("build/shop.tar.gz"), "code")
        package.sha256, package.files["controllers/default.py"]
    """
    names = select_files(app_dir, mode, include, exclude)
    if not any(name.startswith("controllers/") for name in names):
        raise PackagingError(f"{app_dir} is not a web2py app: no controllers/ to package")
    files: dict[str, str] = {}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            data = (app_dir / name).read_bytes()
            files[name] = sha256_bytes(data)
            _add(tar, name, data)
        _add(tar, MANIFEST, manifest_text(files).encode())
    _write_gzip(out_path, raw.getvalue())
    digest = sha256_file(out_path)
    return Package(path=out_path, sha256=digest, files=files)


@dataclass(frozen=True)
class Delta:
    """What a server that runs the release ``base`` (its manifest) needs to rebuild a package:
    the added and changed files, the removed names, and both manifests' sha256 to check the
    result by (the release tool's deploy --delta-sha256)."""

    path: Path
    sha256: str
    changed: tuple[str, ...]
    removed: tuple[str, ...]


def build_delta(
    package: Package, base_files: dict[str, str], out_path: Path, always: Iterable[str] = ()
) -> Delta:
    """Write a reproducible ``.tar.gz`` of the package's files that ``base_files`` lacks or
    holds with other bytes, and a JSON description (``formats.DELTA``). Names in ``always``
    travel even when unchanged: the base release holds something else at that path (a link
    to a shared file, a rendered config), so the server cannot take them from there."""
    always = set(always)
    changed = sorted(
        name
        for name, digest in package.files.items()
        if base_files.get(name) != digest or name in always
    )
    removed = sorted(set(base_files) - set(package.files))
    info = delta_info(base_files, package.files, changed, removed)
    raw = io.BytesIO()
    with (
        tarfile.open(package.path) as source,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in changed:
            member = source.extractfile(name)
            data = member.read() if member else b""
            if sha256_bytes(data) != package.files[name]:
                raise PackagingError(f"{package.path}: {name} does not match its manifest")
            _add(tar, name, data)
        _add(tar, DELTA, json.dumps(info, sort_keys=True).encode())
    _write_gzip(out_path, raw.getvalue())
    digest = sha256_file(out_path)
    return Delta(path=out_path, sha256=digest, changed=tuple(changed), removed=tuple(removed))


def _write_gzip(out_path: Path, data: bytes) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(out_path, "wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz,
    ):
        gz.write(data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))
