"""Uploading secrets (password hashes, TLS keys) without exposing them on the way.

pyinfra's ``files.put`` prints the file's content with ``--diff`` and, under sudo, leaves its
temporary copy readable at the umask's mode. Here the temporary file is created 0600 by the SSH
user *before* the content is written into it, the final file is written under ``umask 077`` and
renamed into place, and the content is never part of any command or log line.

The staged copy is made (operations/scripts/stage-secret.sh) with ``mktemp`` in the
destination's folder, and only when that folder (and each one above it) is root's and writable
by root only: in a folder another user may write in, it could swap the staged file for a link
between two of root's steps, and root's ``cp`` or ``chown`` would follow it. Such a destination
is refused with one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand

from .scripts import run_script


def upload_secret(
    content: bytes,
    dest: str,
    user: str,
    group: str,
    mode: str = "600",
) -> Iterator[StringCommand | FileUploadCommand]:
    """Commands that put ``content`` at ``dest`` (owner ``user:group``, ``mode``) atomically."""
    temp = host.get_temp_filename()
    # As the SSH user, so SFTP can write it: private from the first byte.
    yield StringCommand("install", "-m", "600", "/dev/null", QuoteString(temp), _sudo=False)
    yield FileUploadCommand(BytesIO(content), temp, _sudo=False)
    yield from run_script("stage-secret.sh", temp, f"{user}:{group}", mode, dest)
    yield StringCommand("rm", "-f", QuoteString(temp), _sudo=False)
