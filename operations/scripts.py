"""Shell scripts our operations run on servers, shipped as files rather than inline ``sh -c``.

A script lives in ``operations/scripts/`` (readable, shellcheck-able), is uploaded when the
server lacks it or holds another version (compared by sha256), and is called with every user
value quoted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand
from pyinfra.facts.files import Sha256File

from .formats import sha256_file

LOCAL_DIR = Path(__file__).parent / "scripts"
REMOTE_DIR = "/usr/local/lib/pyinfra-web2py"


def run_script(name: str, *args: str) -> Iterator[StringCommand | FileUploadCommand]:
    """Commands that ensure script ``name`` is on the server, then run it with ``args``."""
    local, remote = LOCAL_DIR / name, f"{REMOTE_DIR}/{name}"
    if host.get_fact(Sha256File, path=remote) != sha256_file(local):
        yield StringCommand("mkdir", "-p", REMOTE_DIR)
        yield FileUploadCommand(str(local), remote)
        yield StringCommand("chmod", "755", remote)
    yield StringCommand(remote, *(QuoteString(str(arg)) for arg in args))
