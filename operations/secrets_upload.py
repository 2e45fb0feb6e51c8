"""Uploading secrets (password hashes, TLS keys) without exposing them on the way.

pyinfra's ``files.put`` prints the file's content with ``--diff`` and, under sudo, leaves its
temporary copy readable at the umask's mode. Here the temporary file is created 0600 by the SSH
user *before* the content is written into it, the final file is written under ``umask 077`` and
renamed into place, and the content is never part of any command or log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand


def upload_secret(
    content: bytes,
    dest: str,
    user: str,
    group: str,
    mode: str = "600",
) -> Iterator[StringCommand | FileUploadCommand]:
    """Commands that put ``content`` at ``dest`` (owner ``user:group``, ``mode``) atomically."""
    temp = host.get_temp_filename()
    staged = f"{dest}.pyinfra-new"
    # As the SSH user, so SFTP can write it: private from the first byte.
    yield StringCommand("install", "-m", "600", "/dev/null", QuoteString(temp), _sudo=False)
    yield FileUploadCommand(BytesIO(content), temp, _sudo=False)
    script = 'umask 077 && cp "$1" "$2" && chown "$3" "$2" && chmod "$4" "$2" && mv -f "$2" "$5"'
    yield StringCommand(
        "sh", "-c", QuoteString(script), "secret",
        QuoteString(temp), QuoteString(staged), QuoteString(f"{user}:{group}"),
        QuoteString(mode), QuoteString(dest),
    )  # fmt: skip
    yield StringCommand("rm", "-f", QuoteString(temp), _sudo=False)
