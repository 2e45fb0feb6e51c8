"""The engine switch and the Docker engine's pure parts (no daemon needed)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from sandbox import cli
from sandbox.config import ConfigError, load_settings
from sandbox.docker_engine import (
    TMPFS,
    cgroup_mounts,
    cgroup_parent,
    container_name,
    identity_tar,
    network_name,
    new_server,
)
from sandbox.engine import choose, parse_engine
from sandbox.state import Server, State
from sandbox.util import SandboxError

ENV = {"W2P_SANDBOX_BRIDGE": "tbr1", "W2P_SANDBOX_SUBNET": "10.99.0.1/24"}


def server(name: str, engine: str) -> Server:
    return Server(name, "10.99.0.11", "", "", "default", "", "", "deploy", "", "", "",
                  engine=engine)  # fmt: skip


def test_the_engine_comes_from_the_flag_or_the_environment_or_the_state():
    assert choose(None, []) == "nspawn"
    assert choose("docker", []) == "docker"
    assert choose(None, [server("d-1", "docker")]) == "docker"
    assert choose("docker", [server("d-1", "docker")]) == "docker"


def test_one_state_dir_is_one_engine_at_a_time():
    with pytest.raises(SandboxError, match=r"runs nspawn servers \(w2p-1\), not docker"):
        choose("docker", [server("w2p-1", "nspawn")])
    with pytest.raises(SandboxError, match="--engine docker down first"):
        choose("nspawn", [server("d-1", "docker")])


@pytest.mark.parametrize("text", ["podman", "", "nspawn2"])
def test_an_unknown_engine_is_refused_in_one_line(text):
    with pytest.raises(SandboxError, match="choose nspawn or docker"):
        parse_engine(text)
    with pytest.raises(ConfigError, match="^W2P_SANDBOX_ENGINE: "):
        load_settings({**ENV, "W2P_SANDBOX_ENGINE": text or "x"})


def test_the_environment_variable_is_read():
    assert load_settings({**ENV, "W2P_SANDBOX_ENGINE": "Docker"}).engine == "docker"
    assert load_settings(ENV).engine is None


def test_the_flag_is_parsed_before_the_command():
    args = cli.parser().parse_args(["--engine", "docker", "up", "2"])
    assert (args.engine, args.command, args.count) == ("docker", "up", 2)


def test_entries_written_before_engines_read_as_nspawn():
    data = State(servers=[server("w2p-1", "nspawn")]).to_dict()
    del data["servers"][0]["engine"]
    assert State.from_dict(data).servers[0].engine == "nspawn"


def test_names_are_scoped_by_the_sandbox_bridge():
    settings = load_settings(ENV)
    assert network_name(settings) == "w2p-sandbox-tbr1"
    assert container_name(settings, "w2p-1") == "tbr1-w2p-1"
    assert cgroup_parent(settings, "w2p-1") == "/w2p-sandbox/tbr1/w2p-1"
    entry = new_server(settings, "w2p-1", "10.99.0.11", "default", "w2p-sandbox:x", "bookworm")
    assert (entry.engine, entry.root, entry.lower, entry.netns) == (
        "docker", "tbr1-w2p-1", "w2p-sandbox:x", ""
    )  # fmt: skip


def test_systemd_gets_tmpfs_on_run_run_lock_and_tmp_only():
    assert set(TMPFS) == {"/run", "/run/lock", "/tmp"}


HYBRID = """\
25 1 0:23 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory
29 1 0:26 /docker/abc /mnt/sub rw,nosuid shared:13 - cgroup cgroup rw,memory
"""
UNIFIED = "25 1 0:23 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_cgroup_mounts_of_a_hybrid_and_a_unified_host():
    assert cgroup_mounts(HYBRID) == (
        Path("/sys/fs/cgroup/unified"),
        [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/memory")],
    )
    assert cgroup_mounts(UNIFIED) == (Path("/sys/fs/cgroup"), [])
    assert cgroup_mounts("") == (None, [])


def test_identity_files_have_the_owners_and_modes_sshd_and_apt_need():
    settings = load_settings({**ENV, "W2P_SANDBOX_PROXY_PORT": "3999"})
    keys = {"ssh_host_ed25519_key": b"PRIVATE", "ssh_host_ed25519_key.pub": b"ssh-ed25519 AAA"}
    blob = identity_tar(settings, "w2p-1", "ssh-ed25519 KEY w2p", keys)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        read = {n: tar.extractfile(m).read() for n, m in members.items() if m.isfile()}
    mode = {n: (m.mode, m.uid, m.gid) for n, m in members.items()}
    assert mode["etc/ssh/ssh_host_ed25519_key"] == (0o600, 0, 0)
    assert mode["etc/ssh/ssh_host_ed25519_key.pub"] == (0o644, 0, 0)
    assert mode["home/deploy/.ssh"] == (0o700, 1000, 1000)
    assert mode["home/deploy/.ssh/authorized_keys"] == (0o600, 1000, 1000)
    assert read["home/deploy/.ssh/authorized_keys"] == b"ssh-ed25519 KEY w2p\n"
    assert b'Proxy "http://10.99.0.1:3999"' in read["etc/apt/apt.conf.d/90sandbox-proxy"]
    assert len(read["etc/machine-id"].strip()) == 32
    other = identity_tar(settings, "w2p-2", "k", keys)
    with tarfile.open(fileobj=io.BytesIO(other)) as tar:
        assert tar.extractfile("etc/machine-id").read() != read["etc/machine-id"]
