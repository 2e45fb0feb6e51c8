"""Operations and facts for app releases (see operations/scripts/web2py-release.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from io import BytesIO

from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import python

from .app_config import AppSettings, DeployConfig, data_dirs, tool_hooks
from .app_files import AUTH_KEY, HostFiles, Secret
from .facts import parse_json, read_file_command
from .maintenance import deploy_window, maintenance_dir
from .manifest import parse_manifest
from .packaging import MANIFEST_NAME
from .scripts import REMOTE_DIR, run_script
from .secrets_upload import upload_secret

RELEASE_TOOL = "web2py-release.py"


class LiveRelease(FactBase[dict | None]):
    """
    The live release of an app: its ``REVISION`` (release id, package sha256, version, who,
    when), or None when the app has no release yet.

    .. code:: python

        host.get_fact(LiveRelease, web2py_root="/home/www-data/web2py", app="notes")
    """

    def command(self, web2py_root: str, app: str) -> StringCommand:
        return read_file_command(f"{web2py_root}/applications/{app}/REVISION")

    def process(self, output: list[str]) -> dict | None:
        return parse_json(output)


class LiveManifest(FactBase[dict[str, str]]):
    """
    ``{path: sha256}`` of the files the live app was deployed with ({} when unknown).

    .. code:: python

        host.get_fact(LiveManifest, web2py_root="/home/www-data/web2py", app="notes")
    """

    def command(self, web2py_root: str, app: str) -> StringCommand:
        return read_file_command(f"{web2py_root}/applications/{app}/{MANIFEST_NAME}")

    def process(self, output: list[str]) -> dict[str, str]:
        return parse_manifest(output)


class AppLock(FactBase[dict | None]):
    """
    Who holds an app's deploy lock (``lock/info.json``), or None when it is free.

    .. code:: python

        host.get_fact(AppLock, apps_dir="/srv/web2py-apps", app="notes")
    """

    def command(self, apps_dir: str, app: str) -> StringCommand:
        return read_file_command(f"{apps_dir}/{app}/lock/info.json")

    def process(self, output: list[str]) -> dict | None:
        # a lock whose info is unreadable is still a lock
        return parse_json(output, garbage={"who": "?", "since": "?", "version": "?"})


# Run as the web2py user: the old layouts' folders are the app's to write, so root never reads
# through them here (a link planted there leads nowhere the app could not read itself).
_SHARED_FILES_SCRIPT = r"""
base=$1/$3 folder=$2/applications/$3
list() { [ -d "$2" ] && [ ! -L "$2" ] && (cd "$2" && find . -type f) | sed "s|^\./|$1 $3|"; }
list shared "$base/shared/files" ""
list legacy "$base/shared/private" private/
[ -L "$folder" ] || list legacy "$folder/private" private/
for key in "$base/shared/files/private/auth.key" "$base/shared/private/auth.key" \
           "$folder/private/auth.key"; do
    if [ -f "$key" ] && [ ! -L "$key" ]; then
        printf 'authkey %s\n' "$(timeout 5 sha256sum < "$key" | cut -c1-64)"; break
    fi
