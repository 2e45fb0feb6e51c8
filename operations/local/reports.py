"""What a deploy, rollback, restore or backup did, per host, in words (from the audit log)."""

from __future__ import annotations

from collections.abc import Callable

from pyinfra import host, logger
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import python

from ..facts.releases import Backups, LastAudit
from ..settings.layout import Layout


def human_bytes(n: float) -> str:
    """A size in bytes, in words (kB, MB, GB: powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # not reached


def report_lines(host_name: str, app_name: str, backups_dir: str, entry: dict) -> list[str]:
    """What a deploy, rollback or restore did (its audit line), and how to undo it."""
    action = entry.get("action", "deploy")
    line = f"{host_name}: {app_name}: {action} {entry.get('result', '?')}"
    line += f", release {entry.get('release')}"
    if entry.get("restored_from"):
        line += f" from {entry['restored_from']}" + (
            " with its data" if entry.get("restore_data") else ""
        )
    if entry.get("from"):
        line += f" (was {entry['from']})"
    if entry.get("duration_s") is not None:
        line += f", {entry['duration_s']:.1f} s"
    lines = [line]
    if entry.get("attention"):
        lines.append(f"{host_name}: {app_name}: NEEDS ATTENTION: {entry['attention']}")
    if entry.get("kept_files"):
        lines.append(
            f"{host_name}: {app_name}: kept on the server, not in the package (now shared files; "
            f"list them in shared_files): {', '.join(entry['kept_files'])}"
        )
    if entry.get("down_s") is not None:
        lines.append(
            f"{host_name}: {app_name}: down for maintenance (503) for {entry['down_s']:.1f} s"
        )
    lines += [line for _, line in scheduler_lines(host_name, app_name, entry)]
    if entry.get("backup"):
        lines.append(f"{host_name}: {app_name}: backup {backups_dir}/{entry['backup']}")
        lines.append(
            f"{host_name}: {app_name}: to restore it: pyinfra INVENTORY deploys/restore.py "
            f"--data restore_app={app_name} --data restore_backup={entry['backup']}"
            + (" --data restore_data=true" if entry.get("restore_data") else "")
        )
    if action != "rollback":
        lines.append(
            f"{host_name}: {app_name}: to roll back: pyinfra INVENTORY deploys/rollback.py "
            f"--data rollback_app={app_name}"
        )
    return lines


def scheduler_lines(host_name: str, app_name: str, entry: dict) -> list[tuple[bool, str]]:
    """(ok, line) for each scheduler the release tool restarted after the switch (the audit
    line's "schedulers"). A scheduler that did not come back does not fail the deploy: the
    release is live and healthy; the line says what to look at and what to run."""
    lines = []
    for unit, info in sorted((entry.get("schedulers") or {}).items()):
        took = f" in {info['seconds']:.1f} s" if info.get("seconds") is not None else ""
        if info.get("ok"):
            lines.append((True, f"{host_name}: {app_name}: scheduler {unit} restarted{took}: "
                                f"{info.get('state', '?')}"))  # fmt: skip
            continue
        line = f"{host_name}: {app_name}: scheduler {unit} NOT running after its restart{took}: "
        line += info.get("state", "?") + (f" ({info['hint']})" if info.get("hint") else "")
        line += f"; journal: {info['journal']}" if info.get("journal") else ""
        line += f"; the release is live: fix it, then systemctl restart {unit}"
        lines.append((False, line))
    return lines


def report_release(app_name: str, config: Layout) -> None:
    """Log, per host, what the deploy, rollback or restore that just ran did (python.call)."""
    entry = host.get_fact(LastAudit, apps_dir=config.apps_dir, app_name=app_name) or {}
    failed = {line for ok, line in scheduler_lines(host.name, app_name, entry) if not ok}
    for line in report_lines(host.name, app_name, config.backups_dir, entry):
        (logger.warning if line in failed else logger.info)(line)


def report_backup(app_name: str, config: Layout) -> None:
    """Log, per host, the backup just taken and how many are kept (python.call)."""
    names = host.get_fact(Backups, backups_dir=config.backups_dir, app_name=app_name) or []
    if names:
        logger.info(
            f"{host.name}: {app_name}: backup {config.backups_dir}/{names[0]} (verified; "
            f"{len(names)} kept)"
        )


def report(
    after: OperationMeta,
    app_name: str,
    config: Layout,
    lines: Callable[[str, Layout], None] = report_release,
) -> None:
    """Queue the per-host report of what ``after`` (a deploy, rollback, restore or backup
    operation) did, run only where it changed something: ``lines`` logs it
    (:func:`report_release`, or :func:`report_backup` after a backup)."""
    python.call(
        name=f"Report app {app_name}",
        function=lines,
        app_name=app_name,
        config=config,
        _if=after.did_change,
    )
