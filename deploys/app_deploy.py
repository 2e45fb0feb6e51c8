"""Ship web2py apps: reproducible package, backup, new release, atomic switch, zero downtime.

    pyinfra inventories/prod.py deploys/app_deploy.py              # shows changes, asks first
    pyinfra inventories/prod.py deploys/app_deploy.py --dry        # + added ~ changed - removed
    pyinfra inventories/prod.py deploys/app_deploy.py --dry --diff # ... and text diffs

Apps and their settings come from ``deploy_apps`` (group_data/all.py); ``--data deploy_only=a,b``
limits a run to some of them. Each app's package is built once per run on the controller.

Across hosts it rolls out in batches (``rollout_batches``, default: all at once): a batch's
releases and health gate end on every host before the next batch starts; a failure budget,
the gate and ``rollout_on_failure`` decide whether it goes on (see operations/rollout.py).
"""

from pyinfra import host
from pyinfra.context import state

from operations import releases, rollout
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
run = rollout.plan()  # one per run: the batches, in inventory order

for index in host.loop(range(len(run.batches))):
    if run.batch_of(host.name) == index:
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
            # Only what the live release lacks travels, when that is smaller than the package.
            delta = app_delta(package, *live) if live else None
            released = releases.release(
                name=f"Deploy app {app.name}",
                app=app,
                config=c,
                package_path=str(delta.path if delta else package.path),
                sha256=package.sha256,
                delta_sha256=delta.sha256 if delta else "",
                auth_key=auth_key,
                _if=rollout.starts(run, index),
            )
            report(released, app.name, c)
            rollout.record(
                name=f"Record app {app.name}", run=run, app_name=app.name, config=c,
                _if=released.did_change,
            )  # fmt: skip
    watch = rollout.watch_command([a.name for a in c.apps], c.config_dir, run.soak_seconds)
    rollout.gate(name=f"Health gate, batch {index + 1}", run=run, index=index, watch_command=watch)

# A stopped rollout with rollout_on_failure="rollback": every host this run updated goes back.
for app in c.apps:
    undone = rollout.undo(
        name=f"Roll back app {app.name} if the rollout stopped", run=run, app_name=app.name,
        config=c,
    )  # fmt: skip
    rollout.record(
        name=f"Record rollback of {app.name}", run=run, app_name=app.name, config=c,
        result="rolled back", _if=undone.did_change,
    )  # fmt: skip

rollout.summary(name="Fleet summary", run=run, event="deploy")
