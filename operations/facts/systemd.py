"""Facts about systemd units."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand


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
