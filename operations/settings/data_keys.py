"""Every data key a run is given must be one the deploys know: a misspelt key is refused.

pyinfra hands deploys whatever ``--data`` and ``group_data/`` files hold; a key nobody reads
(``--data http_prot=8080``) would be silently ignored and the run would do something else than
the operator asked. The known keys are the ones ``group_data/all.py`` defines (each with its
default), plus pyinfra's own connection and global arguments.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pyinfra import host

from .defaults import known_keys
from .validators import ConfigError

# pyinfra's own host data: connectors' settings and global arguments
PYINFRA_PREFIXES = ("_", "ssh_", "winrm_", "docker_", "dockerssh_", "chroot_", "local_", "podman_")


def unknown_key_message(where: str, keys: Iterable[str]) -> str | None:
    """One line naming the first unknown key of ``keys`` and its closest known name."""
    known = known_keys()
    for key in sorted(keys):
        if key in known or key.startswith(PYINFRA_PREFIXES):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else " (group_data/all.py lists every key)"
        return f"{where} {key}: unknown data key{hint}"
    return None


def check_data_keys() -> None:
    """Refuse (on the controller, before any host is touched) unknown keys given with
    ``--data`` or in a group's data file. Host data in inventories is left alone: it may carry
    the user's own keys for their hosts."""
    inventory = host.inventory
    message = unknown_key_message("--data", inventory.get_override_data())
    for group in sorted(host.groups):
        message = message or unknown_key_message(
            f"group_data/{group}.py:", inventory.get_group_data(group)
        )
    if message:
        raise ConfigError(message)
