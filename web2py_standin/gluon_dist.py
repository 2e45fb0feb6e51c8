"""Build a web2py TEST DISTRIBUTION from web2py's real framework code on PyPI.

``python -m web2py_standin build --framework gluon OUT.zip`` writes a zip shaped like the
official ``web2py_src.zip`` (top folder ``web2py/``) whose framework is web2py's own:

* from the ``web2py-gluon`` 2.26.1 wheel: ``gluon/``, ``web2py.py``, ``handlers/`` (with the
  real ``wsgihandler.py``), ``scripts/``, ``examples/``, ``extras/``, ``anyserver.py``... and
  web2py's ``LICENSE``;
* pydal under ``gluon/packages/dal/pydal`` and yatl under ``gluon/packages/yatl/yatl``, where
  web2py's ``gluon/__init__.py`` looks for them first (as in the official zip);

and whose remaining parts are ours and say so: ``VERSION``, ``ABOUT``, ``README.md``,
``routes.example.py``, the ``welcome`` and ``admin`` apps (``gluon_apps/``; the wheel carries only
some of their ``.py`` files, no views nor static files) and the build-time patches in ``PATCHES``.

The wheels are pinned by sha256 in ``gluon-framework.lock``, fetched once with ``pip download
--require-hashes`` into a cache folder and checked again on every build. The zip is reproducible
like the stand-in's: same wheels and sources, same bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from web2py_standin import SKIP_DIRS, SKIP_FILES, SKIP_SUFFIXES, write_reproducible_zip

__all__ = [
    "APPS",
    "DEFAULT_WHEEL_CACHE",
    "GLUON_DIST_VERSION",
    "LOCK",
    "PATCHES",
    "Patch",
    "Pin",
    "build_gluon_zip",
    "fetch_wheels",
    "gluon_entries",
    "read_lock",
]

HERE = Path(__file__).resolve().parent
LOCK = HERE / "gluon-framework.lock"
APPS = HERE / "gluon_apps"
DEFAULT_WHEEL_CACHE = HERE.parent / "build" / "wheels"  # /build/ is gitignored
PIP_TIMEOUT = 600  # seconds for the one-time download of ~1.7 MB of wheels

# The last token is what gluon reads: gluon.main takes VERSION's last whitespace-separated word
# as web2py_version and fileutils.parse_version parses it (semver "+timestamp.Y.m.d.H.M.S"), so
# the label goes first. The timestamp is the zip's fixed build time, not web2py's release time.
GLUON_DIST_VERSION = (
    "TEST DISTRIBUTION (web2py's gluon 2.26.1 from PyPI with 2 build-time patches; VERSION and"
    " apps by pyinfra-web2py) Version 2.26.1-stable+timestamp.2020.01.01.00.00.00"
)

# Folders every bundled app gets (empty ones too), so that gluon, which creates the missing ones
# on an app's first request, never has to write in the app's code folders.
APP_DIRS = (
    "cache",
    "controllers",
    "cron",
    "databases",
    "errors",
    "languages",
    "models",
    "modules",
    "private",
    "sessions",
    "static",
    "uploads",
    "views",
)
# What the web2py-gluon wheel has that the zip does not take from it: its own metadata, and the
# partial apps (only .py files: no views, no static files, no appconfig.ini) ours replace.
WHEEL_SKIP_TOP = ("applications",)


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` of the lock file with its allowed sha256 digests."""

    name: str
    version: str
    sha256: tuple[str, ...]

    @property
    def wheel_prefix(self) -> str:
        """How this project's wheels are named: ``web2py_gluon-2.26.1-``."""
        return f"{re.sub(r'[-_.]+', '_', self.name).lower()}-{self.version}-"


