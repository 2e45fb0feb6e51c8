"""bin/sandbox: settings, recipe key, addresses, state file, known_hosts, firewall rules."""

import ipaddress
import json

import pytest

from sandbox import image, net, ssh
from sandbox.config import ConfigError, load_settings, parse_subnet
from sandbox.mirror import Mirrors
from sandbox.state import Server, State, Store, allocate_address, load, save
from sandbox.util import SandboxError, in_root

MIRRORS = Mirrors("http://m.test/debian", "http://m.test/debian", "http://s.test/debian-security")
NET = ipaddress.IPv4Network("10.213.0.0/24")
BRIDGE_IP = ipaddress.IPv4Address("10.213.0.1")


def make_server(name="w2p-1", address="10.213.0.11", **extra):
    fields = dict(
        name=name, address=address, netns=f"w2pbr0-{name}", veth="v0123456789",
        base="default", lower="/cache/bases/k/rootfs", root=f"/s/servers/{name}/root",
        ssh_user="deploy", ssh_key="/s/id_ed25519", known_hosts="/s/known_hosts",
        log=f"/s/logs/{name}.console.log",
    )  # fmt: skip
    fields.update(extra)
    return Server(**fields)


def test_settings_defaults_and_overrides(tmp_path):
    s = load_settings({})
    assert (s.bridge, str(s.bridge_ip), str(s.network), s.proxy_port) == (
        "w2pbr0", "10.213.0.1", "10.213.0.0/24", 3142,
    )  # fmt: skip
    assert s.cache_dir.as_posix() == "/var/cache/pyinfra-web2py-sandbox"
    assert s.state_dir.name == ".sandbox"
    s = load_settings(
        {"W2P_SANDBOX_DIR": str(tmp_path), "W2P_SANDBOX_CACHE": str(tmp_path / "c"),
         "W2P_SANDBOX_BRIDGE": "tbr1", "W2P_SANDBOX_SUBNET": "10.99.0.0/24",
         "W2P_SANDBOX_PROXY_PORT": "3150"}
    )  # fmt: skip
    assert s.state_dir == tmp_path and s.cache_dir == tmp_path / "c"
    assert (s.bridge, str(s.bridge_ip), s.proxy_url) == (
        "tbr1",
        "10.99.0.1",
        "http://10.99.0.1:3150",
    )
    assert s.netns_prefix == "tbr1-"


@pytest.mark.parametrize(
    "env",
    [{"W2P_SANDBOX_BRIDGE": "much-too-long-name"}, {"W2P_SANDBOX_SUBNET": "nope"},
     {"W2P_SANDBOX_SUBNET": "10.0.0.1/30"}, {"W2P_SANDBOX_PROXY_PORT": "99999"}],
)  # fmt: skip
def test_settings_rejects_bad_values(env):
    with pytest.raises(ConfigError):
        load_settings(env)


def test_parse_subnet_keeps_a_given_host_address():
    assert parse_subnet("10.5.0.7/24") == (
        ipaddress.IPv4Address("10.5.0.7"),
        ipaddress.IPv4Network("10.5.0.0/24"),
    )


def test_recipe_key_is_stable_and_follows_the_recipe():
    a = image.recipe(MIRRORS, {"Acquire::Check-Valid-Until": "false"})
    b = image.recipe(MIRRORS, {"Acquire::Check-Valid-Until": "false"})
    assert image.recipe_key(a) == image.recipe_key(b)
    assert len(image.recipe_key(a)) == 16
    # packages listed in another order: same key
    shuffled = dict(a, packages=list(reversed(a["packages"])))
    assert image.recipe_key(dict(shuffled, packages=sorted(shuffled["packages"]))) == (
        image.recipe_key(a)
    )
    other_mirror = image.recipe(Mirrors("http://x.test/debian", None, None), {})
    assert image.recipe_key(other_mirror) != image.recipe_key(a)
    assert image.recipe_key(dict(a, version=a["version"] + 1)) != image.recipe_key(a)
    assert image.recipe_key(image.recipe(MIRRORS, {})) != image.recipe_key(a)
    # fixed recipe -> fixed key (changing the recipe must be a deliberate RECIPE_VERSION bump)
    fixed = {"suite": "bookworm", "packages": ["a", "b"], "version": 1}
    assert image.recipe_key(fixed) == image.recipe_key(json.loads(json.dumps(fixed)))


def test_recipe_names_the_packages_deploys_need():
    data = image.recipe(MIRRORS, {})
    for package in ("systemd-sysv", "dbus", "openssh-server", "sudo", "python3", "curl"):
        assert package in data["packages"]
    assert data["mirrors"]["main"] == "http://m.test/debian"


