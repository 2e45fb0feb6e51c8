"""Fleet status: per host and app, what is live, since when, by whom, the lock, maintenance,
drift (files of the live release edited on the server) and the units. Changes nothing.

    pyinfra -y inventories/prod.py deploys/status.py
    pyinfra -y inventories/prod.py deploys/status.py --data status_file=status.json

Every app with releases on a host is reported. Only facts are read: no operation runs.
"""

from pyinfra import host, logger

from operations.facts.releases import AppsOnServer, AppStatus
from operations.facts.systemd import UnitStates
from operations.formats import layout_path
from operations.local.status import app_line, app_record, write_status
from operations.settings.data_keys import check_data_keys
from operations.settings.defaults import value
from operations.settings.layout import UNITS, layout_settings

check_data_keys()  # a misspelt --data key is refused, not ignored

layout = layout_settings(host.data)
status_file = value(host.data, "status_file")

units = host.get_fact(UnitStates, units=[*UNITS, "web2py-scheduler@*"]) or {}
for app_name in host.get_fact(AppsOnServer, apps_dir=layout.apps_dir):
    status = host.get_fact(AppStatus, layout=layout_path(layout.config_dir), app_name=app_name)
    record = app_record(status, units)
    line = app_line(host.name, app_name, record)
    (logger.warning if record["drift"] or record["lock"] or not record["known"] else logger.info)(
        line
    )
    if status_file:
        write_status(status_file, host.name, app_name, record)