@dataclass(frozen=True)
class Patch:
    """A change to one file of web2py's code, made openly at build time: ``old`` -> ``new``.

    It applies only to the exact file the pinned wheel holds (``original_sha256``), where ``old``
    occurs once: a different upstream file stops the build, so that someone looks at whether the
    patch is still needed. Every patch marks itself in the file it changes.
    """

    path: str  # inside web2py/
    original_sha256: str
    why: str
    old: str
    new: str

    def apply(self, original: bytes) -> bytes:
        digest = hashlib.sha256(original).hexdigest()
        if digest != self.original_sha256:
            raise RuntimeError(
                f"{self.path}: not the file this patch was written for (sha256 {digest}); "
                "review PATCHES in web2py_standin/gluon_dist.py"
            )
        text = original.decode("utf8")
        if text.count(self.old) != 1:
            raise RuntimeError(f"{self.path}: the text to patch is not there exactly once")
        return text.replace(self.old, self.new).encode("utf8")


_COMPAT_ORIGINAL = "from pydal._compat import *\n"
_QUEUE_TASK_ORIGINAL = """\
        rtn = db.scheduler_task.validate_and_insert(**kwargs)
        if not rtn.errors:
"""

PATCHES = (
    Patch(
        path="gluon/_compat.py",
        original_sha256="ae996c97e3ea493ad0ca0649ebba10e22428b2c9f32c46c31ca3136a1dc31cd4",
        why=(
            "gluon/_compat.py only re-exports pydal._compat, and the pinned pydal dropped "
            "FancyURLopener from it with its Python 2 support; gluon/contrib/autolinks.py "
            "(imported by gluon.tools: Auth, Mail, Crud...) imports that name, so without it "
            "`from gluon.tools import Auth` fails."
        ),
        old=_COMPAT_ORIGINAL,
        new=_COMPAT_ORIGINAL
        + """
# --- pyinfra-web2py build-time patch (TEST DISTRIBUTION; not in web2py 2.26.1) ---
# gluon.contrib.autolinks (imported by gluon.tools) and gluon.contrib.AuthorizeNet import
# FancyURLopener from here, and the pinned pydal's _compat no longer exports it.
try:
    from urllib.request import FancyURLopener
except ImportError:  # Python >= 3.14 removed the class: keep the imports, fail on use

    class FancyURLopener(object):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("urllib.request.FancyURLopener needs Python < 3.14")
""",
    ),
    Patch(
        path="gluon/scheduler.py",
        original_sha256="016eddbe3ffadf3edfff38b4d822af450bf095d9fcc0b98715c00e35bb9dd74f",
        why=(
            "Scheduler.queue_task reads `rtn.errors` and sets `rtn.uuid` on the result of "
            "validate_and_insert, which pydal 20221110.1 returned as a Row and 20230521.1 and "
            "the pinned 20260520.0 return as a plain dict: every queue_task call raised "
            "AttributeError. The dict is wrapped in gluon's Storage (a dict with attribute "
            "access), so callers get both rtn.id and rtn['id'] as before."
        ),
        old=_QUEUE_TASK_ORIGINAL,
        new=_QUEUE_TASK_ORIGINAL.replace(
            "        if not rtn.errors:\n",
            "        # --- pyinfra-web2py build-time patch (TEST DISTRIBUTION; not in web2py) ---\n"
            "        # newer pydal returns a plain dict here, and this code wants attributes\n"
            "        if isinstance(rtn, dict):\n"
            "            rtn = Storage(rtn)\n"
            "        if not rtn.errors:\n",
        ),
    ),
)

ABOUT = """\
TEST DISTRIBUTION of web2py, built by pyinfra-web2py for its tests (not an official web2py
release). The framework is web2py's own code as PyPI carries it: gluon/, web2py.py, handlers/,
scripts/... from the web2py-gluon 2.26.1 wheel, with pydal and yatl bundled under
gluon/packages/. VERSION, this file, README.md, routes.example.py and the welcome and admin apps
are written by pyinfra-web2py. Two files of gluon are patched at build time (gluon/_compat.py,
gluon/scheduler.py), each patch marked in its file; see README.md.

web2py is by Massimo Di Pierro and contributors, LGPLv3: see LICENSE.
"""

