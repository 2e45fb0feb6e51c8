"""Roll an app back to its previous release (by the release log) or to a named one.

    pyinfra inventories/prod.py deploys/rollback.py --data rollback_app=notes
    pyinfra inventories/prod.py deploys/rollback.py --data rollback_app=notes \
        --data rollback_to=20261125T101500Z-9c1e2a3b4c5d

Same zero-downtime chain reload and health check as a deploy (the one the target release's
deploy recorded on the server: only the app's name is needed); a failed health check keeps the
release that was live.
"""

from pyinfra import host

from operations import web2py_app
from operations.app_config import deploy_config
from operations.config import ConfigError, as_app_name
from operations.data_keys import check_data_keys
from operations.formats import RELEASE_ID

check_data_keys()  # a misspelt --data key is refused, not ignored

app_name = host.data.get("rollback_app")
if not app_name:
    raise ConfigError("rollback_app: required, e.g. --data rollback_app=notes")
as_app_name("rollback_app", app_name)
c = deploy_config(host.data, require_apps=False)
to = str(host.data.get("rollback_to") or "previous")
if to != "previous" and not RELEASE_ID.fullmatch(to):
    raise ConfigError(f"rollback_to: a release id like 20261125T101500Z-9c1e2a3b4c5d, got {to!r}")
rolled = web2py_app.rollback(
    name=f"Roll back app {app_name} to {to}", app=str(app_name), config=c, to=to
)
web2py_app.report(rolled, str(app_name), c)
