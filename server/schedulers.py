"""An app's scheduler (the unit web2py-scheduler@<app>): graceful stops and restarts, and whether
it keeps running."""

from __future__ import annotations

import grp
import os
import pwd
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from operations.formats import AuditRecord
from server.errors import log
from server.settings import SCHEDULER_SETTLE, Layout

if TYPE_CHECKING:
    from server.app import App

# An app's scheduler is the unit web2py-scheduler@<app> (`web2py.py -K <app>`, from
# templates/web2py-scheduler@.service.j2). Deploys, rollbacks and restores restart it once the
# new release is live, so it runs that release's code; its ExecStop (scheduler-stop, below)
# makes every stop graceful: web2py's own TERMINATE lets a running task finish. A bare SIGTERM
# is not graceful, nor even a stop, for web2py 2.x's worker: it stops the running task (STOPPED)
# and goes on with the next one; only when idle does it exit.

UNIT_PROPERTIES = ("ActiveState", "SubState", "MainPID", "ExecMainStatus", "TimeoutStopUSec")
TERMINATE_MARK = "pyinfra-web2py-terminate:"
# Run by `web2py.py -S APP -M -R` (so with the app's models, which define its Scheduler and
# its database): asks one worker, by name, to TERMINATE. Scheduler.terminate() cannot name a
# worker in web2py 2.26 (it ignores worker_name) and would stop every worker of the group,
# those of other hosts sharing the database too.
TERMINATE_SCRIPT = """\
import sys
from gluon import current
scheduler = getattr(current, '_scheduler', None)
if scheduler is None:
    print('MARK none')
else:
    workers = scheduler.db.scheduler_worker
    asked = scheduler.db(workers.worker_name == sys.argv[1]).update(status='TERMINATE')
    scheduler.db.commit()
    print('MARK %d' % asked)
""".replace("MARK", TERMINATE_MARK)


def scheduler_unit(app: str) -> str:
    """The systemd unit of app ``app``'s scheduler."""
    return f"web2py-scheduler@{app}.service"