done
true
"""


class SharedFiles(FactBase[HostFiles]):
    """
    What a host holds of an app's shared files: the paths in ``shared/files``, the private
    files of the old layouts (``shared/private``, a plain app folder's ``private/``) and the
    sha256 of its auth key (never the key).

    .. code:: python

        host.get_fact(SharedFiles, apps_dir="/srv/web2py-apps",
                      web2py_root="/home/www-data/web2py", app="notes", user="www-data")
    """

    def command(self, apps_dir: str, web2py_root: str, app: str, user: str) -> StringCommand:
        script = StringCommand(
            "sh", "-c", QuoteString(_SHARED_FILES_SCRIPT), "shared-files",
            QuoteString(apps_dir), QuoteString(web2py_root), QuoteString(app),
        )  # fmt: skip
        return StringCommand(
            "if", "id", "-u", QuoteString(user), ">/dev/null", "2>&1;", "then",
            "runuser", "-u", QuoteString(user), "--", script, ";", "fi",
        )  # fmt: skip

    def process(self, output: list[str]) -> HostFiles:
        shared, legacy, key = set(), set(), None
        for line in output:
            kind, _, value = line.partition(" ")
            if kind == "shared":
                shared.add(value)
            elif kind == "legacy":
                legacy.add(value)
            elif kind == "authkey" and len(value) == 64:
                key = value
        return HostFiles(frozenset(shared), frozenset(legacy), key)


def empty_host_files() -> HostFiles:
    return HostFiles(frozenset(), frozenset(), None)


def _common_args(app: str, c: DeployConfig) -> list[str]:
    return [
        "--app", app, "--apps-dir", c.apps_dir, "--web2py-root", c.web2py_root,
        "--user", c.user, "--group", c.group, "--data-dirs", data_dirs(),
        "--fifo", f"{c.run_dir}/uwsgi.fifo", "--stats", f"{c.run_dir}/stats.sock",
        "--health-port", str(c.https_port), "--who", c.who,
        "--maintenance-dir", maintenance_dir(c.config_dir),
    ]  # fmt: skip


def _window_args(app: AppSettings, config: DeployConfig, down: bool) -> list[str]:
    """The release tool's maintenance window (see operations.maintenance.deploy_window)."""
    if not down:
        return ["--no-down"]
    notice = ["--notice-file", _staged_notice(app, config)] if app.notice_seconds else []
    return ["--down", "--notice-seconds", str(app.notice_seconds), *notice]


def _staged_notice(app: AppSettings, config: DeployConfig) -> str:
    return f"{config.cache_dir}/notice-{app.name}.html"


def _health_args(app: AppSettings) -> list[str]:
    return [
        "--health-path", app.health_path, "--health-status", str(app.health_status),
        "--health-text", app.health_text,
    ]  # fmt: skip


@operation()
def release(
    app: AppSettings,
    config: DeployConfig,
    package_path: str,
    sha256: str,
    delta_sha256: str = "",
    auth_key: Secret | None = None,
):
    """
    Make a package the live release of an app: lock, backup, unpack, check, switch, reload.

    + app: the app's settings (``operations.app_config.AppSettings``): with ``app.appconfig``
      the release gets that ``private/appconfig.ini`` (uploaded root-only, never in argv);
      ``app.shared_files`` are seeded where missing and linked into the release
    + config: the deploy settings (``operations.app_config.DeployConfig``)
    + package_path: the package on the controller (``operations.packaging.build_package``)
    + sha256: the package's sha256; an app whose live release holds it (and the same rendered
      config) is a no-op
    + delta_sha256: set when ``package_path`` is a delta from the live release
      (``operations.packaging.build_delta``) rather than the whole package: its own sha256.
      The server rebuilds the release from the live one and checks the result's manifest.
    + auth_key: the key to seed ``private/auth.key`` with where the host lacks one
      (``operations.app_files.auth_key_plan``); a key the host holds is never replaced

    Everything after the upload happens in one process on the server, under the app's lock
    (``web2py-release.py deploy``): a failed check or health check switches back and exits
    non-zero with the reason. With ``app.maintenance``, the app shows its notice for
    ``app.notice_seconds`` (while the release is unpacked and verified), then answers 503 with
    its page while the backup, migrations, switch and health check run, and comes back up
    whatever the outcome.

    **Example:**

    .. code:: python

        web2py_app.release(
            name="Deploy notes", app=settings, config=config,
            package_path="/tmp/notes-code.tar.gz", sha256=package.sha256,
        )
    """
    # hooks run as the web2py user unless one asks for root; recorded in that form too
    app = replace(app, hooks=tool_hooks(app.hooks, config.user))
    config_sha = app.appconfig.sha256 if app.appconfig else ""
    live = host.get_fact(LiveRelease, web2py_root=config.web2py_root, app=app.name)
    if live and (live.get("sha256"), live.get("config_sha256", "")) == (sha256, config_sha):
        host.noop(f"{app.name}: release {live.get('release')} already holds {sha256[:12]}")
        return
    kind = f"delta-{delta_sha256[:16]}" if delta_sha256 else "package"
    remote = f"{config.cache_dir}/app-{app.name}-{sha256[:16]}-{kind}.tar.gz"
    yield StringCommand("install", "-d", "-m", "700", QuoteString(config.cache_dir))
    if app.maintenance:
        yield from _prepare_window(app, config)
    yield FileUploadCommand(package_path, remote)
    staged: list[str] = []
    if app.appconfig:
        text, masked = f"{config.cache_dir}/appconfig-{app.name}.ini", ""
        yield from upload_secret(app.appconfig.text.value.encode(), text, "root", "root")
        masked = f"{config.cache_dir}/appconfig-{app.name}.masked"
        yield FileUploadCommand(BytesIO(app.appconfig.masked.encode()), masked)
        staged += ["--appconfig", text, "--appconfig-masked", masked, "--config-sha256", config_sha]
    if auth_key:
        key_path = f"{config.cache_dir}/auth-key-{app.name}"
        yield from upload_secret(auth_key.value.encode(), key_path, "root", "root")
        staged += ["--seed", f"{AUTH_KEY}={key_path}"]
    version = app.version or sha256[:12]
    backup = ["--backup"] if app.backup else ["--no-backup"]
    migrate = ["--migrate"] if app.migrate else ["--no-migrate"]
    yield from run_script(
        RELEASE_TOOL, "deploy", *_common_args(app.name, config), *_health_args(app),
        "--package", remote, "--sha256", sha256, "--version", version, *backup, *migrate,
        "--backups-dir", config.backups_dir, "--keep-backups", str(app.keep_backups),
        "--keep-releases", str(app.keep_releases), "--hooks", app.hooks,
        *_window_args(app, config, app.maintenance),
        *(["--delta-sha256", delta_sha256] if delta_sha256 else []),
        "--shared-files", ",".join(app.shared_files), *staged,
        "--settings", json.dumps(app.recorded(), sort_keys=True),
    )  # fmt: skip


def _prepare_window(app: AppSettings, config: DeployConfig):
    """The 503 page in place and the notice staged (if any) before the release tool runs
    (the cache dir exists)."""
    notice = app.notice_message if app.notice_seconds else ""
    yield from deploy_window._inner(
        app=app.name, notice=notice, page_message=app.down_message, retry_after=app.retry_after,
        config_dir=config.config_dir, web2py_root=config.web2py_root,
        staged_notice=_staged_notice(app, config),
    )  # fmt: skip


@operation()
def rollback(app: str, config: DeployConfig, to: str = "previous"):
    """
    Switch an app back to an earlier release, with the same reload and health check.

    + app: the app's name; its health check is the one the target release's deploy recorded
    + config: the deploy settings
    + to: ``previous`` (by the release log, not by mtime) or a release id

    **Example:**

    .. code:: python

        web2py_app.rollback(name="Roll back notes", app="notes", config=config)
    """
    live = host.get_fact(LiveRelease, web2py_root=config.web2py_root, app=app)
    if to != "previous" and live and live.get("release") == to:
        host.noop(f"{app}: release {to} is already live")
        return
    yield from run_script(RELEASE_TOOL, "rollback", *_common_args(app, config), "--to", to)


@operation()
def unlock(app: str, config: DeployConfig):
    """
    Release a stale deploy lock (a deploy that died holding it).

    + app: the app's name
    + config: the deploy settings

    **Example:**

    .. code:: python

        web2py_app.unlock(name="Unlock notes", app="notes", config=config)
    """
    holder = host.get_fact(AppLock, apps_dir=config.apps_dir, app=app)
    if not holder:
        host.noop(f"{app}: not locked")
        return
    yield from run_script(RELEASE_TOOL, "unlock", *_common_args(app, config))


class LastAudit(FactBase[dict | None]):
    """
    The last line of an app's audit log (``audit.jsonl``), or None.

    .. code:: python

        host.get_fact(LastAudit, apps_dir="/srv/web2py-apps", app="notes")
    """

    def command(self, apps_dir: str, app: str) -> StringCommand:
        return read_file_command(f"{apps_dir}/{app}/audit.jsonl", last_line=True)

    def process(self, output: list[str]) -> dict | None:
        return parse_json(output)


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # not reached


def report_lines(host_name: str, app: str, backups_dir: str, entry: dict) -> list[str]:
    """What a deploy, rollback or restore did (its audit line), and how to undo it."""
    action = entry.get("action", "deploy")
    line = f"{host_name}: {app}: {action} {entry.get('result', '?')}"
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
    if entry.get("kept_files"):
        lines.append(
            f"{host_name}: {app}: kept on the server, not in the package (now shared files; list "
            f"them in shared_files): {', '.join(entry['kept_files'])}"
        )
    if entry.get("down_s") is not None:
        lines.append(f"{host_name}: {app}: down for maintenance (503) for {entry['down_s']:.1f} s")
    lines += [line for _, line in scheduler_lines(host_name, app, entry)]
    if entry.get("backup"):
        lines.append(f"{host_name}: {app}: backup {backups_dir}/{entry['backup']}")
        lines.append(
            f"{host_name}: {app}: to restore it: pyinfra INVENTORY deploys/restore.py "
            f"--data restore_app={app} --data restore_backup={entry['backup']}"
            + (" --data restore_data=true" if entry.get("restore_data") else "")
        )
    if action != "rollback":
        lines.append(
            f"{host_name}: {app}: to roll back: pyinfra INVENTORY deploys/rollback.py "
            f"--data rollback_app={app}"
        )
    return lines


def scheduler_lines(host_name: str, app: str, entry: dict) -> list[tuple[bool, str]]:
    """(ok, line) for each scheduler the release tool restarted after the switch (the audit
    line's "schedulers"). A scheduler that did not come back does not fail the deploy: the
    release is live and healthy; the line says what to look at and what to run."""
    lines = []
    for unit, info in sorted((entry.get("schedulers") or {}).items()):
        took = f" in {info['seconds']:.1f} s" if info.get("seconds") is not None else ""
        if info.get("ok"):
            lines.append((True, f"{host_name}: {app}: scheduler {unit} restarted{took}: "
                                f"{info.get('state', '?')}"))  # fmt: skip
            continue
        line = f"{host_name}: {app}: scheduler {unit} NOT running after its restart{took}: "
        line += info.get("state", "?") + (f" ({info['hint']})" if info.get("hint") else "")
        line += f"; journal: {info['journal']}" if info.get("journal") else ""
        line += f"; the release is live: fix it, then systemctl restart {unit}"
        lines.append((False, line))
    return lines


def report_release(app: str, config: DeployConfig) -> None:
    """Log, per host, what the deploy, rollback or restore that just ran did (python.call)."""
    entry = host.get_fact(LastAudit, apps_dir=config.apps_dir, app=app) or {}
    failed = {line for ok, line in scheduler_lines(host.name, app, entry) if not ok}
    for line in report_lines(host.name, app, config.backups_dir, entry):
        (logger.warning if line in failed else logger.info)(line)


def report(after: OperationMeta, app: str, config: DeployConfig) -> None:
    """Queue the per-host report (:func:`report_release`) of a deploy, rollback or restore,
    run only where ``after`` (that operation) changed something."""
    python.call(
        name=f"Report app {app}",
        function=report_release,
        app=app,
        config=config,
        _if=after.did_change,
    )


class Backups(FactBase[list[str]]):
    """
    An app's backup zips, newest first.

    .. code:: python

        host.get_fact(Backups, backups_dir="/var/backups/web2py", app="notes")
    """

    def command(self, backups_dir: str, app: str) -> StringCommand:
        pattern = StringCommand(QuoteString(f"{backups_dir}/{app}."), "*.zip", _separator="")
        return StringCommand("ls", "-1t", pattern, "2>/dev/null", "||", "true")

    def process(self, output: list[str]) -> list[str]:
        return [line.rsplit("/", 1)[-1] for line in output if line.endswith(".zip")]


@operation()
def restore(app: AppSettings, config: DeployConfig, backup: str = "latest", data: bool = False):
    """
    Restore a backup as a new release, verified first; its data too only when asked.

    + app: the app's settings (health check)
    + config: the deploy settings
    + backup: a backup's file name, or ``latest``
    + data: also replace the app's data (databases, uploads, private) with the backup's

    The backup's sha256 and contents are checked before anything changes (a corrupt or
    foreign zip is refused); a fresh backup of the current state is taken first, so a restore
    can itself be undone; then the same check, switch, reload and health check as a deploy.
    With ``app.maintenance``, all of it runs with the app down for maintenance, after its
    notice, as a deploy does; with ``data``, always down (without a notice period unless
    ``app.maintenance``): no write can land between the backup and the data swap.

    **Example:**

    .. code:: python

        web2py_app.restore(name="Restore notes", app=settings, config=config, backup="latest")
    """
    flag = ["--restore-data"] if data else ["--no-restore-data"]
    down = data or app.maintenance  # data is only ever replaced while the app is down
    if not app.maintenance:
        app = replace(app, notice_seconds=0)  # down for the data swap only: no notice period
    if down:
        yield StringCommand("install", "-d", "-m", "700", QuoteString(config.cache_dir))
        yield from _prepare_window(app, config)
    yield from run_script(
        RELEASE_TOOL, "restore", *_common_args(app.name, config), *_health_args(app),
        "--backups-dir", config.backups_dir, "--keep-backups", str(app.keep_backups),
        "--keep-releases", str(app.keep_releases), "--backup-name", backup, *flag,
        *_window_args(app, config, down),
    )  # fmt: skip


def _cleanup_args(app: AppSettings, config: DeployConfig, days: float) -> list[str]:
    return [
        *_common_args(app.name, config), "--backups-dir", config.backups_dir,
        "--keep-backups", str(app.keep_backups), "--keep-releases", str(app.keep_releases),
        "--days", str(days),
    ]  # fmt: skip


class CleanupCandidates(FactBase[dict | None]):
    """
    What ``cleanup`` would remove for an app: ``{"files", "releases", "backups", "bytes"}``;
    ``{"unknown": True}`` when the server's release tool cannot tell (missing or older).

    .. code:: python

        host.get_fact(CleanupCandidates, args=["--app", "notes", ...])
    """

    def command(self, args: list[str]) -> StringCommand:
        tool = f"{REMOTE_DIR}/{RELEASE_TOOL}"
        quoted = [QuoteString(arg) for arg in args]
        return StringCommand(
            tool, "cleanup", "--dry-run", *quoted,
            "2>/dev/null", "||", "echo", "'{\"unknown\": true}'",
        )  # fmt: skip

    def process(self, output: list[str]) -> dict | None:
        return parse_json(output, garbage={"unknown": True})


@operation()
def cleanup(app: AppSettings, config: DeployConfig, days: float = 30):
    """
    Remove an app's sessions, errors and cache entries older than ``days``, and backups and
    releases beyond retention (never the live release nor the last good one).

    + app: the app's settings (``keep_releases``, ``keep_backups``)
    + config: the deploy settings
    + days: age in days of the runtime files to remove

    **Example:**

    .. code:: python

        web2py_app.cleanup(name="Clean notes", app=settings, config=config, days=30)
    """
    args = _cleanup_args(app, config, days)
    found = host.get_fact(CleanupCandidates, args=args) or {"unknown": True}
    if found.get("unknown"):
        logger.info(f"{host.name}: {app.name}: cleanup (the server's tool is updated first)")
    elif not (found["files"] or found["releases"] or found["backups"]):
        host.noop(f"{app.name}: nothing to clean up")
        return
    else:
        logger.info(
            f"{host.name}: {app.name}: {found['files']} old files, {len(found['releases'])} "
            f"releases, {len(found['backups'])} backups to remove "
            f"({human_bytes(found['bytes'])} to free)"
        )
    yield from run_script(RELEASE_TOOL, "cleanup", *args)
