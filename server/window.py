"""An app's maintenance window during a deploy or restore (nginx's per-app flag files)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from server import uwsgi
from server.app import App
from server.errors import log

RUN_MARK = "opened by the release tool, pid"  # in a flag a run set (an operator's is empty)


class Window:
    """An app's maintenance window during a deploy or restore: nginx answers 503 with the app's
    page and Retry-After (the files it tests per request: operations/maintenance.py), while
    the backup, data, migrations and switch happen. Lifted on the way out, whatever happened,
    unless the app was already down when we came (then it stays down: the operator's call)."""

    def __init__(self, app: App):
        self.app = app
        folder = Path(app.layout.maintenance_dir)
        self.flag = folder / f"{app.name}.down"
        self.notice = folder / f"{app.name}.notify"
        self.opened, self.opened_at = False, 0.0

    def show_notice(self) -> None:
        """Put up the notice pyinfra staged (--notice-file), unless the app is down already.
        Done here, once the deploy holds the lock and has something to do, so that a run that
        never got this far leaves no notice behind; main() takes it down if we stop early."""
        staged = Path(self.app.options.notice_file) if self.app.options.notice_file else None
        if staged is None or not staged.is_file():
            return
        if not self.flag.exists() and self.app.web2py_link.exists():
            temp = self.notice.with_name(f".{self.notice.name}.{os.getpid()}")
            shutil.copyfile(staged, temp)
            os.chmod(temp, 0o644)
            os.replace(temp, self.notice)  # nginx reads the old or the new, never half
            log(f"{self.app.name}: notice up for {self.app.options.notice_seconds:.0f}s")
        staged.unlink(missing_ok=True)

    def wait_for_notice(self) -> None:
        """Let the notice stay up for --notice-seconds, counted from when it went up: preparing
        the release runs meanwhile."""
        try:
            until = self.notice.stat().st_mtime + self.app.options.notice_seconds
        except OSError:
            return
        if until > time.time():
            time.sleep(max(0.0, until - time.time()))

    def open(self, why: str) -> None:
        """Take the app down (503 and its page), after its notice's time, and let the requests
        already passed finish; an app that is down already or serves nothing yet is left."""
        if not self.app.web2py_link.exists():
            return  # a new app: nothing serves yet
        if self.flag.exists():
            log(f"{self.app.name}: already down for maintenance; it stays down")
            return
        self.wait_for_notice()
        self.flag.parent.mkdir(parents=True, exist_ok=True)
        temp = self.flag.with_name(f".{self.flag.name}.{os.getpid()}")
        temp.write_text(f"{RUN_MARK} {os.getpid()}\n")  # recover: a dead run's window is lifted
        os.replace(temp, self.flag)
        self.opened, self.opened_at = True, time.monotonic()
        log(f"{self.app.name}: down for maintenance ({why})")
        self.drain()

    def drain(self) -> None:
        """Requests nginx passed before the flag finish first: wait (bounded) until every uWSGI
        worker is idle. Other apps' traffic can keep workers busy: then go on after the bound."""
        deadline = time.monotonic() + self.app.options.drain_timeout
        while time.monotonic() < deadline:
            workers = uwsgi.workers(self.app.layout.stats)
            if all(w.get("status") == "idle" for w in workers):
                return
            time.sleep(0.05)
        log(f"{self.app.name}: workers still busy after {self.app.options.drain_timeout:.0f}s")

    def close(self) -> float | None:
        """Lift the window; the seconds the app answered 503 (None: it was not taken down)."""
        if not self.opened:
            return None
        # The notice goes while the flag still holds, not when it went up: a request that
        # passed the flag test just before would lose its notice and look like the app is up.
        self.notice.unlink(missing_ok=True)
        self.flag.unlink(missing_ok=True)
        self.opened = False
        log(f"{self.app.name}: up")
        return time.monotonic() - self.opened_at


def lift_dead_runs_window(app: App) -> bool:
    """Lift a maintenance window a run opened and never closed (it died): its flag says so.
    Called under the app's lock, so no live run owns such a flag. An operator's own ``down``
    (an empty flag) stays."""
    window = Window(app)
    try:
        left = window.flag.read_text().startswith(RUN_MARK)
    except OSError:
        return False
    if left:
        window.opened = True
        window.close()
    return left