def parse_properties(text: str) -> dict[str, str]:
    """`systemctl show` output (KEY=VALUE lines) as a dict."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


def unit_properties(unit: str) -> dict[str, str]:
    """The unit's state (UNIT_PROPERTIES) as systemd shows it."""
    result = subprocess.run(
        ["systemctl", "show", unit, f"--property={','.join(UNIT_PROPERTIES)}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return parse_properties(result.stdout)


TIMESPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_timespan(text: str) -> float | None:
    """systemd's time span ("1min 30s", "500ms") in seconds; None for "infinity" or nonsense."""
    total, parts = 0.0, text.split()
    for part in parts:
        found = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s|min|h|d)", part)
        if not found:
            return None
        total += float(found.group(1)) * TIMESPAN_UNITS[found.group(2)]
    return total if parts else None


def describe_unit(props: dict[str, str]) -> str:
    """'active (running), pid 42' or 'activating (auto-restart), last exit status 0'."""
    state = f"{props.get('ActiveState') or '?'} ({props.get('SubState') or '?'})"
    if props.get("MainPID", "0") not in ("", "0"):
        return f"{state}, pid {props['MainPID']}"
    if props.get("ExecMainStatus", "") != "":
        return f"{state}, last exit status {props['ExecMainStatus']}"
    return state


def scheduler_verdict(
    props: dict[str, str], first_pid: str | None, running_for: float, settle: float
) -> str:
    """'up', 'wait' or 'down' for a scheduler unit seen in state ``props``, whose main process
    ``first_pid`` (None: none seen yet) has been seen running for ``running_for`` seconds."""
    pid = props.get("MainPID", "0") or "0"
    if props.get("ActiveState") == "active" and props.get("SubState") == "running" and pid != "0":
        if first_pid is not None and pid != first_pid:
            return "down"  # it exited and was started again in between
        return "up" if first_pid is not None and running_for >= settle else "wait"
    if props.get("ActiveState") == "activating" and props.get("SubState") in (
        "start-pre", "start", "start-post", "condition",
    ):  # fmt: skip
        return "wait"
    return "down"  # auto-restart, failed, inactive, deactivating...


def wait_for_scheduler(
    unit: str, settle: float, properties=unit_properties, clock=time.monotonic, sleep=time.sleep
) -> tuple[bool, str]:
    """Watch ``unit`` until one main process has kept running for ``settle`` seconds: (True,
    its state) or, as soon as it exits, restarts or fails, (False, what it is doing)."""
    deadline = clock() + settle + 30
    first_pid, since = None, clock()
    while True:
        props = properties(unit)
        now = clock()
        verdict = scheduler_verdict(props, first_pid, now - since, settle)
        pid = props.get("MainPID", "0") or "0"
        if verdict == "down" and first_pid is not None and pid not in ("0", first_pid):
            return False, f"restarted (pid {first_pid}, then {pid})"
        if verdict != "wait":
            return verdict == "up", describe_unit(props)
        if first_pid is None and pid != "0" and props.get("SubState") == "running":
            first_pid, since = pid, now
        if now > deadline:
            return False, f"not running for {settle:g} s after {settle + 30:g} s: " + (
                describe_unit(props)
            )
        sleep(0.25)


def journal_tail(unit: str, lines: int = 4) -> str:
    """The last lines the unit's own processes wrote to the journal, on one line."""
    for attempt in range(2):
        try:
            result = subprocess.run(
                ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines),
                 f"_SYSTEMD_UNIT={unit}"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return ""
        found = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        if found or attempt:
            return " | ".join(found)[-600:]
        time.sleep(1)  # journald may not have indexed the last lines yet
    return ""


def scheduler_failure(unit: str, state: str) -> dict:
    """What the audit entry and the operator get when a scheduler is not up: its state, the
    journal's last lines and, when they show it, the usual cause."""
    journal = journal_tail(unit)
    info = {"ok": False, "state": state, "journal": journal}
    if "_scheduler" in journal:
        info["hint"] = "the app's models define no Scheduler (web2py.py -K needs one)"
    return info


def failure_detail(info: dict) -> str:
    """A scheduler failure (:func:`scheduler_failure`) as text: state, hint, journal."""
    return (
        info["state"]
        + (f" ({info['hint']})" if info.get("hint") else "")
        + (f"; journal: {info['journal']}" if info.get("journal") else "; journal: empty")
    )


def failure_line(unit: str, info: dict) -> str:
    """The operator's line for a scheduler that is not up."""
    return f"{unit}: {failure_detail(info)}"


def scheduler_enabled(unit: str) -> bool:
    """True when the unit is enabled (False without systemd)."""
    try:
        enabled = subprocess.run(
            ["systemctl", "is-enabled", unit], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False  # no systemd here: no scheduler
    return enabled == "enabled"


def scheduler_job(unit: str, action: str) -> str | None:
    """``systemctl stop|restart`` of a scheduler unit, bounded (its ExecStop waits for a running
    task, then systemd's SIGTERM and SIGKILL, each bounded by the unit's stop timeout): None
    when it went through, else why not."""
    stop = parse_timespan(unit_properties(unit).get("TimeoutStopUSec", "")) or 90.0
    try:
        result = subprocess.run(
            ["systemctl", action, unit], capture_output=True, text=True, timeout=2 * stop + 60
        )
    except subprocess.TimeoutExpired:
        return f"systemctl {action} did not return in {2 * stop + 60:.0f} s"
    if result.returncode != 0:
        error = (result.stderr.strip().splitlines() or ["?"])[-1]
        return f"systemctl {action} exited {result.returncode}: {error}"
    return None


def restart_scheduler(app: str, settle: float = SCHEDULER_SETTLE) -> dict | None:
    """Restart the app's scheduler if its unit is enabled (None when it is not): the unit's
    ExecStop lets a running task finish first (bounded by its stop timeout); then the new
    worker must keep running for ``settle`` seconds. Returns what happened, for the audit."""
    unit = scheduler_unit(app)
    if not scheduler_enabled(unit):
        return None
    started = time.monotonic()
    log(f"{app}: restarting {unit} (a running task may finish first)")
    error = scheduler_job(unit, "restart")
    if error:
        info = scheduler_failure(unit, error)
    else:
        ok, state = wait_for_scheduler(unit, settle)
        info = {"ok": True, "state": state} if ok else scheduler_failure(unit, state)
    info["seconds"] = round(time.monotonic() - started, 1)
    if info["ok"]:
        log(f"{app}: {unit} restarted in {info['seconds']:.1f} s: {info['state']}")
    else:
        print(f"{app}: scheduler not running: {failure_line(unit, info)}", file=sys.stderr)
    return {"unit": unit, **info}


def stop_app_scheduler(app: App) -> None:
    """While an app is down (its data adopted, restored, or backed up as a consistent
    snapshot): its scheduler must not write either. Stop it, gracefully (a running task
    finishes first); restart_app_scheduler starts it again, whatever the deploy's outcome."""
    unit = scheduler_unit(app.name)
    if not scheduler_enabled(unit):
        return
    started = time.monotonic()
    error = scheduler_job(unit, "stop")
    app.scheduler_stopped = True  # started again at the end, even if the stop failed
    took = time.monotonic() - started
    log(f"{app.name}: {unit}: {error}" if error else f"{app.name}: {unit} stopped ({took:.1f} s)")


def restart_app_scheduler(app: App, entry: AuditRecord) -> None:
    """After a release went live (or after a failed deploy that stopped it): restart the app's
    scheduler, if it has one, and record the outcome in the audit entry. Never raises: the
    release is live and healthy, and a scheduler that did not come back is reported (and
    retried by systemd), not rolled back for."""
    app.scheduler_stopped = False
    try:
        info = restart_scheduler(app.name, app.options.settle)
    except Exception as error:  # noqa: BLE001 (reported, never fatal)
        info = {"unit": scheduler_unit(app.name), "ok": False, "state": f"{error!r}"}
    if info is not None:
        entry.schedulers = {info.pop("unit"): info}


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists."""
    return Path(f"/proc/{pid}").exists()


def ask_terminate(layout: Layout, app: str, worker: str, timeout: float) -> int | None:
    """Ask the worker named ``worker`` to TERMINATE through web2py (the app's models open its
    scheduler's database): the number of workers asked, or None when web2py could not."""
    fd, script = tempfile.mkstemp(prefix="terminate-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(TERMINATE_SCRIPT)
        as_user = {}
        if os.geteuid() == 0:  # run by hand as root: web2py runs as its user, as in the unit
            uid, gid = pwd.getpwnam(layout.user).pw_uid, grp.getgrnam(layout.group).gr_gid
            os.chown(script, uid, gid)
            as_user = {"user": uid, "group": gid, "extra_groups": []}
        result = subprocess.run(
            ["python3", "web2py.py", "--no_banner", "-S", app, "-M", "-R", script,
             "-A", worker],
            cwd=layout.web2py_root, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, **as_user,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as error:
        log(f"could not ask {worker} to terminate: {error}")
        return None
    finally:
        os.unlink(script)
    for line in result.stdout.splitlines():
        if line.startswith(TERMINATE_MARK):
            value = line[len(TERMINATE_MARK) :].strip()
            if value.isdigit():
                return int(value)
            log(f"{app}: its models define no Scheduler: cannot ask {worker} to terminate")
            return None
    tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
    log(f"could not ask {worker} to terminate (exit {result.returncode}): {tail}")
    return None


def stop_by_signal(pid: int, seconds: float) -> None:
    """SIGTERM until the worker exits (bounded): the first stops its running task, if any, and
    the worker goes on; a later one finds it idle, and it exits."""
    deadline = time.monotonic() + seconds
    while process_alive(pid) and time.monotonic() < deadline:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait_until = min(deadline, time.monotonic() + 2)
        while process_alive(pid) and time.monotonic() < wait_until:
            time.sleep(0.1)
