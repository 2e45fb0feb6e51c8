"""Facts about a web2py installation: what our markers recorded, the admin password's salt, the
server's Python. Each reports only what idempotency needs: never a secret."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from .common import read_file_command

SOURCE_MARKER = ".pyinfra-web2py-source"
PACKAGE_MARKER = ".pyinfra-web2py-package"


class MarkerFile(FactBase[str | None]):
    """
    First line of a marker file (a sha256 we wrote there), or None when it is missing.

    .. code:: python

        host.get_fact(MarkerFile, path="/home/www-data/web2py/.pyinfra-web2py-source")
    """

    def command(self, path: str) -> StringCommand:
        return read_file_command(path)

    def process(self, output: list[str]) -> str | None:
        for line in output:
            if line.strip():
                return line.strip()
        return None


class Web2pyAdminPassword(FactBase[dict[str, str] | None]):
    """
    What a web2py ``parameters_<port>.py`` holds, minus the hash: the sha256 of the whole file
    and its ``pbkdf2(ITER,KEYLEN,ALG)$SALT`` prefix. None when the file is missing.

    .. code:: python

        host.get_fact(Web2pyAdminPassword, path="/home/www-data/web2py/parameters_443.py")
    """

    def command(self, path: str) -> StringCommand:
        quoted = QuoteString(path)
        return StringCommand(
            "if", "[", "-f", quoted, "];", "then",
            "sha256sum", quoted, "|", "cut", "-c1-64;",
            "sed", "-n", QuoteString(r's/^password="\(pbkdf2([^)]*)\$[^$]*\)\$.*$/\1/p'), quoted,
            "|", "head", "-n1;",
            "fi",
        )  # fmt: skip

    def process(self, output: list[str]) -> dict[str, str] | None:
        lines = [line.strip() for line in output if line.strip()]
        if not lines:
            return None
        return {"sha256": lines[0], "prefix": lines[1] if len(lines) > 1 else ""}


class PythonVersion(FactBase[tuple[int, int] | None]):
    """
    ``(major, minor)`` of the server's ``python3``, or None when there is none yet.

    .. code:: python

        host.get_fact(PythonVersion)
    """

    def command(self) -> str:
        return (
            "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null || true"
        )

    def process(self, output: list[str]) -> tuple[int, int] | None:
        for line in output:
            major, _, minor = line.strip().partition(".")
            if major.isdigit() and minor.isdigit():
                return int(major), int(minor)
        return None
