"""List an app's backups per host, or restore one (verified) as a new release.

    pyinfra inventories/prod.py deploys/restore.py --data restore_app=notes          # list
    pyinfra inventories/prod.py deploys/restore.py --data restore_app=notes \
        --data restore_backup=latest                                                 # code only
    pyinfra inventories/prod.py deploys/restore.py --data restore_app=notes \
        --data restore_backup=notes.20261125T101500Z.zip --data restore_data=true    # code + data

A restore takes a fresh backup first (so it can be undone), runs under the deploy lock, and goes
live with the same pre-switch check, chain reload and health check as a deploy. By default only
code is restored: data written since the backup stays.
"""

from dataclasses import replace

from pyinfra import host, logger

from operations import releases
from operations.facts.releases import Backups, LiveRelease
from operations.local.reports import report
from operations.settings.apps import deploy_settings, recorded_app, run_overrides
from operations.settings.data_keys import check_data_keys
from operations.settings.runs import restore_run

check_data_keys()  # a misspelt --data key is refused, not ignored

run = restore_run(host.data)
app_name, backup, restore_data = run.app_name, run.backup, run.data
c = deploy_settings(host.data, require_apps=False)
# health check, hooks, retention and maintenance texts: as the live release's deploy recorded
live = host.get_fact(LiveRelease, web2py_root=c.web2py_root, app_name=app_name)
app = replace(recorded_app(app_name, live), **run_overrides(host.data))

if not backup:
    names = host.get_fact(Backups, backups_dir=c.backups_dir, app_name=app.name)
    logger.info(f"{host.name}: {app.name}: {len(names)} backups in {c.backups_dir}, newest first")
    for name in names:
        logger.info(f"{host.name}:     {name}")
else:
    restored = releases.restore(
        name=f"Restore {app.name} from {backup}" + (" with its data" if restore_data else ""),
        app=app,
        config=c,
        backup=backup,
        data=restore_data,
    )
    report(restored, app.name, c)
