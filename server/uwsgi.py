"""uWSGI from the outside: chain reload through its master FIFO, its workers through the stats
socket, and HTTP over a unix socket (or to nginx) for checks."""

from __future__ import annotations

import errno
import http.client
import json
import os
import pwd
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path

from server import detach
from server.errors import Failure

ASK_AGAIN_S = 1.0  # no worker replaced for this long: send the chain reload again
HEALTH_KEY_HEADER = "X-W2p-Health-Key"  # nginx-web2py.conf.j2 maps it; never passed to apps
UNIT = "web2py-uwsgi"  # the app server's systemd unit (templates/web2py-uwsgi.service.j2)


def chain_reload(fifo: str, stats: str, timeout: float, user: str | None = None) -> None:
    """FIFO 'c': uWSGI replaces workers one at a time; return once none of the old is left.

    Waiting matters beyond deploys: a stop that arrives in the middle of a chain reload hangs
    uWSGI 2.0 until systemd kills it, so `systemctl reload` (ExecReload) waits here too.
    The FIFO and the stats socket are in a folder the uWSGI user (``user``; by default the
    folder's owner) writes: both are checked before use (see :func:`write_fifo`).
    """
    for path in (fifo, stats):
        if not os.path.lexists(path):  # its runtime folder goes with it (RuntimeDirectory=)
            raise Failure(f"uWSGI is not running ({path} does not exist)")
    uid = owner(fifo, user)
    check_socket(stats, uid)
    before = {w.get("pid") for w in workers(stats)}
    write_fifo(fifo, b"c", uid)
    detach.pause("chain-reload")  # test-only (server.detach.pause)
    deadline = time.monotonic() + timeout
    left, ask_again = before, time.monotonic() + ASK_AGAIN_S
    now: list[dict] = []
    asked = 0.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = workers(stats)
        if now and all(
            w.get("pid") not in before and w.get("status") in ("idle", "busy") for w in now
        ):
            return
        if not now:
            if time.monotonic() - asked > 1:
                # gone: killed (systemd restarts it: wait) or stopped for good (nothing will
                # come back: say so now rather than at the deadline)
                asked = time.monotonic()
                state = unit_state()
                if state in ("inactive", "failed"):
                    raise Failure(f"uWSGI stopped during the chain reload ({UNIT} is {state})")
            continue
        old = {w.get("pid") for w in now} & before
        if old != left:  # a worker of ours was replaced: the reload goes on
            left, ask_again = old, time.monotonic() + ASK_AGAIN_S
        elif time.monotonic() >= ask_again:
            # uWSGI ignores a 'c' while a chain reload runs ("chain reload already running"):
            # one that a dead run, or another app's deploy, started may end before it reached
            # every worker we saw. Asking again is harmless while one runs.
            write_fifo(fifo, b"c", uid)
            ask_again = time.monotonic() + ASK_AGAIN_S
    if not now:  # the master is gone (stopped, or killed and not restarted)
        raise Failure(
            f"uWSGI stopped answering during the chain reload and was not back within "
            f"{timeout:g}s (is it running? systemctl status {UNIT})"
        )
    raise Failure(f"uWSGI workers were not all replaced within {timeout:g}s")


