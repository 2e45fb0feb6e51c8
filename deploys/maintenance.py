"""Maintenance mode for one web2py app: a notice on its pages, down (503), or back up.

    pyinfra inventories/prod.py deploys/maintenance.py --data maintenance_app=notes \
        --data maintenance_action=notify --data 'maintenance_message=Maintenance at 22:00 UTC.'
    pyinfra inventories/prod.py deploys/maintenance.py --data maintenance_app=notes \
        --data maintenance_action=down --data 'maintenance_allow=["203.0.113.7"]'
    pyinfra inventories/prod.py deploys/maintenance.py --data maintenance_app=notes \
        --data maintenance_action=up

- notify: the app serves as usual; nginx inserts the message, as a fixed bar, before </body> of
  every HTML page (the web2py layout's response.flash would need the app's code changed).
- down: the app's URLs answer 503 with a page (the message, a Retry-After header) from nginx
  itself; its static files, and clients on the allow-list (maintenance_allow), still pass.
  Sessions, databases and uploads are not touched.
- up: neither; running it on an app that is up changes nothing.

Switching never reloads nginx nor restarts uWSGI: nginx tests flag files on every request
(operations/maintenance.py has the layout and why it lives in /etc/web2py/maintenance). Only a
changed allow-list reloads nginx (gracefully, after nginx -t). The server needs the nginx config
of install_web2py from this version on. Bad data stops the run on the controller before any host
is touched; a second run with the same data changes nothing.
"""

from pyinfra import host

from operations import maintenance
from operations.facts.maintenance import MaintenanceState
from operations.maintenance import check_host
from operations.settings.data_keys import check_data_keys
from operations.settings.maintenance import maintenance_settings

check_data_keys()  # a misspelt --data key is refused, not ignored

c = maintenance_settings(host.data)
# Here, while preparing, so that a server that cannot do it stops the run before any change.
state = host.get_fact(
    MaintenanceState, config_dir=c.config_dir, app_name=c.app_name, web2py_root=c.web2py_root
)
check_host(state, c.app_name, c.action, c.web2py_root)

if c.action == "down":
    maintenance.allow_list(
        name=f"Maintenance allow-list ({len(c.allow)} entries)",
        path=f"{c.maintenance_dir}/allow.conf",
        networks=list(c.allow),
    )
title = {
    "notify": f"{c.app_name}: notice on every page",
    "down": f"{c.app_name}: down for maintenance (503, Retry-After {c.retry_after}s)",
    "up": f"{c.app_name}: up",
}[c.action]
maintenance.app_mode(
    name=title,
    app_name=c.app_name,
    mode=c.action,
    message=c.message,
    retry_after=c.retry_after,
    config_dir=c.config_dir,
    web2py_root=c.web2py_root,
)
