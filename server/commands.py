"""The tool's subcommands, one function each: what the cli module calls with typed settings."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from operations import formats
from operations.formats import EXIT_FAILED, RELEASE_ID, AuditRecord
from server import backups, files, golive, recover, releases, reload_lock, schedulers, uwsgi
from server.app import App
from server.drift import release_drift
from server.errors import Failure, as_failure, log
from server.lock import holder_alive
from server.settings import CleanupOptions, DeployOptions, Layout, RestoreOptions

SCRATCH_DIRS = ("sessions", "errors", "cache")  # runtime files cleanup removes when old


def _staged(app: App, options: DeployOptions) -> list[str]:
    """The files pyinfra staged for this deploy: removed once it ends, whatever the outcome."""
    extra = [app.options.appconfig, app.options.appconfig_masked, *app.options.seeds.values()]
    return [options.package, *extra]


def _finish(app: App, entry: AuditRecord, started: float) -> None:
    """Audit the run (if it got as far as a result) and release the lock."""
    entry.duration_s = round(time.time() - started, 3)
    if entry.result is not None:
        app.audit(entry)
    app.lock.release()


def deploy(app: App, options: DeployOptions) -> int:
    """Make the package (or delta) pyinfra staged the app's live release (golive.go_live)."""
    started = time.time()
    meta = {
        "sha256": options.sha256,
        "version": options.version,
        "who": app.options.who,
        "config_sha256": options.config_sha256,
        "settings": options.settings,
        "when": formats.utc_stamp(started),
    }
    release = f"{formats.utc_stamp(started)}-{options.sha256[:12]}"
    entry = AuditRecord(
        action="deploy", who=app.options.who, when=meta["when"], version=options.version,
        package_sha256=options.sha256, release=release,
    )  # fmt: skip
    app.lock.acquire(app.options.who, options.version, app.options.lock_wait)
    try:
        recover.recover(app, app.options.who)  # what a run that died left, undone first
        live = app.revision(app.live_release())
        if (live.get("sha256"), live.get("config_sha256", "")) == (
            options.sha256,
            options.config_sha256,
        ):
            log(f"{app.name}: the live release already holds {options.sha256[:12]}")
            entry.result = "unchanged"
            entry.release = app.live_release()  # the release that holds it, not a new id
            return 0

        def unpack() -> Path:
            if options.delta_sha256:
                package, digest = Path(options.package), options.delta_sha256
                return releases.unpack_delta(app, package, digest, release, meta)
            return releases.unpack(app, Path(options.package), options.sha256, release, meta)

        code = golive.go_live(app, release, unpack, entry, backup=options.backup)
        if code == 0 or app.scheduler_stopped:
            schedulers.restart_app_scheduler(app, entry)  # never raises: the release stays live
        return code
    except Failure as error:  # before go_live: nothing switched
        entry.result = f"failed: {error}"
        raise
    finally:
        _finish(app, entry, started)
        for staged in _staged(app, options):
            if staged:
                Path(staged).unlink(missing_ok=True)


def restore(app: App, options: RestoreOptions) -> int:
    """Restore a backup as a new release (code), and its data only with ``restore_data``."""
    started = time.time()
    zip_path = backups.verified(app, options.backup_name)
    name = zip_path.name
    app.keep_backup.add(name)  # the restore's own fresh backup must not prune it
    digest = formats.sha256_file(zip_path)
    release = f"{formats.utc_stamp(started)}-restore-{digest[:8]}"
    meta = {
        "sha256": f"restore:{digest}",
        "version": f"restored from {name}",
        "who": app.options.who,
        "settings": app.revision(app.live_release()).get("settings", {}),
        "when": formats.utc_stamp(started),
    }
    entry = AuditRecord(
        action="restore", who=app.options.who, when=meta["when"], version=meta["version"],
        package_sha256=digest, release=release, restored_from=name,
        restore_data=options.restore_data,
    )  # fmt: skip
    app.lock.acquire(app.options.who, f"restore {name}", app.options.lock_wait)
    try:
        recover.recover(app, app.options.who)  # what a run that died left, undone first
        # the backup first, so that the restore itself can be undone; data only under
        # maintenance (go_live takes the app down for it)
        code = golive.go_live(
            app,
            release,
            lambda: releases.unpack_backup(app, zip_path, release, meta),
            entry,
            backup=True,
            data=(lambda: backups.restore_data(app, zip_path)) if options.restore_data else None,
        )
        if code == 0 or app.scheduler_stopped:
            schedulers.restart_app_scheduler(app, entry)  # never raises: the release stays live
        return code
    finally:
        _finish(app, entry, started)


