"""The sandbox's SSH keypair, its known_hosts file and the ssh command line."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sandbox.config import Settings
from sandbox.state import Server, State
from sandbox.util import SandboxError, run, say, write_file


def ensure_keypair(settings: Settings) -> Path:
    key = settings.ssh_key
    if not key.exists():
        say(f"generating the sandbox SSH key {key}")
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "w2p-sandbox", "-f", key])
    os.chmod(key, 0o600)
    return key


def public_key(settings: Settings) -> str:
    return settings.ssh_key.with_suffix(".pub").read_text().strip()


def read_host_keys(root: Path) -> list[str]:
    """'type base64' of each public host key in a server's root."""
    keys = []
    for pub in sorted((root / "etc/ssh").glob("ssh_host_*_key.pub")):
        words = pub.read_text().split()
        if len(words) >= 2:
            keys.append(f"{words[0]} {words[1]}")
    return keys


def known_hosts_text(state: State) -> str:
    lines = [
        f"{server.address} {key}"
        for server in sorted(state.servers, key=lambda s: s.address)
        for key in server.host_keys
    ]
    return "".join(line + "\n" for line in lines)


def write_known_hosts(settings: Settings, state: State) -> None:
    write_file(settings.known_hosts, known_hosts_text(state), mode=0o644)


def ssh_argv(server: Server, command: list[str]) -> list[str]:
    return [
        "ssh", "-i", server.ssh_key, "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        "-o", "LogLevel=ERROR", f"{server.ssh_user}@{server.address}", *command,
    ]  # fmt: skip


def sshd_answers(address: str, timeout: float = 2) -> bool:
    """An SSH banner comes back from address:22."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def require_ssh_client() -> None:
    if not any(Path(d, "ssh").exists() for d in os.get_exec_path()):
        raise SandboxError("ssh not found: run bin/setup (apt package openssh-client)")
