"""Ship web2py apps: reproducible package, backup, new release, atomic switch, zero downtime.

    pyinfra inventories/prod.py deploys/app_deploy.py              # shows changes, asks first
    pyinfra inventories/prod.py deploys/app_deploy.py --dry        # + added ~ changed - removed
    pyinfra inventories/prod.py deploys/app_deploy.py --dry --diff # ... and text diffs

Apps and their settings come from ``deploy_apps`` (group_data/all.py); ``--data deploy_only=a,b``
limits a run to some of them. Each app's package is built once per run on the controller.
"""

from pyinfra import host
from pyinfra.context import state

from operations import releases
from operations.local.controller import (
    app_delta,
    app_package,
    app_source,
    auth_key_for,
    check_shared_files,
)
from operations.local.dryrun import report_app_changes
from operations.local.reports import report
from operations.settings.apps import deploy_settings
from operations.settings.data_keys import check_data_keys

check_data_keys()  # a misspelt --data key is refused, not ignored

c = deploy_settings(host.data, only=host.data.get("deploy_only"))

for app in c.apps:
    app = app_source(app)  # a git source is exported here, once per run
    package = app_package(app.path, app.package_mode, app.include, app.exclude)
    # Refused here, on the controller, before anything changes on any host.
    check_shared_files(app, package, c)
    auth_key = auth_key_for(app, package, c)
    live = report_app_changes(
        app.name, app.path, package, c.web2py_root, text_diffs=state.config.DIFF,
        appconfig=app.appconfig, shared=app.shared_files,
    )  # fmt: skip
    # Only what the live release lacks travels, when that is smaller than the whole package.
    delta = app_delta(package, *live) if live else None
    released = releases.release(
        name=f"Deploy app {app.name}",
        app=app,
        config=c,
        package_path=str(delta.path if delta else package.path),
        sha256=package.sha256,
        delta_sha256=delta.sha256 if delta else "",
        auth_key=auth_key,
    )
    report(released, app.name, c)
