"""Facts about an app's maintenance mode (the files nginx tests: operations/maintenance.py)."""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

# A line of the locations file that only a config with maintenance support (and the health
# check's way through it) has.
MARKER = "w2p_health_bypass"


class MaintenanceState(FactBase[dict[str, Any]]):
    """
    An app's maintenance files: ``down`` (bool), ``notify`` (sha256 of the notice or None),
    ``page`` (the page link's target or None), ``page_sha256``; ``app`` (the app exists) and
    ``supported`` (the installed nginx locations know maintenance).

    .. code:: python

        host.get_fact(MaintenanceState, config_dir="/etc/web2py", app_name="notes",
                      web2py_root="/home/www-data/web2py")
    """

    def command(self, config_dir: str, app_name: str, web2py_root: str) -> StringCommand:
        script = (
            'd="$1/maintenance"; a="$2"; '
            'if [ -f "$d/$a.down" ]; then echo down; fi; '
            'if [ -f "$d/$a.notify" ]; then echo "notify $(sha256sum < "$d/$a.notify")"; fi; '
            'if [ -L "$d/$a.page" ]; then echo "page $(readlink "$d/$a.page")"; fi; '
            'if [ -f "$d/$a.page/index.html" ]; then '
            'echo "page_sha256 $(sha256sum < "$d/$a.page/index.html")"; fi; '
            'if [ -e "$3/applications/$a" ]; then echo app; fi; '
            f'if grep -qs {MARKER} "$1/nginx-locations.conf"; then echo supported; fi'
        )
        return StringCommand(
            "sh", "-c", QuoteString(script), "maintenance",
            QuoteString(config_dir), QuoteString(app_name), QuoteString(web2py_root),
        )  # fmt: skip

    def process(self, output: list[str]) -> dict[str, Any]:
        state: dict[str, Any] = {
            "down": False, "notify": None, "page": None, "page_sha256": None,
            "app": False, "supported": False,
        }  # fmt: skip
        for line in output:
            key, _, value = line.strip().partition(" ")
            if key in ("down", "app", "supported"):
                state[key] = True
            elif key in ("notify", "page_sha256"):
                state[key] = value.split()[0] if value.split() else None
            elif key == "page":
                state[key] = value or None
        return state