def rollback(app: App, to: str = "") -> int:
    """Back to the previous good release (by the release log) or a named one, under the lock:
    the target is chosen once the lock is held, so a deploy that just ended counts."""
    started = time.time()
    what = f"rollback to {to or 'previous'}"
    app.lock.acquire(app.options.who, what, app.options.lock_wait)
    entry = AuditRecord(action="rollback", who=app.options.who, when=formats.utc_stamp(started))
    try:
        recover.recover(app, app.options.who)  # what a run that died left, undone first
        live = app.live_release()
        good = [r for r in app.good_releases() if r != live]
        target = to if to and to != "previous" else (good[-1] if good else None)
        if not target or not RELEASE_ID.fullmatch(target) or not (app.releases / target).is_dir():
            raise Failure(f"{app.name}: no release to roll back to ({to or 'previous'})")
        if target == live:
            log(f"{app.name}: release {target} is already live")
            return 0
        app.apply_recorded(target)  # the target's own health check
        entry.from_release, entry.release = live, target
        entry.version = app.revision(target).get("version")
        entry.package_sha256 = app.revision(target).get("sha256")
        golive.require_uwsgi(app, entry)
        try:
            golive.go_to(app, target)
            if live:
                app.record(live, "rolled-back")
            app.record(target, "live")  # last: the log's last line is what is live
            entry.result = "ok"
            log(f"{app.name}: rolled back from {live} to {target}")
            schedulers.restart_app_scheduler(app, entry)  # never raises: the rollback stands
            return 0
        except Exception as error:  # whatever broke, what was live serves again
            error = as_failure(error, f"{app.name}: rollback to {target}")
            entry.result = f"failed: {error}"
            if live:
                golive.switch(app, live)
                golive.reload_back(app, entry, f"switching back to {live}")
            print(f"{error} (kept {live})", file=sys.stderr)
            return EXIT_FAILED
    finally:
        _finish(app, entry, started)


def info_overlays(app: App, release: str) -> list[str]:
    """The files of ``release`` that are the server's by design (its REVISION's overlays)."""
    return list(app.revision(release).get("overlays") or [])


def last_attention(app: App) -> str | None:
    """Why the app needs the operator's attention, from its last audit record (None: it
    does not)."""
    try:
        lines = (app.base / "audit.jsonl").read_text().splitlines()
        return json.loads(lines[-1]).get("attention") if lines else None
    except (OSError, ValueError, AttributeError):
        return None


def left_by_a_dead_run(app: App) -> str | None:
    """What a run that died left for the next one to undo (None: nothing, or a live run holds
    the lock and is still at work)."""
    holder_dead = app.lock.held() and holder_alive(app.lock.info()) is False
    if app.lock.held() and not holder_dead:
        return None
    left = recover.unconfirmed(app)
    if left:
        return (
            f"release {left} was switched to by a run that died before confirming it; the "
            "next deploy, rollback or unlock puts the last good release back"
        )
    if holder_dead:
        return "the run holding the lock died; the next deploy, rollback or unlock recovers"
    return None


def status(app: App) -> int:
    """Print the app's state as JSON: live release, its REVISION, lock, releases, good ones."""
    live = app.live_release()
    info = {
        "live": live,
        "revision": app.revision(live),
        "locked": app.lock.state(),
        "releases": app.release_ids(),  # not a staging folder (.<id>.tmp)
        "good": app.good_releases(),
        "down": (Path(app.layout.maintenance_dir) / f"{app.name}.down").exists(),
        "drift": release_drift(app.releases / live, info_overlays(app, live)) if live else None,
        "attention": last_attention(app) or left_by_a_dead_run(app),
    }
    print(json.dumps(info, sort_keys=True))
    return 0


def backup(app: App) -> int:
    """Back the app up now (a snapshot: retrieve fetches it), under its lock."""
    app.lock.acquire(app.options.who, "backup")
    try:
        recover.recover(app, app.options.who)  # a backup of one confirmed state, not half
        name = backups.backup(app)
    finally:
        app.lock.release()
    log(
        f"{app.name}: backup {app.layout.backups_dir}/{name}"
        if name
        else f"{app.name}: nothing to back up"
    )
    return 0


