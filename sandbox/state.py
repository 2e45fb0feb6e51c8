"""state.json: the servers, the proxy and the firewall rules this tool made (and nothing else)."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sandbox.config import FIRST_HOST_OFFSET
from sandbox.release import LEGACY_RELEASE
from sandbox.util import SandboxError, write_file

VERSION = 1


@dataclass
class Server:
    name: str
    address: str
    netns: str
    veth: str
    base: str
    lower: str
    root: str
    ssh_user: str
    ssh_key: str
    known_hosts: str
    log: str
    pid: int | None = None
    state: str = "starting"
    host_keys: list[str] = field(default_factory=list)
    # The Debian release it runs (codename); entries from before releases were all bookworm.
    release: str = LEGACY_RELEASE
    # What boots it (sandbox/engine.py); entries from before engines were all nspawn.
    engine: str = "nspawn"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Server:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class State:
    servers: list[Server] = field(default_factory=list)
    proxy_pid: int | None = None
    firewall_rules: list[list[str]] = field(default_factory=list)
    bridge: str | None = None
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "bridge": self.bridge,
            "proxy_pid": self.proxy_pid,
            "firewall_rules": self.firewall_rules,
            "servers": [asdict(s) for s in sorted(self.servers, key=_order)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        return cls(
            servers=[Server.from_dict(s) for s in data.get("servers", [])],
            proxy_pid=data.get("proxy_pid"),
            firewall_rules=[list(r) for r in data.get("firewall_rules", [])],
            bridge=data.get("bridge"),
            version=int(data.get("version", VERSION)),
        )

    def get(self, name: str) -> Server | None:
        return next((s for s in self.servers if s.name == name), None)

    def put(self, server: Server) -> None:
        self.servers = [s for s in self.servers if s.name != server.name] + [server]

    def remove(self, name: str) -> None:
        self.servers = [s for s in self.servers if s.name != name]

    def with_prefix(self, prefix: str) -> list[Server]:
        """The servers named PREFIX-<number>."""
        return [
            s for s in self.servers
            if s.name.rpartition("-")[0] == prefix and s.name.rpartition("-")[2].isdigit()
        ]  # fmt: skip


def _order(server: Server) -> tuple[str, int, str]:
    prefix, _, number = server.name.rpartition("-")
    return (prefix, int(number), "") if number.isdigit() else (server.name, 0, server.name)


def load(path: Path) -> State:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return State()
    try:
        return State.from_dict(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise SandboxError(f"{path}: unreadable state ({exc}); fix or remove it") from exc


def save(path: Path, state: State) -> None:
    write_file(path, json.dumps(state.to_dict(), indent=2) + "\n", mode=0o644)


class Store:
    """The state, saved after every change (threads booting servers share one Store)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = load(path)
        self._lock = threading.Lock()

    def update(self, server: Server) -> None:
        with self._lock:
            self.state.put(server)
            save(self.path, self.state)

    def remove(self, name: str) -> None:
        with self._lock:
            self.state.remove(name)
            save(self.path, self.state)

    def commit(self) -> None:
        with self._lock:
            save(self.path, self.state)


def allocate_address(
    network: ipaddress.IPv4Network,
    bridge_ip: ipaddress.IPv4Address,
    index: int,
    taken: Iterable[str],
) -> str:
    """network + 10 + index when free; else the lowest free address from network + 11."""
    used = {ipaddress.IPv4Address(a) for a in taken} | {bridge_ip}
    preferred = network.network_address + FIRST_HOST_OFFSET + index
    if preferred in network and preferred != network.broadcast_address and preferred not in used:
        return str(preferred)
    candidate = network.network_address + FIRST_HOST_OFFSET + 1
    while candidate < network.broadcast_address:
        if candidate not in used:
            return str(candidate)
        candidate += 1
    raise SandboxError(f"no free address left in {network}")


@contextmanager
def exclusive(lock_path: Path, timeout: float = 900) -> Iterator[None]:
    """One changing bin/sandbox at a time (up, down, save), waiting a bounded time."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SandboxError(
                        f"another bin/sandbox holds {lock_path} for over {timeout:.0f} s"
                    ) from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)