README = """\
# web2py — TEST DISTRIBUTION (built by pyinfra-web2py)

This is **not** an official web2py release. It is built for pyinfra-web2py's tests by
`python -m web2py_standin build --framework gluon OUT.zip`, because the official
`web2py_src.zip` cannot be downloaded where those tests run.

What is web2py's own code, unchanged, from PyPI (pinned by sha256):

* `gluon/`, `web2py.py`, `handlers/`, `scripts/`, `examples/`, `extras/`, `docs/`,
  `anyserver.py`, `fabfile.py`, `setup.py`, `setupbase.py`, `LICENSE`: the `web2py-gluon` 2.26.1
  wheel (which carries only `.py` files, and `LICENSE`);
* `gluon/packages/dal/pydal/`: pydal; `gluon/packages/yatl/yatl/`: yatl.

What pyinfra-web2py wrote: `VERSION`, `ABOUT`, this `README.md`, `routes.example.py`,
`applications/__init__.py`, `applications/welcome`, `applications/admin`.

What pyinfra-web2py changed in web2py's code (each change marked in its file), because the
bundled pydal is newer than gluon 2.26.1:

* `gluon/_compat.py`: defines `FancyURLopener`, which this pydal no longer exports and
  `gluon.tools` (through `gluon/contrib/autolinks.py`) imports;
* `gluon/scheduler.py`: `Scheduler.queue_task` wraps the plain dict this pydal's
  `validate_and_insert` returns in a `Storage`, as it reads `.errors` and sets `.uuid` on it.

Use it like web2py: copy `handlers/wsgihandler.py` to this folder for a WSGI server
(`module = wsgihandler:application`), `python3 web2py.py -S APP -M -R SCRIPT` to run a script with
an app's models, `python3 web2py.py -K APP` to run an app's scheduler.
"""

ROUTES_EXAMPLE = """\
# TEST DISTRIBUTION (pyinfra-web2py): copy to routes.py in the web2py root to change what "/"
# serves. web2py's own, complete examples are in examples/routes.parametric.example.py and
# examples/routes.patterns.example.py.

default_application = 'init'  # "/" serves this app (web2py falls back to welcome)
default_controller = 'default'
default_function = 'index'
"""


# --------------------------------------------------------------------------------- the wheels


def read_lock(lock: Path = LOCK) -> list[Pin]:
    """The pins of a pip requirements file in ``--require-hashes`` form."""
    text = re.sub(r"\\\n", " ", lock.read_text())  # join continuation lines
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, sep, version = requirement.partition("==")
        hashes = tuple(o.removeprefix("--hash=sha256:") for o in options if "sha256:" in o)
        if not sep or not hashes:
            raise ValueError(f"{lock}: {requirement}: want name==version with --hash=sha256:")
        pins.append(Pin(name, version, hashes))
    return pins


def _cached_wheel(pin: Pin, cache: Path) -> Path | None:
    """The cached wheel of ``pin`` whose bytes match one of its hashes, if any."""
    if not cache.is_dir():
        return None
    for path in sorted(cache.iterdir()):
        name = path.name.lower()
        if not (name.startswith(pin.wheel_prefix) and name.endswith(".whl")):
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() in pin.sha256:
            return path
    return None


def _pip_download(lock: Path, cache: Path) -> None:
    # Into a private folder first, then moved: a build running at the same time never sees a
    # half-written wheel in the cache (and each wheel is checked by hash before use anyway).
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--require-hashes",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--quiet",
                "-r",
                str(lock),
                "-d",
                tmp,
            ],
            check=True,
            timeout=PIP_TIMEOUT,
        )
        for wheel in Path(tmp).glob("*.whl"):
            os.replace(wheel, cache / wheel.name)


def fetch_wheels(cache: Path = DEFAULT_WHEEL_CACHE, lock: Path = LOCK) -> dict[str, Path]:
    """``{project name: wheel}`` for every pin of ``lock``, downloaded once into ``cache``."""
    pins = read_lock(lock)
    found = {pin.name: _cached_wheel(pin, cache) for pin in pins}
    if None in found.values():
        _pip_download(lock, cache)
        found = {pin.name: _cached_wheel(pin, cache) for pin in pins}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        raise RuntimeError(f"no wheel with the locked sha256 in {cache} for {', '.join(missing)}")
    return {name: path for name, path in found.items() if path is not None}


