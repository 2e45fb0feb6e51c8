"""bin/sandbox --engine docker for real: boot two servers, check what they are and what they can
reach, a partial down, then a down after the state file was lost, which must leave nothing:
no container, network, bridge, volume, dangling image, mount, cgroup, proxy, firewall rule or
daemon the sandbox started. Needs root and Debian's docker.io (bin/setup), like the e2e tests.

It uses its own state dir, bridge, subnet and proxy port (W2P_TEST_DOCKER_LIVE_SUBNET,
W2P_TEST_DOCKER_LIVE_BRIDGE, W2P_TEST_DOCKER_LIVE_PROXY_PORT override them), so it never touches a
sandbox that is already up. The base image cache is shared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox import dockerd
from sandbox.config import load_settings
from sandbox.docker_engine import LABEL, cgroup_mounts, network_name

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "bin" / "sandbox"


@pytest.fixture()
def env(tmp_path):
    why = None
    if os.geteuid() != 0:
        why = "bin/sandbox needs root"
    elif not Path("/usr/sbin/dockerd").exists() or not shutil.which("ssh"):
        why = "missing docker.io or openssh-client: run bin/setup"
    if why:
        if os.environ.get("W2P_SKIP_E2E") == "1":
            pytest.skip(why)
        pytest.fail(f"{why} (set W2P_SKIP_E2E=1 to skip explicitly; CI never does)")
    values = {
        "W2P_SANDBOX_ENGINE": "docker",
        "W2P_SANDBOX_DIR": str(tmp_path / "state"),
        "W2P_SANDBOX_BRIDGE": os.environ.get("W2P_TEST_DOCKER_LIVE_BRIDGE") or "w2ptdk0",
        "W2P_SANDBOX_SUBNET": os.environ.get("W2P_TEST_DOCKER_LIVE_SUBNET") or "10.213.251.1/24",
        "W2P_SANDBOX_PROXY_PORT": os.environ.get("W2P_TEST_DOCKER_LIVE_PROXY_PORT") or "3150",
    }
    full = {**os.environ, **values}
    yield full
    subprocess.run([str(SANDBOX), "down"], env=full, timeout=300, check=False)


def sandbox(env, *args, timeout=900, check=True):
    result = subprocess.run(
        [str(SANDBOX), *args], env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, f"bin/sandbox {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result


def on_server(env, name: str, command: str) -> subprocess.CompletedProcess[str]:
    return sandbox(env, "ssh", name, command, timeout=120, check=False)


def leftovers(env, daemon_pid: int | None, daemon_was_running: bool) -> list[str]:
    """Everything of this sandbox that still exists on the machine."""
    settings = load_settings(env)
    found = []
    if str(settings.state_dir) in Path("/proc/self/mountinfo").read_text():
        found.append("a mount under the state dir")
    if Path(f"/sys/class/net/{settings.bridge}").exists():
        found.append(f"bridge {settings.bridge}")
    v2, v1 = cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    for point in [p for p in (v2, *v1) if p]:
        if (point / "w2p-sandbox" / settings.bridge).exists():
            found.append(f"cgroup {point}/w2p-sandbox/{settings.bridge}")
    conf = str(settings.cache_dir / "apt-cacher-ng" / settings.bridge / "etc")
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            continue  # a zombie PID 1 has not collected yet holds nothing
        if args[0].endswith(b"apt-cacher-ng") and conf.encode() in args:
            found.append(f"apt-cacher-ng pid {pid}")
        if daemon_pid and pid == daemon_pid:
            found.append(f"dockerd pid {pid}, started by this sandbox")
        elif not daemon_was_running and args[0].endswith(b"dockerd"):
            found.append(f"dockerd pid {pid}, none ran before the test")
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True, timeout=30).stdout
    if settings.firewall_tag in rules:
        found.append("iptables rules")
    if dockerd.answers():
        client = dockerd.client()
        label = {"label": f"{LABEL}={settings.bridge}"}
        found += [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
        found += [f"network {n.name}" for n in client.networks.list(names=[network_name(settings)])]
        found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
        dangling = client.images.list(filters={"dangling": True, "label": LABEL})
        found += [f"dangling image {i.short_id}" for i in dangling]
    return found


def test_docker_servers_boot_are_confined_and_down_leaves_nothing(env):
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    volumes_before = (
        {v.name for v in dockerd.client().volumes.list()} if dockerd.answers() else set()
    )
    daemon_was_running = dockerd.answers()
    sandbox(env, "up", "2", "--prefix", "lv")
    settings = load_settings(env)
    daemon_pid = dockerd.started_by_us(settings)
    # a daemon the sandbox starts is recorded, so that its last down stops it
    assert daemon_was_running or daemon_pid is not None
    servers = {s["name"]: s for s in json.loads(sandbox(env, "inventory").stdout)["servers"]}
    assert sorted(servers) == ["lv-1", "lv-2"]
    assert {s["engine"] for s in servers.values()} == {"docker"}
    assert all(s["running"] and s["state"] == "running" for s in servers.values())
    keys = [tuple(s["host_keys"]) for s in servers.values()]
    assert len(set(keys)) == 2 and all(len(k) == 3 for k in keys)  # each its own host keys

    first = on_server(env, "lv-1", "systemctl is-system-running; cat /proc/1/comm; sudo -n id -u")
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["running", "systemd", "0"]
    # key-only: sshd refuses passwords
    sshd = on_server(env, "lv-1", "sudo sshd -T | grep -E '^(passwordauthentication|kbdint)'")
    assert sorted(sshd.stdout.split()) == sorted(
        ["passwordauthentication", "no", "kbdinteractiveauthentication", "no"]
    ), sshd.stdout
    # least privilege: no --privileged, no added capability, its own cgroup namespace
    client = dockerd.client()
    attrs = client.containers.get(f"{settings.bridge}-lv-1").attrs["HostConfig"]
    assert attrs["Privileged"] is False and not attrs["CapAdd"]
    assert attrs["CgroupnsMode"] == "private"
    assert set(attrs["Tmpfs"]) == {"/run", "/run/lock", "/tmp"}

    # reach: the other server and the apt proxy, nothing else (no route off the network, the
    # host's other ports refused, ip_forward untouched)
    proxy = f"http://{settings.bridge_ip}:{settings.proxy_port}/"
    checks = (
        f"ping -c1 -W2 {servers['lv-2']['address']} >/dev/null && echo peer; "
        f"curl -s -o /dev/null -m 5 {proxy} && echo proxy; "
        f"curl -s -o /dev/null -m 3 http://{settings.bridge_ip}:22/ || echo host-ssh-refused; "
        "curl -s -o /dev/null -m 3 http://192.0.2.1/ || echo off-machine-unreachable"
    )
    reach = on_server(env, "lv-1", checks)
    assert reach.stdout.split() == [
        "peer", "proxy", "host-ssh-refused", "off-machine-unreachable",
    ], reach.stdout + reach.stderr  # fmt: skip
    # the host forwards nothing from the subnet: ip_forward untouched and off, or (a daemon of
    # one's own turned it on) the sandbox's FORWARD rule rejects the subnet to anywhere else
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    assert forward == forward_before
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True,
                           timeout=30).stdout  # fmt: skip
    rejected = f"-A FORWARD -s {settings.network} ! -d {settings.network}"
    assert forward.strip() == "0" or (rejected in rules and settings.firewall_tag in rules)
    network = dockerd.client().networks.get(network_name(settings)).attrs
    assert network["Internal"] is True
    assert network["Options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"

    # a partial down keeps the rest
    sandbox(env, "down", "lv-2")
    left = {s["name"] for s in json.loads(sandbox(env, "inventory").stdout)["servers"]}
    assert left == {"lv-1"}
    assert on_server(env, "lv-1", "true").returncode == 0

    # a crashed run's leftovers: the state file is gone, down still finds and removes them all
    settings.state_file.unlink()
    sandbox(env, "down")
    assert leftovers(env, daemon_pid, daemon_was_running) == []
    if dockerd.answers():
        assert {v.name for v in dockerd.client().volumes.list()} <= volumes_before
