"""Going live: the atomic switch, the chain reload and health check, and the way back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from operations import formats
from operations.formats import EXIT_FAILED, AuditRecord
from server import (
    backups,
    bounded,
    checks,
    detach,
    releases,
    reload_lock,
    schedulers,
    shared,
    uwsgi,
)
from server.app import App
from server.errors import Failure, as_failure, cause, log
from server.window import Window


def switch(app: App, release: str) -> None:
    """Point ``current`` at ``release`` (rename(2) of a new link: never a moment without one)
    and ``applications/APP`` at ``current``; a plain app folder there is set aside."""
    temp = app.base / f".current-{os.getpid()}"
    temp.unlink(missing_ok=True)
    os.symlink(f"releases/{release}", temp)
    os.replace(temp, app.current)
    link = app.web2py_link
    if link.is_symlink() and os.readlink(link) == str(app.current):
        return
    if link.exists() and not link.is_symlink():
        legacy = link.with_name(f".{app.name}.pre-releases-{formats.utc_stamp()}")
        os.rename(link, legacy)
        app.set_aside = legacy
        log(f"{app.name}: adopted the existing app folder; it was moved to {legacy}")
    temp_link = link.with_name(f".{app.name}.link-{os.getpid()}")
    temp_link.unlink(missing_ok=True)
    os.symlink(app.current, temp_link)
    os.replace(temp_link, link)


def reload(app: App) -> None:
    """uWSGI's chain reload, waiting until every worker is new (one reload at a time on the
    server: another app's deploy may be reloading the same uWSGI, see server.reload_lock)."""
    with reload_lock.held(app.layout.apps_dir, app.options.reload_timeout):
        uwsgi.chain_reload(app.layout.fifo, app.layout.stats, app.options.reload_timeout)


def require_uwsgi(app: App, entry: AuditRecord) -> None:
    """Before a run changes anything: uWSGI must be running, or the run ends here in one line
    (audited). A stopped app server is the operator's state (or an outage to look at): a deploy
    does not start it behind their back, and without it no release could be checked live."""
    try:
        uwsgi.require_running(app.layout.fifo, app.layout.stats)
    except Failure as error:
        failure = Failure(f"{app.name}: {error}; nothing was changed")
        entry.result = f"failed: {failure}"
        raise failure from None


def go_to(app: App, release: str) -> None:
    """Switch to ``release``, reload, and check its health through nginx (raises Failure)."""
    switch(app, release)
    detach.pause("rollback-after-switch")  # test-only (server.detach.pause)
    reload(app)
    detach.pause("health-check")  # test-only (server.detach.pause)
    checks.health_through_nginx(app)


def reload_back(app: App, entry: AuditRecord, what: str) -> bool:
    """The chain reload after a switch back, waited for (bounded by the reload timeout): every
    worker serves the release that is live again. If that fails, one line says so and the
    audit record marks the app as needing attention (workers may serve two versions)."""
    try:
        reload(app)
        return True
    except Exception as error:  # the app must be flagged, whatever broke
        detach.note_exception(error)
        entry.attention = f"after {what}, the workers were not all reloaded: {cause(error)}"
        print(f"{app.name}: ATTENTION: {entry.attention}; check the app and reload uWSGI "
              "(pyinfra INVENTORY deploys/webserver.py --data webserver_action=reload)",
              file=sys.stderr)  # fmt: skip
        return False


def unadopt(app: App) -> None:
    """Put the plain app folder this deploy set aside back in place (its release failed
    after the switch, and there is no earlier release to go back to)."""
    if not app.set_aside:
        return
    link = app.web2py_link
    if link.is_symlink():
        link.unlink()  # a moment without the app (404) rather than a failed release
    os.rename(app.set_aside, link)
    app.current.unlink(missing_ok=True)
    app.set_aside = None
    log(f"{app.name}: the app folder is back in place")


def drop_set_aside(app: App, backed_up: bool) -> None:
    """Once the adopted release is live: the old folder is in the backup just taken (and
    its data in shared/), so it goes; without a backup it is kept under shared/."""
    if not app.set_aside:
        return
    if backed_up:
        shutil.rmtree(app.set_aside)
        log(f"{app.name}: removed the adopted folder {app.set_aside} (it is in the backup)")
    else:
        kept = app.shared / app.set_aside.name
        os.rename(app.set_aside, kept)
        log(f"{app.name}: the adopted folder is kept as {kept} (no backup was taken)")
    app.set_aside = None


