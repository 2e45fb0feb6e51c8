"""deploys/maintenance.py's settings: the app, the action, its text, the allow-list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .defaults import value
from .layout import Layout, layout_settings
from .validators import as_app_name, as_choice, as_int, as_networks, as_text, required_app_name

ACTIONS = ("notify", "down", "up")
# The texts shown when no message is given (maintenance_message, notice_message, down_message).
DEFAULT_MESSAGES = {
    "notify": "Maintenance is planned soon: this site may be unavailable for a few minutes.",
    "down": "This site is down for maintenance and will be back shortly.",
    "up": "",
}
MAX_RETRY_AFTER = 7 * 86400


@dataclass(frozen=True)
class MaintenanceSettings(Layout):
    """What deploys/maintenance.py does, checked. Built by :func:`maintenance_settings`."""

    action: str
    app_name: str
    message: str
    allow: tuple[str, ...]  # normalized networks, sorted
    retry_after: int


def maintenance_settings(data: Any) -> MaintenanceSettings:
    """Check deploys/maintenance.py's data (``host.data``); ConfigError on the first bad key."""
    action = as_choice("maintenance_action", value(data, "maintenance_action"), ACTIONS)
    app_name = required_app_name("maintenance_app", value(data, "maintenance_app"))
    return MaintenanceSettings(
        **layout_settings(data).layout(),
        action=action,
        app_name=as_app_name("maintenance_app", app_name),
        message=as_text(
            "maintenance_message", value(data, "maintenance_message"), DEFAULT_MESSAGES[action]
        ),
        allow=as_networks("maintenance_allow", value(data, "maintenance_allow")),
        retry_after=as_int(
            "maintenance_retry_after", value(data, "maintenance_retry_after"), 1, MAX_RETRY_AFTER
        ),
    )
