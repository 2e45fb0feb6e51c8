"""The Docker engine's daemon: Debian's docker.io, used when it runs, started when it does not.

Started the way Debian starts it: ``systemctl start docker`` where systemd is PID 1; elsewhere
(containers, CI VMs whose PID 1 is another init) with the same start-stop-daemon command as
Debian's /etc/init.d/docker, minus its ``ulimit -n 1048576`` (refused where the hard limit is
lower, which stops the whole script), so ``service docker stop|status`` work on it after.
A daemon the sandbox started is recorded in ``<state>/dockerd.pid`` and stopped again by the
last ``down`` when it holds no container at all (anyone's), so ``down`` leaves no process.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox import procs
from sandbox.config import Settings
from sandbox.util import SandboxError, run, say, wait_until

if TYPE_CHECKING:
    import docker

DOCKERD = "/usr/sbin/dockerd"
# Debian's init script's files (so `service docker stop` finds what we started).
SSD_PIDFILE = Path("/var/run/docker-ssd.pid")
PIDFILE = "/var/run/docker.pid"
LOGFILE = Path("/var/log/docker.log")
START_TIMEOUT = 60.0


def marker(settings: Settings) -> Path:
    return settings.state_dir / "dockerd.pid"


def client(timeout: float = 120) -> docker.DockerClient:
    """A client for the local daemon (DOCKER_HOST etc. honoured), or a one-line error."""
    try:
        import docker
    except ImportError as exc:
        raise SandboxError("the docker Python SDK is missing: run bin/setup") from exc
    try:
        return docker.from_env(timeout=int(timeout))
    except docker.errors.DockerException as exc:
        raise SandboxError(f"cannot reach the Docker daemon: {exc}") from exc


def answers() -> bool:
    """The daemon answers a ping."""
    try:
        return bool(client(timeout=5).ping())
    except Exception:  # noqa: BLE001 - any failure means: not (yet) up
        return False


def ensure(settings: Settings) -> docker.DockerClient:
    """The daemon, started if it is not running (recorded when we started it)."""
    if answers():
        return client()
    if not Path(DOCKERD).exists():
        raise SandboxError(f"{DOCKERD} missing: run bin/setup (apt package docker.io)")
    if Path("/run/systemd/system").is_dir():
        say("starting the Docker daemon (systemctl start docker)")
        run(["systemctl", "start", "docker"], timeout=120)
    else:
        say(f"starting the Docker daemon ({DOCKERD}, as /etc/init.d/docker does; log {LOGFILE})")
        LOGFILE.touch()
        with LOGFILE.open("a") as log:
            subprocess.run(
                ["start-stop-daemon", "--start", "--background", "--no-close",
                 "--exec", DOCKERD, "--pidfile", str(SSD_PIDFILE), "--make-pidfile",
                 "--", "-p", PIDFILE],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False,
                timeout=60,
            )  # fmt: skip
    if not wait_until(answers, timeout=START_TIMEOUT, interval=0.5):
        raise SandboxError(
            f"the Docker daemon did not answer within {START_TIMEOUT:.0f} s (log: {LOGFILE})"
        )
    if not Path("/run/systemd/system").is_dir():
        # Read once it answers: start-stop-daemon --background returns before its child has
        # written the pidfile, and dockerd writes its own (-p) only when it is up.
        pid = _read_pid(Path(PIDFILE))
        if pid and is_dockerd(pid):
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            marker(settings).write_text(f"{pid}\n")
    return client()


def is_dockerd(pid: int | None) -> bool:
    args = procs.cmdline(pid) if pid and procs.alive(pid) else None
    return bool(args) and args[0].endswith("dockerd")


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def started_by_us(settings: Settings) -> int | None:
    pid = _read_pid(marker(settings))
    return pid if is_dockerd(pid) else None


def stop_if_ours(settings: Settings) -> None:
    """Stop the daemon the sandbox started, once no container at all is left on it."""
    pid = started_by_us(settings)
    if pid is None:
        marker(settings).unlink(missing_ok=True)
        return
    with contextlib.suppress(Exception):
        if client(timeout=10).containers.list(all=True):
            say("the Docker daemon holds other containers: left running")
            return
    say(f"stopping the Docker daemon the sandbox started (pid {pid})")
    children = [p for p in procs.all_pids() if _parent(p) == pid]
    left = procs.terminate([pid], grace=30, kill_wait=10)
    if left:
        raise SandboxError(f"dockerd (pid {pid}) did not stop")
    # its containerd goes with it; wait (bounded) until it has
    procs.terminate([c for c in children if procs.alive(c)], grace=10, kill_wait=5)
    SSD_PIDFILE.unlink(missing_ok=True)
    marker(settings).unlink(missing_ok=True)
    time.sleep(0.2)


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def children_of(pid: int) -> list[int]:
    """Live direct children of PID (dockerd's containerd)."""
    return [p for p in procs.all_pids() if _parent(p) == pid and procs.alive(p)]
