"""Rolling an app deploy out to a fleet: batches, failure budget, health gate, summary.

How it works inside pyinfra (which runs each operation on every host before the next): every
host gets the same chain of operations for every batch — its release operations only in its
own batch, and each batch's health gate — so pyinfra's per-host operation order makes batch
``k+1`` start only after batch ``k``'s releases and gate ended on every host. Whether a batch
starts is decided when it is reached (``_if``), from what happened so far (pyinfra's failed
hosts, the gates), kept in one :class:`~operations.local.rollout.Rollout` per run.

    run = rollout.plan()
    for index in host.loop(range(len(run.batches))):
        if run.batch_of(host.name) == index:
            web2py_app.release(..., _if=rollout.starts(run, index))
        rollout.gate(name=f"Health gate, batch {index + 1}", run=run, index=index, ...)
    rollout.undo(...)      # on a stopped rollout with rollout_on_failure="rollback"
    rollout.summary(...)   # the fleet summary, its JSON file, the webhook; exit code
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation
from pyinfra.context import state

from .facts.releases import LastAudit
from .formats import AuditRecord, layout_path
from .local.notify import notify, notify_started
from .local.rollout import Rollout, Watch, plan_batches
from .release_tool import REMOTE_PATH
from .releases import rollback
from .settings.apps import DeploySettings
from .settings.rollout import rollout_settings
from .settings.validators import ConfigError

_RUNS: dict[int, Rollout] = {}
_LOCK = threading.Lock()  # pyinfra prepares hosts in parallel greenlets


def plan(whole_run: bool = False) -> Rollout:
    """This run's rollout (made by the first host that asks; every host must agree on it).
    ``whole_run``: one batch of every host, already begun (a rollback or restore: no roll-out,
    only the summary and the notification)."""
    settings = rollout_settings(host.data)
    with _LOCK:
        run = _RUNS.get(id(state))
        if run is None:
            names = [h.name for h in state.inventory if h in state.activated_hosts]
            run = Rollout(
                plan_batches(names, ("100%",) if whole_run else settings.sizes),
                max_fail_percent=settings.max_fail_percent,
                max_error_rate=settings.max_error_rate,
                soak_seconds=settings.soak_seconds,
                on_failure=settings.on_failure,
            )
            run.settings = settings  # type: ignore[attr-defined]
            if whole_run:
                run.begun.add(0)
            _RUNS[id(state)] = run
        elif run.settings != settings:  # type: ignore[attr-defined]
            raise ConfigError(
                f"{host.name}: rollout_*, fleet_summary_file and notify_* data differ between "
                "hosts of one run: set them for the whole run (group_data/all.py or --data)"
            )
    return run


def failed_names() -> set[str]:
    """The hosts of this run pyinfra has failed so far."""
    return {h.name for h in getattr(state, "failed_hosts", ())}


def starts(run: Rollout, index: int) -> Callable[[], bool]:
    """``_if`` for batch ``index``'s operations: decided when the batch is reached."""
    return lambda: run.may_start(index, failed_names())


def _watch_and_judge(run: Rollout, name: str, command: StringCommand) -> bool:
    ok, output = host.run_shell_command(command, _sudo=True, print_output=False)
    try:
        counts = json.loads(output.stdout_lines[-1]) if ok else None
        watch = Watch(**counts) if counts else None
    except (ValueError, TypeError, IndexError):
        watch = None
    if watch is None:
        why = " ".join(output.stderr_lines)[-200:] or "no answer"
        watch = Watch(requests=0, errors=0, probes=1, failed_probes=1)
        logger.warning(f"{name}: the health gate's watch failed: {why}")
    passed = run.gate(name, watch)
    log = logger.info if passed else logger.error
    verdict = "passed" if passed else "FAILED"
    healthy = watch.probes - watch.failed_probes
    log(
        f"{name}: health gate {verdict}: {healthy}/{watch.probes} health checks, "
        f"{watch.errors} of {watch.requests} requests 5xx"
    )
    return True  # the rollout's decision is the gate's, not this host's failure


@operation()
def gate(run: Rollout, index: int, watch_command: StringCommand):
    """
    Watch a batch's hosts for ``rollout_soak_seconds`` after they went live; a host whose
    health checks fail or whose 5xx rate exceeds ``rollout_max_error_rate`` stops the rollout.

    + run: this run's rollout (:func:`plan`)
    + index: the batch (0-based)
    + watch_command: the server-side watch that prints its counts as one JSON line

    Hosts of other batches, and runs without a soak, pass without a command.
    """
    if run.batch_of(host.name) != index or not run.soak_seconds:
        host.noop("no health gate here")
        return
    if state.is_executing and not run.batch_changed(index):
        return  # nothing went live in this batch: nothing to watch
    name = host.name

    def watch_and_judge() -> bool:  # (a closure: fixtures see its name, not the rollout)
        return _watch_and_judge(run, name, watch_command)

    yield FunctionCommand(watch_and_judge, (), {})


