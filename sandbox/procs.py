"""Processes this tool started: recognised by their command line, never by name alone."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive(pid: int | None) -> bool:
    """Running (a zombie nobody reaps counts as gone)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def is_nspawn_for(pid: int | None, root: str) -> bool:
    """pid is a live systemd-nspawn booting the directory root."""
    if not alive(pid):
        return False
    assert pid is not None
    args = cmdline(pid) or []
    return bool(args) and args[0].endswith("systemd-nspawn") and _option(args, "-D") == root


def is_proxy_for(pid: int | None, conf_dir: str) -> bool:
    if not alive(pid):
        return False
    assert pid is not None
    args = cmdline(pid) or []
    return bool(args) and args[0].endswith("apt-cacher-ng") and _option(args, "-c") == conf_dir


def _option(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def nspawn_under(directory: Path) -> dict[int, str]:
    """Live systemd-nspawn processes whose root is inside directory: {pid: root}."""
    prefix = str(directory).rstrip("/") + "/"
    found: dict[int, str] = {}
    for pid in all_pids():
        args = cmdline(pid) or []
        if args and args[0].endswith("systemd-nspawn") and alive(pid):
            root = _option(args, "-D")
            if root and root.startswith(prefix):
                found[pid] = root
    return found


def container_inits_under(directory: Path) -> dict[int, str]:
    """Live init processes of PID namespaces whose root is an overlay with its upper dir inside
    directory: {pid: upperdir}. A container outlives a SIGKILLed systemd-nspawn; this finds it."""
    prefix = str(directory).rstrip("/") + "/"
    found: dict[int, str] = {}
    for pid in all_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            nspid = next(
                (ln.split()[1:] for ln in status.splitlines() if ln.startswith("NSpid:")), []
            )
            if len(nspid) < 2 or nspid[-1] != "1" or not alive(pid):
                continue
            mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        except OSError:
            continue
        for line in mounts:
            fields = line.split()
            if len(fields) < 10 or fields[4] != "/" or "-" not in fields:
                continue
            sep = fields.index("-")
            if fields[sep + 1] != "overlay":
                continue
            for option in fields[sep + 3].split(","):
                if option.startswith("upperdir=") and option[9:].startswith(prefix):
                    found[pid] = option[9:]
    return found


def proxies_for(conf_dir: str) -> list[int]:
    return [pid for pid in all_pids() if is_proxy_for(pid, conf_dir)]


def terminate(pids: Iterable[int], grace: float = 20, kill_wait: float = 10) -> list[int]:
    """SIGTERM, wait up to grace, SIGKILL the rest, wait; returns pids still alive."""
    pending = [p for p in pids if alive(p)]
    _signal(pending, signal.SIGTERM)
    pending = _wait_gone(pending, grace)
    if pending:
        _signal(pending, signal.SIGKILL)
        pending = _wait_gone(pending, kill_wait)
    return pending


def kill(pids: Iterable[int], timeout: float = 10) -> list[int]:
    """SIGKILL and wait; returns pids still alive."""
    pending = [p for p in pids if alive(p)]
    _signal(pending, signal.SIGKILL)
    return _wait_gone(pending, timeout)


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        _reap()
        pids = [p for p in pids if alive(p)]
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.2)


def _reap() -> None:
    """Collect our own exited children (servers booted by this same process)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
