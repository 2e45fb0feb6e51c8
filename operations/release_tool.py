"""The server-side release tool (``server/``), built on the controller as one zipapp and
installed on servers by one function.

The zipapp holds ``server/``, ``operations/__init__.py`` and ``operations/formats.py`` (the
contract both sides share) and a ``__main__.py`` that runs ``server.cli``. It is built
deterministically (entries sorted, fixed timestamps and modes), so its sha256 is the same in
every checkout of the same code and a server that already holds it gets no upload.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.facts.files import Sha256File

from . import formats

REPO = Path(__file__).resolve().parents[1]
REMOTE_DIR = "/usr/local/lib/pyinfra-web2py"  # root-owned, 0755
REMOTE_PATH = f"{REMOTE_DIR}/web2py-release.pyz"
# Where the build lands (build/ is not in git); tests point it at a path relative to the repo.
LOCAL_PATH = REPO / "build" / "release-tool" / "web2py-release.pyz"
SHEBANG = b"#!/usr/bin/python3\n"
MAIN = b"import sys\n\nfrom server.cli import main\n\nsys.exit(main())\n"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def sources() -> list[tuple[str, Path]]:
    """(name in the zipapp, file) of everything the tool needs, sorted by name."""
    found = [(f"server/{p.name}", p) for p in (REPO / "server").glob("*.py")]
    found += [
        (f"operations/{name}", REPO / "operations" / name) for name in ("__init__.py", "formats.py")
    ]
    return sorted(found)


def zipapp_bytes() -> bytes:
    """The zipapp's bytes: the same for the same sources, wherever and whenever built."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
        for name, data in sorted(
            [("__main__.py", MAIN), *((n, p.read_bytes()) for n, p in sources())]
        ):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return SHEBANG + raw.getvalue()


_built: dict[Path, str] = {}


def build(path: Path | None = None) -> tuple[Path, str]:
    """Build the zipapp at ``path`` (default ``LOCAL_PATH``) once per process, replacing it
    atomically when it differs; returns the path and its sha256."""
    path = Path(path or LOCAL_PATH)
    if path not in _built:
        data = zipapp_bytes()
        digest = formats.sha256_bytes(data)
        if not path.is_file() or formats.sha256_file(path) != digest:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f".{path.name}.{os.getpid()}")
            temp.write_bytes(data)
            os.chmod(temp, 0o755)
            os.replace(temp, path)
        _built[path] = digest
    return path, _built[path]


def ensure_tool() -> Iterator[StringCommand | FileUploadCommand]:
    """Commands that put the release tool on the server when it lacks it or holds another
    build (compared by sha256): root-owned, 0755, in a root-owned 0755 folder."""
    local, digest = build()
    if host.get_fact(Sha256File, path=REMOTE_PATH) == digest:
        return
    yield StringCommand("install", "-d", "-o", "root", "-g", "root", "-m", "755", REMOTE_DIR)
    yield FileUploadCommand(str(local), REMOTE_PATH)
    yield StringCommand("chown", "root:root", REMOTE_PATH)
    yield StringCommand("chmod", "755", REMOTE_PATH)


def run_tool(*args: str) -> Iterator[StringCommand | FileUploadCommand]:
    """Commands that ensure the release tool is on the server, then run it with ``args``
    (each quoted)."""
    yield from ensure_tool()
    yield StringCommand(REMOTE_PATH, *(QuoteString(str(arg)) for arg in args))


@operation()
def install():
    """
    Install the release tool (``server/`` as one zipapp) at ``REMOTE_PATH``, when the server
    lacks this build.

    **Example:**

    .. code:: python

        release_tool.install(name="Release tool")
    """
    changed = False
    for command in ensure_tool():
        changed = True
        yield command
    if not changed:
        host.noop("the release tool is up to date")
