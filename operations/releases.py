"""Operations on an app's releases: deploy one, roll back, restore a backup, unlock, clean up.

Each runs the release tool on the server (``operations/scripts/web2py-release.py``), where what
must not be left half-done happens in one process under the app's lock. ``app`` is always the
app's settings (:class:`~operations.settings.apps.AppSettings`); where a name is enough, the
parameter is ``app_name``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from io import BytesIO

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from .facts.releases import AppLock, CleanupCandidates, LiveRelease, UnfinishedRun
from .local.app_files import AUTH_KEY, Secret
from .local.reports import human_bytes
from .maintenance import deploy_window
from .release_tool import BoundedUpload, run_tool, tool_args
from .secrets_upload import upload_secret
from .settings.apps import AppSettings, DeploySettings, tool_hooks


def _window_args(app: AppSettings, config: DeploySettings, down: bool) -> list[str]:
    """The release tool's maintenance window (see operations.maintenance.deploy_window)."""
    if not down:
        return ["--no-down"]
    notice = ["--notice-file", _staged_notice(app, config)] if app.notice_seconds else []
    return [
        "--down", "--notice-seconds", str(app.notice_seconds), *notice,
        "--drain-timeout", str(config.drain_timeout),
    ]  # fmt: skip


def _staged_notice(app: AppSettings, config: DeploySettings) -> str:
    return f"{config.cache_dir}/notice-{app.name}.html"


def _health_args(app: AppSettings) -> list[str]:
    return [
        "--health-path", app.health_path, "--health-status", str(app.health_status),
        "--health-text", app.health_text,
    ]  # fmt: skip


@operation()
def release(
    app: AppSettings,
    config: DeploySettings,
    package_path: str,
    sha256: str,
    delta_sha256: str = "",
    auth_key: Secret | None = None,
):
    """
    Make a package the live release of an app: lock, backup, unpack, check, switch, reload.

    + app: the app's settings (``operations.settings.apps.AppSettings``): with ``app.appconfig``
      the release gets that ``private/appconfig.ini`` (uploaded root-only, never in argv);
      ``app.shared_files`` are seeded where missing and linked into the release
    + config: the deploy settings (``operations.settings.apps.DeploySettings``)
    + package_path: the package on the controller (``operations.local.controller.app_package``)
    + sha256: the package's sha256; an app whose live release holds it (and the same rendered
      config) is a no-op
    + delta_sha256: set when ``package_path`` is a delta from the live release
      (``operations.local.controller.app_delta``) rather than the whole package: its own sha256.
      The server rebuilds the release from the live one and checks the result's manifest.
    + auth_key: the key to seed ``private/auth.key`` with where the host lacks one
      (``operations.local.controller.auth_key_for``); a key the host holds is never replaced

    Everything after the upload happens in one process on the server, under the app's lock
    (the release tool's ``deploy``): a failed check or health check switches back and exits
    non-zero with the reason. With ``app.maintenance``, the app shows its notice for
    ``app.notice_seconds`` (while the release is unpacked and verified), then answers 503 with
    its page while the backup, migrations, switch and health check run, and comes back up
    whatever the outcome.

    **Example:**

    .. code:: python

        package = app_package(app)  # operations.local.controller
        releases.release(
            name="Deploy notes", app=app, config=config,
            package_path=str(package.path), sha256=package.sha256,
        )
    """
    # hooks run as the web2py user unless one asks for root; recorded in that form too
    app = replace(app, hooks=tool_hooks(app.hooks, config.user))
    config_sha = app.appconfig.sha256 if app.appconfig else ""
    live = host.get_fact(LiveRelease, web2py_root=config.web2py_root, app_name=app.name)
    if live and (live.get("sha256"), live.get("config_sha256", "")) == (sha256, config_sha):
        unfinished = host.get_fact(UnfinishedRun, apps_dir=config.apps_dir, app_name=app.name)
        if not unfinished:
            host.noop(f"{app.name}: release {live.get('release')} already holds {sha256[:12]}")
            return
        # a run holds the lock (it may be dead) or never confirmed its switch: the tool waits
        # for it, or undoes it (server.recover), then finds the release live or deploys it
    kind = f"delta-{delta_sha256[:16]}" if delta_sha256 else "package"
    remote = f"{config.cache_dir}/app-{app.name}-{sha256[:16]}-{kind}.tar.gz"
    yield StringCommand("install", "-d", "-m", "700", QuoteString(config.cache_dir))
    if app.maintenance:
        yield from _prepare_window(app, config)
    yield BoundedUpload(package_path, remote, app_name=app.name, timeout=config.run_timeout)
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
    yield from run_tool(
        "deploy", *tool_args(app.name, config), "--lock-wait", str(config.lock_wait),
        *config.timeout_args(), *_health_args(app),
        "--package", remote, "--sha256", sha256, "--version", version, *backup, *migrate,
        "--keep-backups", str(app.keep_backups), "--keep-releases", str(app.keep_releases),
        "--hooks", app.hooks,
        *_window_args(app, config, app.maintenance),
        *(["--delta-sha256", delta_sha256] if delta_sha256 else []),
        "--shared-files", ",".join(app.shared_files), *staged,
        "--settings", json.dumps(app.recorded(), sort_keys=True),
        bound=(app.name, "deploy", config.run_timeout),
    )  # fmt: skip


