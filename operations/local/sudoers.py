"""The sudoers drop-in of a deploy user, rendered on the controller (``accounts.sudoers``
installs it)."""

from __future__ import annotations

from ..settings.layout import UNITS, scheduler_unit

UNIT_VERBS = ("start", "stop", "restart", "reload", "status")


def sudoers_rules(user: str, scope: str, schedulers: tuple[str, ...] = ()) -> str | None:
    """The sudoers drop-in for a scope; None for "none" (no drop-in). The "web2py" scope names
    every command in full, the schedulers' units included: no wildcard in it (a "*" in sudoers
    matches across arguments too, so "systemctl start web2py-scheduler@*" would allow
    "... web2py-scheduler@x debug-shell.service")."""
    header = f"# Managed by pyinfra-web2py (deploys/create_user.py): sudo scope {scope!r}\n"
    if scope == "none":
        return None
    if scope == "full":
        return header + f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    if scope == "password":
        return header + f"{user} ALL=(ALL:ALL) ALL\n"
    units = (*UNITS, *(scheduler_unit(app_name) for app_name in schedulers))
    commands = ", ".join(
        f"/usr/bin/systemctl {verb} {unit}" for unit in units for verb in UNIT_VERBS
    )
    return header + f"{user} ALL=(root) NOPASSWD: {commands}\n"