def _record(run: Rollout, app_name: str, apps_dir: str, result: str) -> bool:
    entry = AuditRecord.from_dict(host.get_fact(LastAudit, apps_dir=apps_dir, app_name=app_name))
    run.record(
        host.name, app_name, release=entry.release, version=entry.version,
        result=entry.result, seconds=entry.duration_s,
    )  # fmt: skip
    run.finish_host(host.name, result, sum(
        info.get("seconds") or 0 for info in run.outcomes[host.name].apps.values()
    ))  # fmt: skip
    settings = run.settings  # type: ignore[attr-defined]
    if result == "updated" and settings.webhook_url and run.announce():
        batches = [list(batch) for batch in run.batches]
        why = notify_started(
            settings.webhook_url, settings.webhook_token_env, "deploy", batches, host.name
        )
        if why:
            logger.warning(f"fleet: {why}")
    return True


@operation()
def record(run: Rollout, app_name: str, config: DeploySettings, result: str = "updated"):
    """
    Record what the release (or rollback) that just ran on this host did, for the summary.

    + run: this run's rollout
    + app_name: the app's name
    + config: the deploy settings (where the app's audit log is)
    + result: the host's result to record ("updated", "rolled back")
    """

    def record_outcome() -> bool:
        return _record(run, app_name, config.apps_dir, result)

    yield FunctionCommand(record_outcome, (), {})


@operation()
def undo(run: Rollout, app_name: str, config: DeploySettings):
    """
    Roll this host's ``app`` back to its previous release when the rollout stopped with
    ``rollout_on_failure = "rollback"`` and this run updated the host; otherwise nothing.

    + run: this run's rollout
    + app_name: the app's name
    + config: the deploy settings (as for ``releases.rollback``)

    Decided when reached, so it reads no fact while the run is planned.
    """
    if not state.is_executing:
        host.noop(f"{app_name}: a rollback happens only if the rollout stops")
        return
    if not (run.to_rollback() and run.outcomes[host.name].result == "updated"):
        host.noop(
            f"{app_name}: no rollback (the rollout was not stopped, or this host kept its release)"
        )
        return
    yield from rollback._inner(app_name=app_name, config=config)


def _finish(state: Any, host: Any, run: Rollout, event: str, last_host: str) -> bool:
    # (state, host) first: pyinfra then takes the return value as the command's status, so
    # False fails this host's operation — once, on one host — and the run exits non-zero.
    run.settle(failed_names())
    if host.name != last_host:
        return True
    summary = run.summary()
    width = max(len(h) for h in run.hosts)
    for row in summary["hosts"]:
        apps = ", ".join(
            f"{app} {info.get('release', '-')} ({info.get('version', '-')})"
            for app, info in sorted(row["apps"].items())
            if not app.startswith("_")
        )
        logger.info(f"fleet: {row['host']:<{width}} batch {row['batch']} {row['result']}: {apps}")
    path = run.settings.summary_file  # type: ignore[attr-defined]
    if path:
        Path(path).write_text(json.dumps({"event": event, **summary}, indent=2) + "\n")
        logger.info(f"fleet: summary written to {path}")
    settings = run.settings  # type: ignore[attr-defined]
    why = notify(settings.webhook_url, settings.webhook_token_env, event, summary)
    if why:
        logger.warning(f"fleet: {why}")
    if run.stopped:
        logger.error(run.stopped)
        return False
    return True


@operation()
def summary(run: Rollout, event: str = "deploy"):
    """
    Print the fleet summary (per host: batch, result, each app's live release), write it as
    JSON (``fleet_summary_file``), post it to ``notify_webhook_url``; a stopped rollout fails
    here, once, with the line saying which batch and host stopped it and why.

    + run: this run's rollout
    + event: what ran ("deploy", "rollback", "restore")
    """
    failed = failed_names()
    if state.is_executing and not run.has_news(failed):
        return  # nothing happened: an unchanged run stays unchanged
    active = [name for name in run.hosts if name not in failed]
    # the stopped run fails on one host: the one whose gate stopped it, else the last one
    last = run.stopper if run.stopper in active else (active[-1] if active else host.name)

    def finish(state: Any, host: Any) -> bool:  # (state, host): its result is the status
        return _finish(state, host, run, event, last)

    yield FunctionCommand(finish, (), {})


def watch_command(app_names: list[str], config_dir: str, seconds: float) -> StringCommand:
    """The release tool's ``watch`` of these apps for ``seconds`` (it prints one JSON line).
    The tool is on the server: the batch's release operations put it there."""
    args = ["watch", "--layout", layout_path(config_dir), "--seconds", f"{seconds:g}"]
    for name in app_names:
        args += ["--app", name]
    return StringCommand(REMOTE_PATH, *(QuoteString(a) for a in args))
