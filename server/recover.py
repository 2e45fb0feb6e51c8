"""Recovery: a run that died (the tool killed, out of memory, the machine rebooted) left the app
as it was at that moment: ``current`` maybe switched but never confirmed, workers maybe half
reloaded, the app maybe down for maintenance. The next run that takes the app's lock puts it
back to one confirmed version first (the dead run is undone, never guessed finished), so that
every exit path ends with one version on every worker and the logs saying which."""

from __future__ import annotations

from operations import formats
from operations.formats import AuditRecord
from server import checks, golive, window
from server.app import App
from server.errors import as_failure, log


def unconfirmed(app: App) -> str | None:
    """The live release when no run confirmed it, the mark of a run that died after its
    switch: ``current`` is not the release of the log's last "live" line, and no run that
    ended recorded it "failed" either (a first release that failed stays, known). None
    otherwise."""
    live = app.live_release()
    history = app.history()
    last_live = next((rel for _, rel, event in reversed(history) if event == "live"), None)
    if not live or live == last_live:
        return None
    events = [event for _, rel, event in history if rel == live]
    return None if events and events[-1] == "failed" else live


def recover(app: App, who: str, died: bool = False) -> None:
    """With the app's lock held: undo what a dead run left, audited as action "recover".
    ``current`` goes back to the last confirmed release (or, when there is none, the
    unconfirmed one is health-checked and kept); the workers are reloaded in every case
    (a run that died during a reload leaves two versions even when ``current`` is right);
    a maintenance window the dead run opened is lifted. Never raises: what cannot be put
    right is the audit record's ``attention``. Needed when a dead run's lock was taken over
    (or ``died``: unlock removed it) or ``current`` was never confirmed."""
    if not (died or app.lock.stale is not None or unconfirmed(app)):
        return
    entry = AuditRecord(action="recover", who=who, when=formats.utc_stamp())
    left = unconfirmed(app)
    good = app.good_releases()
    target = good[-1] if good else left or app.live_release()
    entry.from_release, entry.release = app.live_release(), target
    entry.version = app.revision(target).get("version")
    try:
        if left and target != left:
            golive.switch(app, target)  # type: ignore[arg-type]
            if left not in app.good_releases():  # a new release, never confirmed
                app.record(left, "failed")  # (an older good one, a dead rollback's, stays good)
            log(f"{app.name}: a run that died left {left} unconfirmed; back to {target}")
        if golive.reload_back(app, entry, "recovering from a run that died"):
            if left and target == left:
                checks.health_through_nginx(app)  # the only release there is: keep it if healthy
            if left:
                app.record(target, "live")  # the log's last line says what is live
            entry.result = "ok"
        else:
            entry.result = "failed: the workers were not all reloaded"
    except Exception as error:  # noqa: BLE001 (recorded; the run that called goes on)
        failure = as_failure(error, f"{app.name}: recovering from a run that died")
        entry.result = f"failed: {failure}"
        entry.attention = str(failure)
        log(f"{app.name}: ATTENTION: {failure}")
    if window.lift_dead_runs_window(app):
        log(f"{app.name}: lifted the maintenance window a run that died had opened")
    app.audit(entry)
