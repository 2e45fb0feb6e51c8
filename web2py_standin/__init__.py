"""Build a TEST STAND-IN for the official ``web2py_src.zip`` (it is not web2py).

The archive has the same shape as the real one (top folder ``web2py/``,
``handlers/wsgihandler.py``, ``gluon/`` with pydal bundled under
``gluon/packages/dal/pydal``, ``applications/{welcome,admin}``) so that the
deploys can be exercised offline. The files come from ``payload/`` plus a copy
of the pydal package installed on the build machine.

The zip is reproducible: entries sorted, timestamps fixed to 2020-01-01,
modes fixed (0644 files, 0755 directories), deflate level fixed.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

__all__ = ["build_zip", "zip_entries", "PAYLOAD", "FIXED_DATE_TIME", "STANDIN_VERSION"]

PAYLOAD = Path(__file__).resolve().parent / "payload"
FIXED_DATE_TIME = (2020, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
DIR_MODE = 0o755
SKIP_DIRS = {"__pycache__"}
SKIP_FILES = {".gitkeep", ".DS_Store"}
SKIP_SUFFIXES = (".pyc", ".pyo")
STANDIN_VERSION = (PAYLOAD / "web2py" / "VERSION").read_text().strip()


def _walk(root: Path, prefix: str) -> dict[str, Path | None]:
    """Map archive names (dirs end with '/') to source files (None for dirs)."""
    entries: dict[str, Path | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel = Path(dirpath).relative_to(root).as_posix()
        base = prefix if rel == "." else f"{prefix}{rel}/"
        entries[base] = None
        for name in filenames:
            if name in SKIP_FILES or name.endswith(SKIP_SUFFIXES):
                continue
            entries[base + name] = Path(dirpath) / name
    return entries


def _pydal_dir() -> Path:
    import pydal

    return Path(pydal.__file__).resolve().parent


def zip_entries(pydal_dir: Path | None = None) -> dict[str, Path | None]:
    """All archive entries: the payload tree plus pydal in gluon/packages/dal/pydal."""
    entries = _walk(PAYLOAD / "web2py", "web2py/")
    for parent in ("web2py/gluon/packages/", "web2py/gluon/packages/dal/"):
        entries[parent] = None
    entries.update(_walk(pydal_dir or _pydal_dir(), "web2py/gluon/packages/dal/pydal/"))
    return entries


def _info(name: str, is_dir: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.create_system = 3  # unix, so that the modes below are honoured by unzip
    if is_dir:
        info.external_attr = ((0o040000 | DIR_MODE) << 16) | 0x10
        info.compress_type = zipfile.ZIP_STORED
    else:
        info.external_attr = (0o100000 | FILE_MODE) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_reproducible_zip(dest: Path, entries: dict[str, bytes | None]) -> Path:
    """Write ``entries`` (archive name -> bytes, None for a folder) as a reproducible zip:
    sorted, fixed dates and modes, deflate level 9; written beside ``dest``, renamed in."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(entries):
            data = entries[name]
            if data is None:
                zf.writestr(_info(name, True), b"")
            else:
                zf.writestr(_info(name, False), data, compresslevel=9)
    os.replace(tmp, dest)
    return dest


def build_zip(dest: Path) -> Path:
    """Write the stand-in ``web2py_src.zip`` to ``dest`` and return its path.

    The same inputs always give the same bytes.
    """
    entries = zip_entries()
    return write_reproducible_zip(
        dest, {name: None if src is None else src.read_bytes() for name, src in entries.items()}
    )