def cleanup(app: App, options: CleanupOptions) -> int:
    """Old sessions, errors and cache entries; backups and releases beyond retention.
    A dry run prints what would go as JSON (a fact reads it); otherwise it is removed."""
    cutoff = time.time() - options.days * 86400
    # The app user writes these folders: walked by descriptor without following a link, and
    # files removed relative to their folder's descriptor, so a link planted anywhere in them
    # (or a folder swapped for one meanwhile) never makes root delete outside them.
    stale = files.old_scratch_files(app.shared, SCRATCH_DIRS, cutoff)
    old_releases = releases.prune(app, dry_run=True)
    old_backups = backups.prune(app, dry_run=True)
    freed = sum(size for _, _, size in stale)
    freed += sum(p.stat().st_size for p in old_backups)
    freed += sum(
        f.lstat().st_size
        for rel in old_releases
        for f in (app.releases / rel).rglob("*")
        if f.is_file()
    )
    if options.dry_run:
        report = {
            "files": len(stale),
            "releases": old_releases,
            "backups": [p.name for p in old_backups],
            "bytes": freed,
        }
        print(json.dumps(report, sort_keys=True))
        return 0
    app.lock.acquire(app.options.who, "cleanup")
    try:
        recover.recover(app, app.options.who)  # never prune around what a dead run left
        files.remove_old_scratch_files(app.shared, SCRATCH_DIRS, cutoff)
        releases.prune(app)  # and the staging folders a killed run left
        backups.remove_partials(app)  # what a killed backup left
        backups.prune(app)
    finally:
        app.lock.release()
    log(
        f"{app.name}: removed {len(stale)} old files, {len(old_releases)} releases, "
        f"{len(old_backups)} backups: {freed / 1e6:.1f} MB freed"
    )
    return 0


def reload(layout: Layout, timeout: float = 60) -> int:
    """uWSGI's chain reload (systemctl reload web2py-uwsgi runs this)."""
    with reload_lock.held(layout.apps_dir, timeout):  # not while a deploy reloads it
        uwsgi.chain_reload(layout.fifo, layout.stats, timeout, layout.user)
    log("uWSGI chain reload complete")
    return 0


def unlock(app: App) -> int:
    """Release a lock whose holder is dead; a holder that still runs is left alone."""
    if not app.lock.held():
        log(f"{app.name}: not locked")
        return 0
    info = app.lock.info()
    if holder_alive(info):
        raise Failure(
            f"{app.name}: {app.lock.holder()} is still running (pid "
            f"{info.get('pid')}): wait for it to end; nothing was removed"
        )
    log(f"{app.name}: removing lock: {app.lock.holder()}")
    app.lock.release()
    app.lock.acquire(app.options.who, "unlock")  # Locked if a new run took it meanwhile
    try:
        recover.recover(app, app.options.who, died=True)  # what the dead run left, undone
    finally:
        app.lock.release()
    return 0


def scheduler_stop(layout: Layout, app: str, pid: str, stop_timeout: float = 60) -> int:
    """The scheduler unit's ExecStop (as the web2py user, $MAINPID in ``pid``): a graceful
    stop. Ask the worker to TERMINATE (it finishes its running task, then exits) and wait for
    it, up to ``stop_timeout``; then, or if web2py cannot ask, SIGTERM. Always returns 0:
    systemd's own SIGTERM and SIGKILL follow anyway."""
    number = int(pid) if pid.isdigit() else 0
    if not number or not schedulers.process_alive(number):
        return 0  # it exited by itself (systemd runs ExecStop then too)
    started = time.monotonic()
    deadline = started + stop_timeout
    worker = f"{socket.gethostname()}#{number}"  # web2py's default worker name
    asked_at = None
    while schedulers.process_alive(number) and time.monotonic() < deadline:
        if asked_at is None or time.monotonic() - asked_at > 15:
            # again every 15 s: a heartbeat written just after our update can overwrite it
            timeout = max(1.0, min(60.0, deadline - time.monotonic()))
            asked = schedulers.ask_terminate(layout, app, worker, timeout)
            if asked is None or (asked == 0 and asked_at is None):
                break  # unknown to web2py: the signal it is
            if asked_at is None:
                log(f"asked {worker} to terminate: a running task finishes first")
            asked_at = time.monotonic()
        time.sleep(0.2)
    if schedulers.process_alive(number):
        log(f"{worker} still runs after {time.monotonic() - started:.1f} s: SIGTERM")
        schedulers.stop_by_signal(number, 10)
    log(f"{worker} stopped in {time.monotonic() - started:.1f} s")
    return 0


def scheduler_check(app: str, settle: float) -> int:
    """install_web2py's check: the app's scheduler keeps running for ``settle`` seconds."""
    unit = schedulers.scheduler_unit(app)
    ok, state = schedulers.wait_for_scheduler(unit, settle)
    if ok:
        log(f"{unit}: {state}")
        return 0
    info = schedulers.scheduler_failure(unit, state)
    print(
        f"{unit} is not running {settle:g} s after its start: {schedulers.failure_detail(info)}",
        file=sys.stderr,
    )
    return EXIT_FAILED
