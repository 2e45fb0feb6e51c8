"""Facts about login accounts (never a secret: salts and digests only)."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand


class ShadowPassword(FactBase[dict[str, str] | None]):
    """
    A user's /etc/shadow password field, reduced to its salt part (``$6$rounds=N$salt``) and
    the sha256 of the whole field, so the controller can check a password without the hash
    ever being printed. None when the user does not exist.

    .. code:: python

        host.get_fact(ShadowPassword, user="deploy")
    """

    def command(self, user: str) -> StringCommand:
        script = (
            'h=$(getent shadow "$1" | cut -d: -f2) || exit 0; '
            'printf "%s\\n" "${h%\\$*}"; printf "%s" "$h" | sha256sum | cut -c1-64'
        )
        return StringCommand("sh", "-c", QuoteString(script), "shadow", QuoteString(user))

    def process(self, output: list[str]) -> dict[str, str] | None:
        lines = [line.strip() for line in output]
        if len(lines) < 2:
            return None
        return {"salt": lines[0], "sha256": lines[1]}