def run_hooks(app: App, stage: str, release_dir: Path) -> None:
    """The app's hooks of ``stage``, in the release folder with $APP and $RELEASE set."""
    for command in json.loads(app.checks.hooks or "{}").get(stage, []):
        try:
            result = bounded.run(
                command, app.options.hook_timeout, shell=True, cwd=release_dir,
                env={**os.environ, "APP": app.name, "RELEASE": release_dir.name},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise Failure(
                f"{app.name}: {stage} hook {command!r} timed out after "
                f"{app.options.hook_timeout:g}s (deploy_hook_timeout_seconds); it was killed"
            ) from None
        if result.returncode != 0:
            raise Failure(
                f"{app.name}: {stage} hook {command!r} exited {result.returncode}: "
                f"{result.stderr.strip()[-300:]}"
            )


def _put_back(app: App, previous: str | None, entry: AuditRecord) -> None:
    """After a failure past the switch: what was live serves again."""
    if previous:
        switch(app, previous)
        what, note = "rolling back", f"; rolled back to {previous}"
    else:
        unadopt(app)
        what, note = "putting the app folder back", "; the app folder it adopted is back in place"
    reload_back(app, entry, what)
    if previous:
        app.record(previous, "live")
    entry.result = (entry.result or "") + note


def go_live(
    app: App,
    release: str,
    unpack: Callable[[], Path],
    entry: AuditRecord,
    backup: bool = True,
    data: Callable[[], None] | None = None,
) -> int:
    """Unpack a release (``unpack() -> release dir``), then (down for maintenance if asked, or
    if a plain app folder's data must be adopted) back up, restore ``data()`` if given, check,
    switch, reload, check health; on any failure switch back to what was live. The caller holds
    the lock. The maintenance window, if opened here, is lifted whatever happens."""
    require_uwsgi(app, entry)
    previous = app.live_release()
    switched = False
    window = Window(app)
    step = "unpack"  # named in the operator's line when something unforeseen breaks
    try:
        if app.options.down:
            window.show_notice()
        release_dir = unpack()
        detach.pause("after-unpack")  # test-only (server.detach.pause)
        entry.kept_files = list(app.kept)  # the operator's report names them
        legacy = app.legacy_folder()
        if app.options.down or data or legacy:
            why = (
                "deploy" if app.options.down else "data restore" if data else "adopting its folder"
            )
            window.open(why)
            schedulers.stop_app_scheduler(app)  # nothing writes while the app is down
        step = "backup"
        if backup:
            backups.take(app, entry)
        step = "data"
        if legacy:
            copied = shared.adopt_legacy(app)
            if copied:
                log(f"{app.name}: copied {', '.join(copied)} of {legacy} into shared/")
        if data:
            data()
            detach.pause("after-data-restore")  # test-only (server.detach.pause)
        step = "pre-switch check"
        run_hooks(app, "before_check", release_dir)
        detach.pause("before-check")  # test-only (server.detach.pause)
        checks.precheck(app, release_dir)
        run_hooks(app, "before_switch", release_dir)
        step = "switch"
        switch(app, release)
        switched = True
        detach.pause("after-switch")  # test-only (server.detach.pause)
        step = "chain reload"
        reload(app)
        step = "health check"
        detach.pause("health-check")  # test-only (server.detach.pause)
        checks.health_through_nginx(app)
        run_hooks(app, "after_switch", release_dir)
        app.record(release, "live")
        (app.shared / shared.PROVISIONAL).unlink(missing_ok=True)  # its data is the app's now
        drop_set_aside(app, backed_up=bool(entry.backup))
        removed = releases.prune(app)
        entry.result = "ok"
        log(
            f"{app.name}: release {release} is live"
            + (f"; pruned {', '.join(removed)}" if removed else "")
        )
        return 0
    except Exception as error:  # whatever broke, put back what was live
        error = as_failure(error, f"{app.name}: {step}")
        entry.result = f"failed: {error}"
        app.record(release, "failed")
        if switched and (previous or app.set_aside):
            _put_back(app, previous, entry)
        print(
            f"{error}" + (f" (rolled back to {previous})" if switched and previous else ""),
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        down = window.close()
        if down is not None:
            entry.down_s = round(down, 2)  # for the audit log and the operator's report
