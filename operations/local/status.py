"""Fleet status, one line per host and app, and its JSON form (deploys/status.py).

Pure functions of what the facts report, so the lines are unit-tested without a server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()  # hosts report from parallel greenlets into one file


def app_record(status: Mapping[str, Any] | None, units: Mapping[str, Mapping[str, str]]) -> dict:
    """The JSON record of one app on one host."""
    status = status or {}
    revision = status.get("revision") or {}
    drift = status.get("drift") or {}
    drifted = sorted(
        {*drift.get("changed", []), *drift.get("missing", []), *drift.get("added", [])}
    )
    return {
        "live": status.get("live"),
        "version": revision.get("version"),
        "deployed": revision.get("when"),
        "by": revision.get("who"),
        "lock": status.get("locked"),
        "down": bool(status.get("down")),
        "drift": drift if drifted else {},
        "units": {unit: info.get("ActiveState", "?") for unit, info in sorted(units.items())},
        "known": bool(status),
        "attention": status.get("attention"),
    }


def app_line(host_name: str, app_name: str, record: Mapping[str, Any]) -> str:
    """One human line: live release and version, when and by whom, lock, maintenance, drift,
    units."""
    if not record["known"]:
        return f"{host_name}: {app_name}: unknown (no release tool or no such app here)"
    parts = [f"NEEDS ATTENTION: {record['attention']}"] if record.get("attention") else []
    parts += [
        f"release {record['live'] or '-'} ({record['version'] or '-'})",
        f"deployed {record['deployed'] or '?'} by {record['by'] or '?'}",
        f"lock: {record['lock'] or 'free'}",
        "DOWN for maintenance" if record["down"] else "up",
    ]
    drift = record["drift"]
    if drift:
        what = [f"{kind} {', '.join(drift[kind])}" for kind in ("changed", "missing", "added")
                if drift.get(kind)]  # fmt: skip
        parts.append("DRIFT: " + "; ".join(what))
    else:
        parts.append("no drift")
    parts.append("units: " + ", ".join(f"{u} {s}" for u, s in record["units"].items()))
    return f"{host_name}: {app_name}: " + ", ".join(parts)


def write_status(path: str, host_name: str, app_name: str, record: Mapping[str, Any]) -> None:
    """Add one host's app to the JSON file at ``path`` ({host: {app: record}})."""
    with _LOCK:
        target = Path(path)
        try:
            data = json.loads(target.read_text())
        except (OSError, ValueError):
            data = {}
        data.setdefault(host_name, {})[app_name] = dict(record)
        target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
