"""Show and release an app's deploy lock, left behind by a deploy that died.

pyinfra inventories/prod.py deploys/unlock.py --data unlock_app=notes --dry   # who holds it
pyinfra inventories/prod.py deploys/unlock.py --data unlock_app=notes         # release it
"""

from pyinfra import host, logger

from operations import releases
from operations.facts.releases import AppLock
from operations.settings.apps import deploy_settings
from operations.settings.data_keys import check_data_keys
from operations.settings.runs import unlock_app

check_data_keys()  # a misspelt --data key is refused, not ignored

app_name = unlock_app(host.data)
c = deploy_settings(host.data, require_apps=False)
holder = host.get_fact(AppLock, apps_dir=c.apps_dir, app_name=app_name)
if holder:
    logger.info(
        f"{host.name}: {app_name} locked by {holder.get('who')} since {holder.get('since')} "
        f"(version {holder.get('version')})"
    )
releases.unlock(name=f"Release the deploy lock of {app_name}", app_name=app_name, config=c)