def test_address_allocation():
    assert allocate_address(NET, BRIDGE_IP, 1, []) == "10.213.0.11"
    assert allocate_address(NET, BRIDGE_IP, 20, []) == "10.213.0.30"
    # preferred taken (another prefix's server): lowest free from .11
    assert allocate_address(NET, BRIDGE_IP, 1, ["10.213.0.11", "10.213.0.12"]) == "10.213.0.13"
    assert allocate_address(NET, BRIDGE_IP, 2, ["10.213.0.11"]) == "10.213.0.12"
    # index past the end of the network
    assert allocate_address(NET, BRIDGE_IP, 300, []) == "10.213.0.11"
    small = ipaddress.IPv4Network("10.1.0.0/26")
    taken = [str(small.network_address + i) for i in range(11, 63)]
    with pytest.raises(SandboxError, match="no free address"):
        allocate_address(small, small.network_address + 1, 1, taken)


def test_state_round_trip(tmp_path):
    path = tmp_path / "state.json"
    assert load(path).servers == []
    state = State(
        servers=[make_server("w2p-10", "10.213.0.20"), make_server(pid=42, host_keys=["k a"])],
        proxy_pid=7,
        firewall_rules=[["INPUT", "-j", "ACCEPT"]],
        bridge="w2pbr0",
    )
    save(path, state)
    again = load(path)
    assert again == State.from_dict(json.loads(path.read_text()))
    assert [s.name for s in again.servers] == ["w2p-1", "w2p-10"]  # numeric order
    assert again.get("w2p-1").pid == 42 and again.get("w2p-1").host_keys == ["k a"]
    assert again.proxy_pid == 7 and again.firewall_rules == [["INPUT", "-j", "ACCEPT"]]
    data = json.loads(path.read_text())
    entry = data["servers"][0]
    for key in ("name", "address", "netns", "pid", "base", "ssh_user", "ssh_key", "known_hosts"):
        assert key in entry


def test_state_ignores_unknown_fields_and_rejects_garbage(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"servers": [dict(vars(make_server()), future="x")]}))
    assert load(path).servers[0].name == "w2p-1"
    path.write_text("{not json")
    with pytest.raises(SandboxError, match="unreadable state"):
        load(path)


def test_store_saves_every_change(tmp_path):
    store = Store(tmp_path / "state.json")
    store.update(make_server())
    store.update(make_server("w2p-2", "10.213.0.12"))
    assert [s.name for s in load(tmp_path / "state.json").servers] == ["w2p-1", "w2p-2"]
    store.remove("w2p-1")
    assert [s.name for s in load(tmp_path / "state.json").servers] == ["w2p-2"]


def test_known_hosts_lists_keys_by_address():
    state = State(servers=[make_server(host_keys=["ssh-ed25519 AAAA", "ssh-rsa BBBB"])])
    assert ssh.known_hosts_text(state) == (
        "10.213.0.11 ssh-ed25519 AAAA\n10.213.0.11 ssh-rsa BBBB\n"
    )


def test_ssh_argv_is_strict():
    argv = ssh.ssh_argv(make_server(), ["sudo", "true"])
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/s/known_hosts" in argv
    assert argv[-3:] == ["deploy@10.213.0.11", "sudo", "true"]


def test_firewall_rules_are_tagged_and_end_in_reject(monkeypatch):
    settings = load_settings({})
    monkeypatch.setattr(net, "read_sysctl", lambda key: "1")
    rules = net.firewall_rules(settings)
    assert all(settings.firewall_tag in rule for rule in rules)
    inputs = [r for r in rules if r[0] == "INPUT"]
    assert inputs[-1][-2:] == ["-j", "REJECT"]
    assert any(r[0] == "FORWARD" and r[-1] == "REJECT" and "!" in r for r in rules)
    monkeypatch.setattr(net, "read_sysctl", lambda key: "0")
    assert not [r for r in net.firewall_rules(settings) if r[0] == "FORWARD"]


def test_names_of_links_fit_the_kernel_limit():
    settings = load_settings({"W2P_SANDBOX_BRIDGE": "abcdefghijk"})
    assert len(net.veth_name(settings, "prefix12345-200")) <= 15
    assert net.veth_name(settings, "w2p-1") != net.veth_name(settings, "w2p-2")


def test_in_root_refuses_symlinks_out(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "home").symlink_to("/")
    assert in_root(root, "/etc/hostname") == root / "etc/hostname"
    with pytest.raises(SandboxError, match="leads out"):
        in_root(root, "home/deploy/.ssh/authorized_keys")
