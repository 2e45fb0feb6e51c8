"""Start, stop, restart, reload or show nginx, uWSGI (web2py) and the web2py schedulers.

    pyinfra inventories/prod.py deploys/webserver.py --data webserver_action=restart

``reload`` is the zero-downtime one: nginx re-reads its config (checked first with nginx -t) and
uWSGI chain-reloads its workers one by one. ``status`` changes nothing and prints a line per host.
"""

from pyinfra import host, logger
from pyinfra.operations import server, systemd

from operations.facts.systemd import UnitStates
from operations.settings.data_keys import check_data_keys
from operations.settings.layout import UNITS, scheduler_unit
from operations.settings.runs import webserver_action

check_data_keys()  # a misspelt --data key is refused, not ignored

action = webserver_action(host.data)

units = host.get_fact(UnitStates, units=[*UNITS, scheduler_unit("*")])
loaded = {name: state for name, state in units.items() if state.get("LoadState") == "loaded"}
services = [name.removesuffix(".service") for name in sorted(loaded)]

if action == "status":
    summary = ", ".join(
        f"{name.removesuffix('.service')} {state.get('ActiveState', '?')}"
        f" ({state.get('UnitFileState') or 'no unit file'})"
        for name, state in sorted(loaded.items())
    )
    logger.info(f"{host.name}: {summary or 'no web2py units installed'}")
elif action == "reload":
    server.shell(name="Test the nginx config", commands=["nginx -t -q"])
    for service in services:
        systemd.service(name=f"Reload {service}", service=service, reloaded=True)
else:
    flags = {
        "start": {"running": True},
        "stop": {"running": False},
        "restart": {"running": True, "restarted": True},
    }[action]
    if action in ("start", "restart"):
        server.shell(name="Test the nginx config", commands=["nginx -t -q"])
    for service in services:
        systemd.service(name=f"{action.capitalize()} {service}", service=service, **flags)
