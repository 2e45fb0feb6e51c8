"""Rendering on the controller of what maintenance mode shows: the 503 page, the notice and the
allow-list nginx reads (operations/maintenance.py puts them in place)."""

from __future__ import annotations

from pathlib import Path

import jinja2

BYPASS = ".allowed"  # the value of $w2p_maintenance_bypass for allow-listed clients
TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "maintenance.html.j2"


def render_allow(networks: tuple[str, ...] | list[str]) -> str:
    """The allow-list as lines of the site's ``geo`` block (empty: nobody bypasses)."""
    return "".join(f"{network} {BYPASS};\n" for network in networks)


def retry_text(seconds: int) -> str:
    """When to come back, in words."""
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    hours = round(seconds / 3600)
    return f"about {hours} hour{'s' if hours != 1 else ''}"


def _template() -> jinja2.Template:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    return env.from_string(TEMPLATE.read_text())


def render_page(app_name: str, message: str, retry_after: int) -> str:
    """The 503 page of an app that is down (a whole HTML document; the message is plain text)."""
    return _template().render(
        part="page", app=app_name, message=message, retry_text=retry_text(retry_after)
    )


def render_notice(app_name: str, message: str) -> str:
    """The notice fragment inserted into the app's pages (the message is plain text)."""
    return _template().render(part="notice", app=app_name, message=message, retry_text="")
