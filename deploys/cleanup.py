"""Remove old sessions, errors and cache entries, and backups and releases beyond retention.

    pyinfra inventories/prod.py deploys/cleanup.py --dry                  # what would go, per host
    pyinfra inventories/prod.py deploys/cleanup.py --data cleanup_days=7

For every app of deploy_apps (or only ``deploy_only``): runtime files older than ``cleanup_days``,
backups beyond ``keep_backups``, releases beyond ``keep_releases`` — never the live release nor
the last good one. Prints per host what goes and how much space comes back.
"""

from pyinfra import host

from operations import releases
from operations.settings.apps import deploy_settings
from operations.settings.data_keys import check_data_keys
from operations.settings.runs import cleanup_days

check_data_keys()  # a misspelt --data key is refused, not ignored

c = deploy_settings(host.data, only=host.data.get("deploy_only"))
days = cleanup_days(host.data)
for app in c.apps:
    releases.cleanup(name=f"Clean up {app.name}", app=app, config=c, days=days)