def _prepare_window(app: AppSettings, config: DeploySettings):
    """The 503 page in place and the notice staged (if any) before the release tool runs
    (the cache dir exists)."""
    notice = app.notice_message if app.notice_seconds else ""
    yield from deploy_window._inner(
        app_name=app.name, notice=notice, page_message=app.down_message,
        retry_after=app.retry_after, config_dir=config.config_dir, web2py_root=config.web2py_root,
        staged_notice=_staged_notice(app, config),
    )  # fmt: skip


@operation()
def rollback(app_name: str, config: DeploySettings, to: str = "previous"):
    """
    Switch an app back to an earlier release, with the same reload and health check.

    + app_name: the app; its health check is the one the target release's deploy recorded
    + config: the deploy settings
    + to: ``previous`` (by the release log, not by mtime) or a release id

    **Example:**

    .. code:: python

        releases.rollback(name="Roll back notes", app_name="notes", config=config)
    """
    live = host.get_fact(LiveRelease, web2py_root=config.web2py_root, app_name=app_name)
    already = to != "previous" and live and live.get("release") == to
    if already and not host.get_fact(UnfinishedRun, apps_dir=config.apps_dir, app_name=app_name):
        host.noop(f"{app_name}: release {to} is already live")
        return
    yield from run_tool(
        "rollback", *tool_args(app_name, config), "--lock-wait", str(config.lock_wait),
        *config.timeout_args(), "--to", to, bound=(app_name, "rollback", config.run_timeout),
    )  # fmt: skip


@operation()
def unlock(app_name: str, config: DeploySettings):
    """
    Release a stale deploy lock (a deploy that died holding it).

    + app_name: the app
    + config: the deploy settings

    **Example:**

    .. code:: python

        releases.unlock(name="Unlock notes", app_name="notes", config=config)
    """
    holder = host.get_fact(AppLock, apps_dir=config.apps_dir, app_name=app_name)
    if not holder:
        host.noop(f"{app_name}: not locked")
        return
    yield from run_tool("unlock", *tool_args(app_name, config))


@operation()
def restore(app: AppSettings, config: DeploySettings, backup: str, data: bool = False):
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

        releases.restore(name="Restore notes", app=app, config=config, backup="latest")
    """
    flag = ["--restore-data"] if data else ["--no-restore-data"]
    down = data or app.maintenance  # data is only ever replaced while the app is down
    if not app.maintenance:
        app = replace(app, notice_seconds=0)  # down for the data swap only: no notice period
    if down:
        yield StringCommand("install", "-d", "-m", "700", QuoteString(config.cache_dir))
        yield from _prepare_window(app, config)
    yield from run_tool(
        "restore", *tool_args(app.name, config), "--lock-wait", str(config.lock_wait),
        *config.timeout_args(), *_health_args(app),
        "--keep-backups", str(app.keep_backups),
        "--keep-releases", str(app.keep_releases), "--backup-name", backup, *flag,
        *_window_args(app, config, down),
        bound=(app.name, "restore", config.run_timeout),
    )  # fmt: skip


def _cleanup_args(app: AppSettings, config: DeploySettings, days: float) -> list[str]:
    return [
        *tool_args(app.name, config),
        "--keep-backups", str(app.keep_backups), "--keep-releases", str(app.keep_releases),
        "--days", str(days),
    ]  # fmt: skip


@operation()
def cleanup(app: AppSettings, config: DeploySettings, days: float):
    """
    Remove an app's sessions, errors and cache entries older than ``days``, and backups and
    releases beyond retention (never the live release nor the last good one).

    + app: the app's settings (``keep_releases``, ``keep_backups``)
    + config: the deploy settings
    + days: age in days of the runtime files to remove

    **Example:**

    .. code:: python

        releases.cleanup(name="Clean notes", app=app, config=config, days=30)
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
    yield from run_tool("cleanup", *args)
