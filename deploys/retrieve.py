"""Bring an app's backup, or a fresh snapshot, from each host to the controller, verified.

    pyinfra inventories/prod.py deploys/retrieve.py --data retrieve_app=notes      # latest backup
    pyinfra inventories/prod.py deploys/retrieve.py --data retrieve_app=notes \
        --data retrieve_backup=snapshot                                             # take one now

Files arrive in ``retrieve_dir/<host>/<app>/`` with their ``.sha256``, checked after download.
"""

from pyinfra import host
from pyinfra.operations import python

from operations import release_tool
from operations.local.retrieve import retrieve_backup
from operations.settings.apps import deploy_settings
from operations.settings.data_keys import check_data_keys
from operations.settings.runs import retrieve_run

check_data_keys()  # a misspelt --data key is refused, not ignored

run = retrieve_run(host.data)
app_name, which, local_dir = run.app_name, run.which, run.local_dir
c = deploy_settings(host.data, require_apps=False)

if which == "snapshot":
    release_tool.install(name="Release tool")
python.call(
    name=f"Retrieve {which} backup of {app_name}",
    function=retrieve_backup,
    app_name=app_name,
    config=c,
    which=which,
    local_dir=local_dir,
)
