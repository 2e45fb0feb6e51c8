"""An app's backups: a timestamped, verified zip of the live app (code and data), taken now.

The same backup a deploy takes before it switches (the release tool's ``backup``, under the
app's deploy lock): ``<web2py_backups_dir>/<app>.<YYYYmmddTHHMMSSZ>.zip`` (0600, in a 0700
folder) beside its ``.sha256``; SQLite databases copied with SQLite's online backup, so each
is a committed state even while the app writes; never two backups with one name. Backups
beyond the app's ``keep_backups`` are removed, oldest first. Restore one with
``releases.restore`` (``deploys/restore.py``), bring one home with ``deploys/retrieve.py``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from .facts.releases import AppServed
from .release_tool import run_tool, tool_args
from .settings.apps import AppSettings, DeploySettings

# Checks the newest backup of the app: its .sha256, then every zip member's CRC.
_VERIFY = (
    'cd "$1" && f=$(ls -1t -- "$2".*.zip | head -n 1) && [ -n "$f" ] && '
    'sha256sum -c --quiet -- "$f.sha256" && unzip -tq -- "$f" >/dev/null && '
    'echo "verified $1/$f"'
)


@operation()
def backup(app: AppSettings, config: DeploySettings):
    """
    Back up an app now: a timestamped zip of its code and data, verified, with retention.

    + app: the app's settings (``operations.settings.apps.AppSettings``): ``app.keep_backups``
      backups are kept, the oldest beyond that removed (``recorded_app`` gives the ones the
      live release's deploy recorded)
    + config: the deploy settings (``operations.settings.apps.DeploySettings``):
      ``backups_dir``, ``web2py_root``, ``apps_dir``, the web2py user

    Runs under the app's deploy lock (a deploy in progress makes it fail at once, naming the
    holder), then checks the new zip against its ``.sha256`` and tests every member. An app
    this host does not serve is a no-op; otherwise every run makes a new backup (that is what
    it is for: e.g. from cron, ``deploys/backup.py``).

    **Example:**

    .. code:: python

        from operations import backups
        from operations.facts.releases import LiveRelease
        from operations.settings.apps import deploy_settings, recorded_app

        config = deploy_settings(host.data, require_apps=False)
        live = host.get_fact(LiveRelease, web2py_root=config.web2py_root, app_name="notes")
        backups.backup(name="Back up notes", app=recorded_app("notes", live), config=config)
    """
    if not host.get_fact(AppServed, web2py_root=config.web2py_root, app_name=app.name):
        host.noop(f"{app.name}: not served on this host: nothing to back up")
        return
    yield from run_tool(
        "backup", *tool_args(app.name, config), "--keep-backups", str(app.keep_backups),
    )  # fmt: skip
    yield StringCommand(
        "sh", "-c", QuoteString(_VERIFY), "verify-backup",
        QuoteString(config.backups_dir), QuoteString(app.name),
    )  # fmt: skip