def unit_state(unit: str = UNIT) -> str:
    """systemd's ActiveState of ``unit`` ("" when it cannot tell: no systemd, no such unit,
    no answer)."""
    try:
        result = subprocess.run(
            ["systemctl", "show", "--property=LoadState,ActiveState", unit],
            capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return props.get("ActiveState", "") if props.get("LoadState") == "loaded" else ""


def owner(fifo: str, user: str | None = None) -> int:
    """The uid uWSGI runs as: ``user``'s, by default the owner of the FIFO's folder."""
    return pwd.getpwnam(user).pw_uid if user else os.lstat(os.path.dirname(fifo) or ".").st_uid


def require_running(fifo: str, stats: str, user: str | None = None) -> None:
    """Refuse to go on unless uWSGI runs: its master FIFO and stats socket exist (the uWSGI
    user's: checked, never followed) and the stats socket lists workers. Checked before a run
    changes anything, so that a stopped app server is one clear line (start it, then run
    again) instead of a release switched in and back out."""
    start = "pyinfra INVENTORY deploys/webserver.py --data webserver_action=start"
    for path in (stats, fifo):
        if not os.path.lexists(path):
            raise Failure(f"uWSGI is not running ({path} does not exist): start it ({start}), "
                          "then run again")  # fmt: skip
    uid = owner(fifo, user)
    check_socket(stats, uid)
    st = os.lstat(fifo)
    if not stat.S_ISFIFO(st.st_mode) or st.st_uid != uid:
        raise Failure(f"uWSGI master FIFO {fifo} is not a FIFO of uid {uid}: refused")
    if not workers(stats):
        raise Failure(f"uWSGI is not running (its stats socket {stats} does not answer): start "
                      f"it ({start}), then run again")  # fmt: skip


def write_fifo(path: str, data: bytes, uid: int) -> None:
    """Write ``data`` to the FIFO ``path`` owned by ``uid``, never blocking, never through a
    link: a link, a regular file, another owner's FIFO or one nobody reads fails in one line."""
    flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as error:
        why = {
            errno.ELOOP: "is a symbolic link: refused",
            errno.ENXIO: "has no reader (is uWSGI running?)",
            errno.ENOENT: "does not exist (is uWSGI running?)",
        }.get(error.errno, f"cannot be opened: {error.strerror}")
        raise Failure(f"uWSGI master FIFO {path} {why}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISFIFO(st.st_mode) or st.st_uid != uid:
            raise Failure(f"uWSGI master FIFO {path} is not a FIFO of uid {uid}: refused")
        try:
            os.write(fd, data)
        except BlockingIOError:
            raise Failure(f"uWSGI master FIFO {path} is full (uWSGI not reading?)") from None
    finally:
        os.close(fd)


def check_socket(path: str, uid: int) -> None:
    """Refuse ``path`` unless it is a unix socket owned by ``uid`` (not followed if a link)."""
    try:
        st = os.lstat(path)
    except OSError as error:
        raise Failure(f"uWSGI stats socket {path}: {error.strerror} (is uWSGI running?)") from None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != uid:
        raise Failure(f"uWSGI stats socket {path} is not a socket of uid {uid}: refused")


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the pre-switch check's throwaway uWSGI)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        """Connect to the unix socket instead of a TCP address."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def unix_http_get(sock: Path, path: str, timeout: float) -> tuple[int, bytes]:
    """GET ``path`` over the unix socket ``sock``: (status, body)."""
    conn = UnixHTTPConnection(str(sock), timeout)
    try:
        # X-Forwarded-For: web2py treats local clients specially (maintenance, admin)
        conn.request("GET", path, headers={"X-Forwarded-For": "203.0.113.1", "Host": "localhost"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def https_get(port: int, path: str, key: str = "", timeout: float = 10) -> tuple[int, bytes]:
    """GET ``path`` from nginx on 127.0.0.1:``port`` (its certificate is not checked: it is
    this server's own), with the health-check key if given: (status, body). ``timeout``
    bounds the connection and each read."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    headers = {"X-Forwarded-For": "203.0.113.1"}
    if key:
        headers[HEALTH_KEY_HEADER] = key
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


STATS_TIMEOUT = 5.0  # seconds for the stats socket's whole answer (uWSGI sends it at once)
STATS_LIMIT = 16 << 20  # bytes: a stats answer is a few KiB per worker


def workers(stats_path: str) -> list[dict]:
    """uWSGI's workers as its stats socket lists them ([] when it does not answer in time).
    The whole read is bounded, in time and size: whatever listens there (a folder the uWSGI
    user writes) cannot hold a deploy by trickling bytes."""
    deadline = time.monotonic() + STATS_TIMEOUT
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(STATS_TIMEOUT)
            s.connect(stats_path)
            data = b""
            while len(data) < STATS_LIMIT:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                s.settimeout(left)
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        found = json.loads(data).get("workers", [])
        return found if isinstance(found, list) else []
    except (OSError, ValueError, AttributeError):
        return []
