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

from operations import web2py_app
from operations.app_config import deploy_config, recorded_app, run_overrides
from operations.config import ConfigError, as_app_name, as_bool
from operations.data_keys import check_data_keys
from operations.web2py_app import Backups, LiveRelease

check_data_keys()  # a misspelt --data key is refused, not ignored

app_name = host.data.get("restore_app")
if not app_name:
    raise ConfigError("restore_app: required, e.g. --data restore_app=notes")
as_app_name("restore_app", app_name)
c = deploy_config(host.data, require_apps=False)
# health check, hooks, retention and maintenance texts: as the live release's deploy recorded
live = host.get_fact(LiveRelease, web2py_root=c.web2py_root, app=str(app_name))
app = replace(recorded_app(str(app_name), live), **run_overrides(host.data))
backup = host.data.get("restore_backup")
restore_data = as_bool("restore_data", host.data.get("restore_data", False))

if not backup:
    names = host.get_fact(Backups, backups_dir=c.backups_dir, app=app.name)
    logger.info(f"{host.name}: {app.name}: {len(names)} backups in {c.backups_dir}, newest first")
    for name in names:
        logger.info(f"{host.name}:     {name}")
else:
    if "/" in str(backup):
        raise ConfigError(f"restore_backup: a backup file name or 'latest', got {backup!r}")
    restored = web2py_app.restore(
        name=f"Restore {app.name} from {backup}" + (" with its data" if restore_data else ""),
        app=app,
        config=c,
        backup=str(backup),
        data=restore_data,
    )
    web2py_app.report(restored, app.name, c)
