"""Host bridge, one network namespace + veth per server, firewall rules, sysctls."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
from pathlib import Path

from sandbox.config import Settings
from sandbox.util import SandboxError, run, say

INOTIFY_INSTANCES = 1024


def ip(*args: str, log: Path | None = None, check: bool = True) -> str:
    return run(["ip", *args], log=log, timeout=30, check=check).stdout


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def veth_name(settings: Settings, server: str) -> str:
    digest = hashlib.sha1(f"{settings.bridge}/{server}".encode()).hexdigest()
    return f"v{digest[:10]}"


def netns_name(settings: Settings, server: str) -> str:
    return f"{settings.netns_prefix}{server}"


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(key: str) -> str | None:
    try:
        return _sysctl_path(key).read_text().strip()
    except OSError:
        return None


def write_sysctl(key: str, value: str) -> None:
    try:
        _sysctl_path(key).write_text(value)
    except OSError as exc:
        raise SandboxError(f"cannot set {key}={value}: {exc}") from exc


def raise_inotify_limit() -> None:
    """Each booted systemd takes inotify instances; the default 128 stops the ~20th server."""
    current = read_sysctl("fs.inotify.max_user_instances")
    if current is not None and int(current) < INOTIFY_INSTANCES:
        say(f"raising fs.inotify.max_user_instances {current} -> {INOTIFY_INSTANCES}")
        write_sysctl("fs.inotify.max_user_instances", str(INOTIFY_INSTANCES))


def ensure_bridge(settings: Settings, log: Path) -> None:
    cidr = f"{settings.bridge_ip}/{settings.network.prefixlen}"
    if not link_exists(settings.bridge):
        _check_subnet_free(settings)
        say(f"creating bridge {settings.bridge} {cidr}")
        ip("link", "add", settings.bridge, "type", "bridge", log=log)
    _no_ipv6(settings.bridge)
    addrs = json.loads(ip("-j", "addr", "show", "dev", settings.bridge) or "[]")
    have = {f"{a['local']}/{a['prefixlen']}" for i in addrs for a in i.get("addr_info", [])}
    if cidr not in have:
        ip("addr", "add", cidr, "dev", settings.bridge, log=log)
    ip("link", "set", settings.bridge, "up", log=log)


def _check_subnet_free(settings: Settings) -> None:
    routes = json.loads(ip("-j", "route", "show", "table", "all") or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst == str(settings.network) and route.get("dev") != settings.bridge:
            raise SandboxError(
                f"{settings.network} is already routed via {route.get('dev')}: "
                "set W2P_SANDBOX_SUBNET to a free network"
            )


def _no_ipv6(ifname: str) -> None:
    """No IPv6 on the host side: servers reach the host only at the bridge's IPv4 address."""
    path = Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6")
    if path.exists():
        path.write_text("1")


def remove_bridge(settings: Settings, log: Path) -> None:
    if link_exists(settings.bridge):
        say(f"removing bridge {settings.bridge}")
        ip("link", "set", settings.bridge, "down", log=log, check=False)
        ip("link", "del", settings.bridge, log=log)


def bridge_ports(settings: Settings) -> list[str]:
    brif = Path(f"/sys/class/net/{settings.bridge}/brif")
    return sorted(p.name for p in brif.iterdir()) if brif.is_dir() else []


def create_netns(settings: Settings, netns: str, veth: str, address: str, log: Path) -> None:
    """netns with host0 (address, lo up, default route via the bridge); host end on the bridge."""
    delete_netns(netns, veth, log)
    ip("netns", "add", netns, log=log)
    ip("link", "add", veth, "type", "veth", "peer", "name", "host0", "netns", netns, log=log)
    _no_ipv6(veth)
    ip("link", "set", veth, "master", settings.bridge, "up", log=log)
    prefix = settings.network.prefixlen
    ip("-n", netns, "addr", "add", f"{address}/{prefix}", "dev", "host0", log=log)
    ip("-n", netns, "link", "set", "lo", "up", log=log)
    ip("-n", netns, "link", "set", "host0", "up", log=log)
    ip("-n", netns, "route", "add", "default", "via", str(settings.bridge_ip), log=log)
    # The host may still hold this address's MAC from a server removed a minute ago (a STALE
    # neighbour entry): it would send there first and sshd would answer only after the kernel's
    # probes time out (9-27 s measured). The new server's MAC is learnt afresh instead.
    ip("neigh", "flush", "to", address, "dev", settings.bridge, log=log, check=False)


def delete_netns(netns: str, veth: str | None, log: Path) -> None:
    if Path(f"/run/netns/{netns}").exists():
        ip("netns", "del", netns, log=log)
    if veth and link_exists(veth):
        ip("link", "del", veth, log=log, check=False)


def list_netns(prefix: str) -> list[str]:
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    return sorted(p.name for p in netns_dir.iterdir() if p.name.startswith(prefix))


# --- firewall --------------------------------------------------------------------------------


def _iptables() -> str | None:
    return shutil.which("iptables") or (
        "/usr/sbin/iptables" if Path("/usr/sbin/iptables").exists() else None
    )


def firewall_rules(settings: Settings) -> list[list[str]]:
    """Rules (chain first) that keep servers to the proxy: what this host needs of them."""
    tag = ["-m", "comment", "--comment", settings.firewall_tag]
    br, net = settings.bridge, str(settings.network)
    rules = [
        ["INPUT", "-i", br, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", *tag,
         "-j", "ACCEPT"],
        ["INPUT", "-i", br, "-d", str(settings.bridge_ip), "-p", "tcp", "--dport",
         str(settings.proxy_port), *tag, "-j", "ACCEPT"],
        ["INPUT", "-i", br, "-p", "icmp", *tag, "-j", "ACCEPT"],
        ["INPUT", "-i", br, *tag, "-j", "REJECT"],
    ]  # fmt: skip
    if read_sysctl("net.ipv4.ip_forward") == "1":
        rules.append(["FORWARD", "-s", net, "!", "-d", net, *tag, "-j", "REJECT"])
    if read_sysctl("net.bridge.bridge-nf-call-iptables") == "1":
        # bridged server-to-server frames pass FORWARD too (e.g. Docker's DROP policy)
        rules.insert(0, ["FORWARD", "-i", br, "-o", br, *tag, "-j", "ACCEPT"])
    return rules


def add_firewall(settings: Settings, log: Path) -> list[list[str]]:
    iptables = _iptables()
    if iptables is None:
        if read_sysctl("net.ipv4.ip_forward") == "1":
            raise SandboxError("net.ipv4.ip_forward is 1 and iptables is missing: run bin/setup")
        say("iptables not found: servers can reach every host port at the bridge address")
        return []
    remove_firewall(settings, log)
    position: dict[str, int] = {}
    rules = firewall_rules(settings)
    for chain, *spec in rules:
        position[chain] = position.get(chain, 0) + 1
        run([iptables, "-w", "10", "-I", chain, str(position[chain]), *spec], log=log, timeout=30)
    return rules


def remove_firewall(settings: Settings, log: Path) -> None:
    """Delete every rule carrying this sandbox's comment tag (whatever a crashed run left)."""
    iptables = _iptables()
    if iptables is None:
        return
    for chain in ("INPUT", "FORWARD"):
        listing = run([iptables, "-w", "10", "-S", chain], log=log, timeout=30, check=False)
        for line in listing.stdout.splitlines():
            words = shlex.split(line)
            if settings.firewall_tag in words and words[:1] == ["-A"]:
                run([iptables, "-w", "10", "-D", *words[1:]], log=log, timeout=30, check=False)
