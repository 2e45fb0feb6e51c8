"""One uWSGI reload at a time on a server: every app shares one uWSGI.

uWSGI ignores a chain reload asked for while one runs ("chain reload already running"). Two
deploys of two apps at once would then go wrong: the second one notes the workers it must see
replaced while the first one's chain is half done; the workers that chain already replaced
never are again, and the second deploy waits out its reload timeout and rolls back (or, had
those workers loaded its app before its switch, they would keep serving its old code). So a
chain reload, from its "before" to its last new worker, holds a server-wide lock: the second
one starts after the first has ended, and replaces every worker after its own switch.

The lock is flock(2) on a root-only file (0600) in the apps folder: the kernel drops it when
its holder dies, so a killed run never leaves it held, and the app user cannot even open it,
so a compromised app cannot hold every deploy's reload (flock needs only an open file).
``systemctl reload`` runs the tool as the uWSGI user (ExecReload): it goes without the lock,
and, like a deploy's reload, asks uWSGI again when its chain reload was ignored
(server.uwsgi.chain_reload).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.errors import Failure, log

LOCK_NAME = ".uwsgi-reload.lock"
POLL = 0.1


@contextmanager
def held(apps_dir: str, timeout: float) -> Iterator[None]:
    """Hold the server's reload lock (waiting up to ``timeout`` s for another reload)."""
    fd = _open(Path(apps_dir))
    if fd is None:  # the uWSGI user (systemctl reload): it may not open the lock
        yield
        return
    try:
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            if time.monotonic() >= deadline:
                raise Failure(f"another uWSGI reload did not end within {timeout:g}s")
            if not said:
                log("waiting for another uWSGI reload on this server to end")
                said = True
            time.sleep(POLL)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open(apps_dir: Path) -> int | None:
    """The lock file, root's and 0600 (created if missing); None for another user, who may
    not open it. Never through a link, never a file root does not own."""
    if os.geteuid() != 0:
        return None
    path = apps_dir / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    try:
        apps_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o600)
    except OSError as error:
        raise Failure(f"uWSGI reload lock {path}: {error.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != 0:
        os.close(fd)
        raise Failure(f"uWSGI reload lock {path} is not a file of root's: refused")
    os.fchmod(fd, 0o600)  # one an earlier build made 0644
    return fd
