"""An app's deploy lock (``lock/``, made atomically), and whether its holder still runs."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from operations import formats
from server.errors import Locked, log


def boot_id() -> str:
    """This boot's ID ("" when unknown): a lock from another boot is a dead one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str:
    """The start time of a process (field 22 of /proc/PID/stat), or "" when it is gone: with
    the PID and the boot ID it names one process, even after the PID is reused."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat_line.rsplit(")", 1)[-1].split()[19]


def holder_alive(info: dict) -> bool | None:
    """True/False when the lock's info says which process holds it; None when it cannot tell
    (a lock written by an older tool, or garbled): treated as alive, never broken."""
    pid, started, boot = info.get("pid"), info.get("started"), info.get("boot_id")
    if not isinstance(pid, int) or not started or not boot:
        return None
    if boot != boot_id():
        return False  # held before a reboot: that process is gone
    return process_start(pid) == started


class Lock:
    """The lock of app ``name`` in its folder ``base``: ``lock/info.json`` says who holds it."""

    def __init__(self, base: Path, name: str):
        self.base, self.name = base, name
        self.path = base / "lock"
        self.stale: dict | None = None  # the dead holder's info, when this run took it over

    def acquire(self, who: str, version: str, wait: float = 0) -> None:
        """Take the lock; a lock whose holder is provably dead (gone, or from before a
        reboot) is taken over and said so. A live holder is waited for, up to ``wait``
        seconds (the run of a controller that lost its connection ends by itself); then, or
        at once for a holder that cannot be told (an older tool's lock), Locked."""
        self.base.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        said = False
        while True:
            try:
                self.path.mkdir()
                break
            except FileExistsError:
                info = self.info()
                alive = holder_alive(info)
                if alive is False:
                    log(f"{self.name}: taking over a stale lock ({self.holder()})")
                    self.stale = info
                    break
                if alive is None or time.monotonic() >= deadline:
                    raise Locked(f"{self.name}: {self.describe()}") from None
                if not said:
                    log(f"{self.name}: waiting up to {wait:g} s for the run holding the lock "
                        f"({self.holder()}, pid {info.get('pid')})")  # fmt: skip
                    said = True
                time.sleep(0.2)
        pid = os.getpid()
        info = {
            "who": who, "since": formats.utc_stamp(), "version": version, "pid": pid,
            "started": process_start(pid), "boot_id": boot_id(),
        }  # fmt: skip
        temp = self.path / f".info.{pid}"
        temp.write_text(json.dumps(info, sort_keys=True) + "\n")
        os.replace(temp, self.path / "info.json")

    def held(self) -> bool:
        """True while some run holds the lock (alive or not)."""
        return self.path.exists()

    def info(self) -> dict:
        """What the holder wrote ({} when unreadable)."""
        try:
            info = json.loads((self.path / "info.json").read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def holder(self) -> str:
        """ "locked by WHO since WHEN (version V)"."""
        info = self.info()
        return (
            f"locked by {info.get('who', '?')} since {info.get('since', '?')} "
            f"(version {info.get('version', '?')})"
        )

    def describe(self) -> str:
        """The holder and what to do if it is dead: the operator's one line."""
        return (
            f"{self.holder()}; if that deploy is dead, release it with: "
            f"pyinfra INVENTORY deploys/unlock.py --data unlock_app={self.name}"
        )

    def state(self) -> str | None:
        """The lock as the status report shows it (None: free): who holds it, and whether that
        run still runs, so that a lock left by a dead run is never silent."""
        if not self.held():
            return None
        info = self.info()
        alive = holder_alive(info)
        if alive is True:
            return f"{self.holder()}; that run (pid {info.get('pid')}) is still running"
        if alive is False:
            return (
                f"{self.holder()}; that run (pid {info.get('pid')}) is DEAD: the next deploy "
                f"takes the lock over, or release it with: pyinfra INVENTORY deploys/unlock.py "
                f"--data unlock_app={self.name}"
            )
        return self.describe()

    def release(self) -> None:
        """Remove the lock (whoever holds it)."""
        shutil.rmtree(self.path, ignore_errors=True)
