"""Show and release an app's deploy lock, left behind by a deploy that died.

pyinfra inventories/prod.py deploys/unlock.py --data unlock_app=notes --dry   # who holds it
pyinfra inventories/prod.py deploys/unlock.py --data unlock_app=notes         # release it
"""

from pyinfra import host, logger

from operations import web2py_app
from operations.app_config import deploy_config
from operations.config import ConfigError, as_app_name
from operations.data_keys import check_data_keys
from operations.web2py_app import AppLock

check_data_keys()  # a misspelt --data key is refused, not ignored

app = host.data.get("unlock_app")
if not app:
    raise ConfigError("unlock_app: required, e.g. --data unlock_app=notes")
as_app_name("unlock_app", app)
c = deploy_config(host.data, require_apps=False)
holder = host.get_fact(AppLock, apps_dir=c.apps_dir, app=app)
if holder:
    logger.info(
        f"{host.name}: {app} locked by {holder.get('who')} since {holder.get('since')} "
        f"(version {holder.get('version')})"
    )
web2py_app.unlock(name=f"Release the deploy lock of {app}", app=app, config=c)
