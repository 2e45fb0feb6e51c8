"""Bring an app's backup, or a fresh snapshot, from each host to the controller, verified.

    pyinfra inventories/prod.py deploys/retrieve.py --data retrieve_app=notes      # latest backup
    pyinfra inventories/prod.py deploys/retrieve.py --data retrieve_app=notes \
        --data retrieve_backup=snapshot                                             # take one now

Files arrive in ``retrieve_dir/<host>/<app>/`` with their ``.sha256``, checked after download.
"""

from pyinfra import host
from pyinfra.operations import python

from operations import release_tool
from operations.app_config import deploy_config
from operations.config import ConfigError, as_app_name
from operations.data_keys import check_data_keys
from operations.retrieve import retrieve_backup

check_data_keys()  # a misspelt --data key is refused, not ignored

app_name = host.data.get("retrieve_app")
if not app_name:
    raise ConfigError("retrieve_app: required, e.g. --data retrieve_app=notes")
as_app_name("retrieve_app", app_name)
c = deploy_config(host.data, require_apps=False)
which = str(host.data.get("retrieve_backup") or "latest")
if "/" in which:
    raise ConfigError(f"retrieve_backup: a backup file name, 'latest' or 'snapshot', got {which!r}")
local_dir = str(host.data.get("retrieve_dir") or "retrieved")

if which == "snapshot":
    release_tool.install(name="Release tool")
python.call(
    name=f"Retrieve {which} backup of {app_name}",
    function=retrieve_backup,
    app=str(app_name),
    config=c,
    which=which,
    local_dir=local_dir,
)
