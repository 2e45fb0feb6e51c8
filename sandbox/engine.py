"""Sandbox engines: what boots the servers. Both give the same servers (systemd as PID 1, sshd
with their own host keys, the deploy user, an address on the sandbox network, apt through the
sandbox's proxy) recorded in the same state file, so inventories/sandbox.py reads either.

- ``nspawn`` (the default): systemd-nspawn on overlayfs roots, sandbox/commands.py.
- ``docker``: containers of a Docker engine, sandbox/docker_engine.py.

The one switch: ``bin/sandbox --engine docker ...`` or ``W2P_SANDBOX_ENGINE=docker``.
"""

from __future__ import annotations

from typing import Protocol

from sandbox.config import Settings
from sandbox.state import Server, Store
from sandbox.util import SandboxError

ENGINES = ("nspawn", "docker")
DEFAULT_ENGINE = "nspawn"


class Engine(Protocol):
    """What bin/sandbox asks of an engine (`ssh` needs only the state: common to both)."""

    name: str

    def up(
        self, settings: Settings, count: int, base: str, prefix: str, release: str | None
    ) -> list[Server]:
        """Ensure PREFIX-1..COUNT run; prints one line per server."""
        ...

    def down(self, settings: Settings, names: list[str]) -> None:
        """Stop and remove the servers (all: and the network, proxy, rules)."""
        ...

    def status(self, settings: Settings) -> list[str]:
        """Lines for `bin/sandbox status`."""
        ...

    def inventory(self, settings: Settings) -> str:
        """The state as JSON, with whether each server runs."""
        ...

    def save(self, settings: Settings, name: str, golden: str, force: bool) -> object:
        """Snapshot a server as image GOLDEN."""
        ...

    def remove_image(self, settings: Settings, golden: str) -> None:
        """Delete a saved image."""
        ...

    def images(self, settings: Settings) -> list[str]:
        """Lines for `bin/sandbox images`."""
        ...


class NspawnEngine:
    """systemd-nspawn servers (sandbox/commands.py, unchanged)."""

    name = "nspawn"

    def up(self, settings, count, base, prefix, release):  # noqa: D102
        from sandbox import commands

        return commands.up(settings, count, base, prefix, release)

    def down(self, settings, names):  # noqa: D102
        from sandbox import commands

        commands.down(settings, names)

    def status(self, settings):  # noqa: D102
        from sandbox import commands

        return commands.status(settings)

    def inventory(self, settings):  # noqa: D102
        from sandbox import commands

        return commands.inventory(settings)

    def save(self, settings, name, golden, force):  # noqa: D102
        from sandbox import commands

        return commands.save(settings, name, golden, force)

    def remove_image(self, settings, golden):  # noqa: D102
        from sandbox import commands

        commands.remove_image(settings, golden)

    def images(self, settings):  # noqa: D102
        from sandbox import commands

        return commands.images(settings)


def parse_engine(text: str, what: str = "--engine") -> str:
    """'docker', 'Docker' -> 'docker'; anything else is refused with one line."""
    value = text.strip().lower()
    if value not in ENGINES:
        raise SandboxError(f"{what} {text!r}: choose {' or '.join(ENGINES)}")
    return value


def choose(requested: str | None, servers: list[Server]) -> str:
    """The engine of a command: the one asked for (flag, else W2P_SANDBOX_ENGINE), else the
    one this state's servers run on, else nspawn. One state dir is one engine at a time:
    a request for the other one while servers run is refused (its `down` would not see them)."""
    running = sorted({s.engine for s in servers})
    if requested is None:
        return running[0] if running else DEFAULT_ENGINE
    other = [s for s in servers if s.engine != requested]
    if other:
        engine = other[0].engine
        names = ", ".join(s.name for s in other)
        raise SandboxError(
            f"this sandbox runs {engine} servers ({names}), not {requested}: "
            f"bin/sandbox --engine {engine} down first, or use another W2P_SANDBOX_DIR"
        )
    return requested


def get(name: str) -> Engine:
    """The engine called NAME."""
    if name == "docker":
        from sandbox.docker_engine import DockerEngine

        return DockerEngine()
    return NspawnEngine()


def for_command(settings: Settings, requested: str | None) -> Engine:
    """The engine a bin/sandbox command runs on (see choose)."""
    servers = Store(settings.state_file).state.servers if settings.state_file.exists() else []
    return get(choose(requested, servers))
