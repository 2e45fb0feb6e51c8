"""Roll an app back to its previous release (by the release log) or to a named one.

    pyinfra inventories/prod.py deploys/rollback.py --data rollback_app=notes
    pyinfra inventories/prod.py deploys/rollback.py --data rollback_app=notes \
        --data rollback_to=20261125T101500Z-9c1e2a3b4c5d

Same zero-downtime chain reload and health check as a deploy (the one the target release's
deploy recorded on the server: only the app's name is needed); a failed health check keeps the
release that was live.
"""

from pyinfra import host

from operations import releases, rollout
from operations.local.reports import report
from operations.settings.apps import deploy_settings
from operations.settings.data_keys import check_data_keys
from operations.settings.runs import rollback_run

check_data_keys()  # a misspelt --data key is refused, not ignored

run = rollback_run(host.data)
app_name, to = run.app_name, run.to
c = deploy_settings(host.data, require_apps=False)
fleet = rollout.plan(whole_run=True)  # every host at once; the summary and its notification
rolled = releases.rollback(
    name=f"Roll back app {app_name} to {to}", app_name=app_name, config=c, to=to
)
report(rolled, app_name, c)
rollout.record(
    name=f"Record rollback of {app_name}", run=fleet, app_name=app_name, config=c,
    result="rolled back", _if=rolled.did_change,
)  # fmt: skip
rollout.summary(name="Fleet summary", run=fleet, event="rollback")
