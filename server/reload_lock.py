"""One uWSGI reload at a time on a server: every app shares one uWSGI.

uWSGI ignores a chain reload asked for while one runs ("chain reload already running"). Two
deploys of two apps at once would then go wrong: the second one notes the workers it must see
replaced while the first one's chain is half done; the workers that chain already replaced
never are again, and the second deploy waits out its reload timeout and rolls back (or, had
those workers loaded its app before its switch, they would keep serving its old code). So a
chain reload, from its "before" to its last new worker, holds a server-wide lock: the second
one starts after the first has ended, and replaces every worker after its own switch.

The lock is flock(2) on a root-owned file in the apps folder (root's, never the app user's):
the kernel drops it when its holder dies, so a killed run never leaves it held. ``systemctl
reload`` runs the tool as the uWSGI user (ExecReload): it opens the file read-only (flock needs
no more) and cannot create it; before the first deploy's reload there is none to wait for.
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
    if fd is None:  # the uWSGI user, and no deploy ever reloaded: nothing to wait for
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
    """The lock file (root creates it, 0644, if missing; another user opens it read-only, or
    gets None when it is missing); never through a link, never a file root does not own."""
    path = apps_dir / LOCK_NAME
    root = os.geteuid() == 0
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    flags |= os.O_RDWR | os.O_CREAT if root else os.O_RDONLY
    try:
        if root:
            apps_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        if root:
            raise
        return None
    except OSError as error:
        raise Failure(f"uWSGI reload lock {path}: {error.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != 0:
        os.close(fd)
        raise Failure(f"uWSGI reload lock {path} is not a file of root's: refused")
    return fd
