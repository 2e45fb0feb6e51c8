"""Where the sandbox keeps things and which network it uses (environment overrides)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.release import DEFAULT_RELEASE, parse_release
from sandbox.util import SandboxError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path("/var/cache/pyinfra-web2py-sandbox")
DEFAULT_BRIDGE = "w2pbr0"
DEFAULT_SUBNET = "10.213.0.1/24"
DEFAULT_PROXY_PORT = 3142
SSH_USER = "deploy"
FIRST_HOST_OFFSET = 10  # server i gets network address + 10 + i


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    cache_dir: Path
    bridge: str
    bridge_ip: ipaddress.IPv4Address
    network: ipaddress.IPv4Network
    proxy_port: int
    # What `up` boots without --release (W2P_SANDBOX_RELEASE, else release.DEFAULT_RELEASE).
    default_release: str = DEFAULT_RELEASE
    # W2P_SANDBOX_ENGINE (nspawn or docker) when set; None: see sandbox/engine.py choose().
    engine: str | None = None

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def servers_dir(self) -> Path:
        return self.state_dir / "servers"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def netns_prefix(self) -> str:
        return f"{self.bridge}-"

    @property
    def proxy_url(self) -> str:
        return f"http://{self.bridge_ip}:{self.proxy_port}"

    @property
    def firewall_tag(self) -> str:
        return f"w2p-sandbox:{self.bridge}"


def parse_subnet(text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Network]:
    """'10.213.0.1/24' -> (bridge address, network); a bare network gets its first address."""
    try:
        iface = ipaddress.IPv4Interface(text.strip())
    except ValueError as exc:
        raise ConfigError(f"W2P_SANDBOX_SUBNET: not an IPv4 address/prefix: {text!r}") from exc
    network = iface.network
    if network.prefixlen > 26:
        raise ConfigError(f"W2P_SANDBOX_SUBNET: {text!r} is too small (need /26 or larger)")
    address = iface.ip
    if address == network.network_address:
        address = network.network_address + 1
    if address == network.broadcast_address:
        raise ConfigError(f"W2P_SANDBOX_SUBNET: {text!r} is the broadcast address")
    return address, network


def valid_ifname(name: str) -> bool:
    return 0 < len(name) <= 11 and name.replace("-", "").replace("_", "").isalnum()


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    bridge = env.get("W2P_SANDBOX_BRIDGE") or DEFAULT_BRIDGE
    if not valid_ifname(bridge):
        raise ConfigError(f"W2P_SANDBOX_BRIDGE: {bridge!r}: use 1-11 letters, digits, - or _")
    bridge_ip, network = parse_subnet(env.get("W2P_SANDBOX_SUBNET") or DEFAULT_SUBNET)
    port_text = env.get("W2P_SANDBOX_PROXY_PORT") or str(DEFAULT_PROXY_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"W2P_SANDBOX_PROXY_PORT: not a port: {port_text!r}")
    try:
        release = parse_release(env.get("W2P_SANDBOX_RELEASE") or DEFAULT_RELEASE,
                                what="W2P_SANDBOX_RELEASE")  # fmt: skip
    except SandboxError as exc:
        raise ConfigError(str(exc)) from exc
    engine = (env.get("W2P_SANDBOX_ENGINE") or "").strip().lower() or None
    if engine not in (None, "nspawn", "docker"):
        raise ConfigError(f"W2P_SANDBOX_ENGINE: {engine!r}: choose nspawn or docker")
    return Settings(
        engine=engine,
        state_dir=Path(env.get("W2P_SANDBOX_DIR") or REPO / ".sandbox").resolve(),
        cache_dir=Path(env.get("W2P_SANDBOX_CACHE") or DEFAULT_CACHE).resolve(),
        bridge=bridge,
        bridge_ip=bridge_ip,
        network=network,
        proxy_port=int(port_text),
        default_release=release,
    )
