"""The server's layout: where web2py, its apps, configs and backups live, as whom, on which port.

Read once per run by :func:`layout_settings` and shared by every settings object (install,
deploys, maintenance, users): each of those *is* a :class:`Layout` with its own fields added,
so a layout key has one reading, one check and one default (``group_data/all.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .defaults import value
from .validators import as_cache_dir, as_port, as_remote_path, as_run_dir, as_unix_name

# The systemd units of a web2py server, named once (sudo rules, webserver actions, checks).
UNITS = ("nginx", "web2py-uwsgi")
SCHEDULER_UNIT = "web2py-scheduler@{app}"


def maintenance_dir(config_dir: str) -> str:
    """Where nginx finds the maintenance flags, pages and allow-list (``web2py_config_dir``'s
    ``maintenance/``)."""
    return f"{config_dir}/maintenance"


def scheduler_unit(app_name: str) -> str:
    """The scheduler unit of an app."""
    return SCHEDULER_UNIT.format(app=app_name)


@dataclass(frozen=True)
class Layout:
    """Paths, accounts and the HTTPS port, checked. Built by :func:`layout_settings`."""

    web2py_root: str
    user: str  # the account uWSGI and the schedulers run as
    group: str
    config_dir: str
    run_dir: str
    cache_dir: str
    apps_dir: str
    backups_dir: str
    https_port: int

    @property
    def root(self) -> str:
        """``web2py_root`` (the name the templates use)."""
        return self.web2py_root

    @property
    def maintenance_dir(self) -> str:
        """Where nginx finds the maintenance flags, pages and allow-list."""
        return maintenance_dir(self.config_dir)

    def layout(self) -> dict[str, Any]:
        """The layout fields alone, to build a settings object that extends it."""
        return {f.name: getattr(self, f.name) for f in fields(Layout)}


def layout_settings(data: Any) -> Layout:
    """Check the layout keys of ``data`` (``host.data``); ConfigError on the first bad one."""
    return Layout(
        web2py_root=as_remote_path("web2py_root", value(data, "web2py_root")),
        user=as_unix_name("web2py_user", value(data, "web2py_user")),
        group=as_unix_name("web2py_group", value(data, "web2py_group")),
        config_dir=as_remote_path("web2py_config_dir", value(data, "web2py_config_dir")),
        run_dir=as_run_dir("web2py_run_dir", value(data, "web2py_run_dir")),
        cache_dir=as_cache_dir("web2py_cache_dir", value(data, "web2py_cache_dir")),
        apps_dir=as_remote_path("web2py_apps_dir", value(data, "web2py_apps_dir")),
        backups_dir=as_remote_path("web2py_backups_dir", value(data, "web2py_backups_dir")),
        https_port=as_port("https_port", value(data, "https_port")),
    )
