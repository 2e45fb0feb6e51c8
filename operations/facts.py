"""Facts for pyinfra-web2py. Each one reports only what idempotency needs: never a secret."""

from __future__ import annotations

import json

from pyinfra.api import FactBase, QuoteString, StringCommand

SOURCE_MARKER = ".pyinfra-web2py-source"
PACKAGE_MARKER = ".pyinfra-web2py-package"


def read_file_command(path: str, last_line: bool = False) -> StringCommand:
    """A file's content (or its last line), and nothing when it is missing."""
    reader = ("tail", "-n", "1") if last_line else ("cat",)
    return StringCommand(*reader, QuoteString(path), "2>/dev/null", "||", "true")


def parse_json(output: list[str] | None, garbage: dict | None = None) -> dict | None:
    """JSON from a fact's output; None when there was none, ``garbage`` when it is not JSON."""
    if not output:
        return None
    try:
        return json.loads("\n".join(output))
    except ValueError:
        return garbage


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


class ShadowPassword(FactBase[dict[str, str] | None]):
    """
    A user's /etc/shadow password field, reduced to its salt part (``$6$rounds=N$salt``) and
    the sha256 of the whole field, so the controller can check a password without the hash
    ever being printed. None when the user does not exist.

    .. code:: python

        host.get_fact(ShadowPassword, user="deploy")
    """

    def command(self, user: str) -> StringCommand:
        script = (
            'h=$(getent shadow "$1" | cut -d: -f2) || exit 0; '
            'printf "%s\\n" "${h%\\$*}"; printf "%s" "$h" | sha256sum | cut -c1-64'
        )
        return StringCommand("sh", "-c", QuoteString(script), "shadow", QuoteString(user))

    def process(self, output: list[str]) -> dict[str, str] | None:
        lines = [line.strip() for line in output]
        if len(lines) < 2:
            return None
        return {"salt": lines[0], "sha256": lines[1]}


class UnitStates(FactBase[dict[str, dict[str, str]]]):
    """
    LoadState, ActiveState, SubState and UnitFileState of systemd units
    (globs expand to the loaded units only).

    .. code:: python

        host.get_fact(UnitStates, units=["nginx", "web2py-uwsgi", "web2py-scheduler@*"])
    """

    def command(self, units: list[str]) -> StringCommand:
        return StringCommand(
            "systemctl", "show", "--all", "--no-pager",
            "--property=Id,LoadState,ActiveState,SubState,UnitFileState",
            *(QuoteString(unit) for unit in units),
        )  # fmt: skip

    def process(self, output: list[str]) -> dict[str, dict[str, str]]:
        units: dict[str, dict[str, str]] = {}
        current: dict[str, str] = {}
        for line in [*output, ""]:
            if not line.strip():
                if current.get("Id"):
                    units[current.pop("Id")] = current
                current = {}
                continue
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
        return units


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


# Seconds since the unit's main process started, from /proc (no procps on minimal servers).
_RUNNING_FOR_SCRIPT = r"""
pid=$(systemctl show -p MainPID --value "$1" 2>/dev/null)
[ "$(systemctl show -p SubState --value "$1" 2>/dev/null)" = running ] || exit 0
[ "${pid:-0}" -gt 0 ] 2>/dev/null && [ -r "/proc/$pid/stat" ] || exit 0
start=$(sed 's/.*) //' "/proc/$pid/stat" | cut -d' ' -f20)
awk -v hz="$(getconf CLK_TCK)" -v start="$start" '{ printf "%d\n", $1 - start / hz }' /proc/uptime
"""


class RunningFor(FactBase[int | None]):
    """
    Seconds the main process of a running systemd unit has been up; None when the unit is not
    running (stopped, failed, waiting to be restarted) or unknown.

    .. code:: python

        host.get_fact(RunningFor, unit="web2py-scheduler@notes")
    """

    def command(self, unit: str) -> StringCommand:
        return StringCommand(
            "sh", "-c", QuoteString(_RUNNING_FOR_SCRIPT), "running-for", QuoteString(unit)
        )

    def process(self, output: list[str]) -> int | None:
        for line in output:
            if line.strip().isdigit():
                return int(line.strip())
        return None
