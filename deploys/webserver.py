"""Start, stop, restart, reload or show nginx, uWSGI (web2py) and the web2py schedulers.

    pyinfra inventories/prod.py deploys/webserver.py --data webserver_action=restart

``reload`` is the zero-downtime one: nginx re-reads its config (checked first with nginx -t) and
uWSGI chain-reloads its workers one by one. ``status`` changes nothing and prints a line per host.
"""

from pyinfra import host, logger
from pyinfra.operations import server, systemd

from operations.config import ConfigError
from operations.data_keys import check_data_keys
from operations.facts import UnitStates

check_data_keys()  # a misspelt --data key is refused, not ignored

ACTIONS = ("start", "stop", "restart", "reload", "status")
action = host.data.get("webserver_action", "status")
if action not in ACTIONS:
    raise ConfigError(f"webserver_action: expected one of {', '.join(ACTIONS)}, got {action!r}")

units = host.get_fact(UnitStates, units=["nginx", "web2py-uwsgi", "web2py-scheduler@*"])
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