def _wheel_files(wheel: Path) -> dict[str, bytes]:
    """The files of a wheel (no directories, no compiled Python)."""
    files = {}
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if info.is_dir() or SKIP_DIRS & set(parts) or parts[-1] in SKIP_FILES:
                continue
            if info.filename.endswith(SKIP_SUFFIXES):
                continue
            files[info.filename] = zf.read(info)
    return files


# ------------------------------------------------------------------------------- the entries


def _framework_files(wheels: dict[str, Path]) -> dict[str, bytes]:
    """web2py's own files, from the wheels, at their places in the official zip."""
    files: dict[str, bytes] = {}
    for name, data in _wheel_files(wheels["web2py-gluon"]).items():
        top = name.split("/", 1)[0]
        if top.endswith(".dist-info"):
            if name.endswith("/LICENSE"):
                files["web2py/LICENSE"] = data  # web2py's license text
            continue
        if top not in WHEEL_SKIP_TOP:
            files[f"web2py/{name}"] = data
    for project, package, folder in (("pydal", "pydal", "dal"), ("yatl", "yatl", "yatl")):
        for name, data in _wheel_files(wheels[project]).items():
            if name.startswith(f"{package}/"):
                files[f"web2py/gluon/packages/{folder}/{name}"] = data
    return files


def _apply_patches(files: dict[str, bytes]) -> None:
    for patch in PATCHES:
        name = f"web2py/{patch.path}"
        files[name] = patch.apply(files[name])


def _our_files() -> dict[str, bytes]:
    """The parts written by pyinfra-web2py: top-level texts and the bundled apps."""
    files = {
        "web2py/VERSION": f"{GLUON_DIST_VERSION}\n".encode(),
        "web2py/ABOUT": ABOUT.encode(),
        "web2py/README.md": README.encode(),
        "web2py/routes.example.py": ROUTES_EXAMPLE.encode(),
        "web2py/applications/__init__.py": b"",
    }
    for app in sorted(p for p in APPS.iterdir() if p.is_dir() and p.name not in SKIP_DIRS):
        for path in sorted(app.rglob("*")):
            rel = path.relative_to(APPS).as_posix()
            if path.is_dir() or SKIP_DIRS & set(rel.split("/")):
                continue
            if path.name in SKIP_FILES or path.name.endswith(SKIP_SUFFIXES):
                continue
            files[f"web2py/applications/{rel}"] = path.read_bytes()
    return files


def _with_directories(files: dict[str, bytes]) -> dict[str, bytes | None]:
    """``files`` plus an entry (None) for every directory, as in the stand-in's zip."""
    entries: dict[str, bytes | None] = dict(files)
    for name in files:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            entries["/".join(parts[:depth]) + "/"] = None
    for app in (p.name for p in APPS.iterdir() if p.is_dir() and p.name not in SKIP_DIRS):
        for folder in APP_DIRS:
            entries[f"web2py/applications/{app}/{folder}/"] = None
    return entries


def gluon_entries(cache: Path = DEFAULT_WHEEL_CACHE) -> dict[str, bytes | None]:
    """Every archive entry: name -> bytes (files) or None (directories, names ending in '/')."""
    files = _framework_files(fetch_wheels(cache))
    _apply_patches(files)
    ours = _our_files()
    clash = sorted(set(files) & set(ours))
    if clash:  # ours never silently replaces web2py's own code
        raise RuntimeError(f"written by us and present in the wheels: {', '.join(clash)}")
    files.update(ours)
    return _with_directories(files)


def build_gluon_zip(dest: Path, cache: Path = DEFAULT_WHEEL_CACHE) -> Path:
    """Write the gluon test distribution to ``dest`` (reproducibly) and return its path."""
    return write_reproducible_zip(dest, gluon_entries(cache))
