"""Back up an app now: a timestamped zip of its code and data, verified, with retention.

    pyinfra inventories/prod.py deploys/backup.py --data backup_app=notes

    # every night at 03:00 (crontab of the controller's deploy account):
    0 3 * * * cd /path/to/pyinfra-web2py && .venv/bin/pyinfra -y inventories/prod.py \
        deploys/backup.py --data backup_app=notes >> backups.log 2>&1

Each host gets ``<web2py_backups_dir>/<app>.<YYYYmmddTHHMMSSZ>.zip`` and its ``.sha256``, checked
once written; the app's ``keep_backups`` (as its live release's deploy recorded it) are kept.
List them and restore one with deploys/restore.py, bring one home with deploys/retrieve.py.
"""

from pyinfra import host

from operations import backups
from operations.facts.releases import LiveRelease
from operations.local.reports import report, report_backup
from operations.settings.apps import deploy_settings, recorded_app
from operations.settings.data_keys import check_data_keys
from operations.settings.runs import backup_app

check_data_keys()  # a misspelt --data key is refused, not ignored

app_name = backup_app(host.data)
c = deploy_settings(host.data, require_apps=False)
# retention (keep_backups): as the live release's deploy recorded it
live = host.get_fact(LiveRelease, web2py_root=c.web2py_root, app_name=app_name)
taken = backups.backup(name=f"Back up {app_name}", app=recorded_app(app_name, live), config=c)
report(taken, app_name, c, report_backup)
