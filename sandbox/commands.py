"""The bin/sandbox commands."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from sandbox import image, net, procs, proxy, server, ssh
from sandbox.config import Settings
from sandbox.mirror import host_mirrors
from sandbox.release import RELEASES, choose_release, describe, release_of
from sandbox.state import Server, State, Store, allocate_address, exclusive
from sandbox.util import SandboxError, run, say

MAX_PARALLEL_BOOTS = 8
# binary -> Debian package that provides it
REQUIRED_TOOLS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "apt-cacher-ng": "apt-cacher-ng",
    "zstd": "zstd",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
    "chroot": "coreutils",
    "tar": "tar",
    "mount": "mount",
}


def check_tools() -> None:
    path = os.get_exec_path() + ["/usr/sbin", "/sbin"]
    missing = sorted(
        {
            pkg
            for tool, pkg in REQUIRED_TOOLS.items()
            if not any(Path(d, tool).exists() for d in path)
        }
    )
    if missing:
        raise SandboxError(f"missing apt packages: {' '.join(missing)} (run bin/setup)")


def _lock(settings: Settings):
    return exclusive(settings.state_dir / "lock")


def _prepare_state_dir(settings: Settings) -> None:
    for directory in (settings.state_dir, settings.servers_dir, settings.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)


# --- up --------------------------------------------------------------------------------------


def up(
    settings: Settings, count: int, base: str, prefix: str, release: str | None = None
) -> list[Server]:
    """Ensure PREFIX-1..COUNT run. RELEASE: a codename of release.RELEASES; None: the image's,
    else the one PREFIX's servers run, else settings.default_release."""
    check_tools()
    if not 1 <= count <= 200:
        raise SandboxError(f"up: N must be 1..200, not {count}")
    _prepare_state_dir(settings)
    started = time.monotonic()
    with _lock(settings):
        store = Store(settings.state_file)
        state = store.state
        golden = None if base == image.DEFAULT_BASE else image.golden(settings, base)
        release = choose_release(
            release,
            settings.default_release,
            prefix,
            [(s.name, s.release) for s in state.with_prefix(prefix) if server.is_running(s)],
            image_release=golden.release if golden else None,
            image_name=base,
        )
        names, keep, fresh = wanted(state, prefix, count, server.is_running)
        if not fresh:
            return keep
        _clean_leftovers(settings, store, fresh)
        try:
            return _up(settings, store, names, fresh, golden, release, started)
        except BaseException:
            if not any(server.is_running(s) for s in store.state.servers):
                say("no server is running: removing the bridge and proxy again")
                _teardown_host(settings, store.state)
                store.commit()
            raise


def _up(
    settings: Settings,
    store: Store,
    names: list[str],
    fresh: list[str],
    golden: image.Image | None,
    release: str,
    started: float,
) -> list[Server]:
    state = store.state
    public_key = prepare_host(settings, store, net.ensure_bridge)
    img = golden or image.ensure_base(settings, host_mirrors(release=release), release)
    if not any(s.lower == str(img.rootfs) and server.is_running(s) for s in state.servers):
        image.refresh_if_stale(settings, img)
    new = new_entries(
        settings,
        store,
        fresh,
        lambda name, address: server.new_server(settings, name, address, img),
    )
    say(f"booting {len(new)} {describe(img.release)} server(s) from image {img.name}")
    boot_started = time.monotonic()
    errors = _boot_all(settings, store, new, public_key)
    return finish_up(settings, store, names, len(new), errors, started, boot_started)


def prepare_host(
    settings: Settings, store: Store, ensure_network: Callable[[Settings, Path], object]
) -> str:
    """The host side of ``up``, either engine: the sandbox network (``ensure_network``), its
    firewall rules, the apt proxy, the SSH key pair; returns the public key."""
    state = store.state
    host_log = settings.logs_dir / "host.log"
    net.raise_inotify_limit()
    ensure_network(settings, host_log)
    state.bridge = settings.bridge
    state.firewall_rules = net.add_firewall(settings, host_log)
    state.proxy_pid = proxy.ensure(settings, state.proxy_pid)
    store.commit()
    ssh.ensure_keypair(settings)
    return ssh.public_key(settings)


def new_entries(
    settings: Settings, store: Store, fresh: list[str], make: Callable[[str, str], Server]
) -> list[Server]:
    """State entries for the servers to boot, each with a free address (``make`` builds one
    entry from its name and address, per engine)."""
    taken = [s.address for s in store.state.servers]
    new: list[Server] = []
    for name in fresh:
        index = int(name.rpartition("-")[2])
        address = allocate_address(settings.network, settings.bridge_ip, index, taken)
        taken.append(address)
        entry = make(name, address)
        store.update(entry)
        new.append(entry)
    return new


def wanted(
    state: State, prefix: str, count: int, is_running: Callable[[Server], bool]
) -> tuple[list[str], list[Server], list[str]]:
    """The names ``up`` wants, those already running (listed when nothing else is to boot),
    and those to boot, either engine."""
    names = [f"{prefix}-{i}" for i in range(1, count + 1)]
    keep = [s for n in names if (s := state.get(n)) and is_running(s)]
    if keep:
        say(f"already running: {', '.join(s.name for s in keep)}")
    fresh = [n for n in names if n not in {s.name for s in keep}]
    if not fresh:
        print_servers(keep)
    return names, keep, fresh


def finish_up(
    settings: Settings,
    store: Store,
    names: list[str],
    booting: int,
    errors: list[str],
    started: float,
    boot_started: float,
) -> list[Server]:
    """The end of ``up``, either engine: known hosts, the servers listed, how long it took,
    and one error for the servers that did not boot."""
    ssh.write_known_hosts(settings, store.state)
    up_now = [s for n in names if (s := store.state.get(n))]
    print_servers(up_now)
    say(
        f"{booting - len(errors)} booted in {time.monotonic() - boot_started:.1f} s "
        f"(up took {time.monotonic() - started:.1f} s)"
    )
    if errors:
        raise SandboxError(f"{len(errors)} of {booting} failed to boot; first: {errors[0]}")
    return up_now


def _boot_all(settings: Settings, store: Store, new: list[Server], public_key: str) -> list[str]:
    errors: list[str] = []

    def boot_one(entry: Server) -> None:
        try:
            store.update(server.start(settings, entry, public_key))
        except (SandboxError, OSError) as exc:
            errors.append(str(exc))
            say(f"{entry.name}: failed: {exc}")
            entry.state = "failed"
            store.update(entry)

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_BOOTS, len(new))) as pool:
        list(pool.map(boot_one, new))
    failed = [s for s in new if s.state == "failed"]
    if failed:
        server.stop_processes(settings, failed)
        for entry in failed:
            server.remove(settings, entry)
            store.remove(entry.name)
    return errors


def _clean_leftovers(settings: Settings, store: Store, names: list[str]) -> None:
    """Whatever a crashed run left for these names: process, mount, netns, files."""
    stale = [store.state.get(n) or _placeholder(settings, n) for n in names]
    server.stop_processes(settings, stale)
    for entry in stale:
        server.remove(settings, entry)
        if store.state.get(entry.name):
            store.remove(entry.name)


def _placeholder(settings: Settings, name: str) -> Server:
    placeholder = image.Image("?", Path("/nonexistent"), "?")
    return server.new_server(settings, name, "0.0.0.0", placeholder)


def print_servers(servers: list[Server]) -> None:
    """One line per server: name, address, state (what `up` and `inventory` print)."""
    for entry in servers:
        print(f"{entry.name}\t{entry.address}\t{entry.state}", flush=True)


# --- down ------------------------------------------------------------------------------------


def down(settings: Settings, names: list[str]) -> None:
    if not settings.state_dir.exists() and not names:
        _teardown_host(settings, State())
        return
    _prepare_state_dir(settings)
    with _lock(settings):
        store = Store(settings.state_file)
        state = store.state
        if names:
            known = {s.name for s in state.servers} | _dir_names(settings)
            unknown = [n for n in names if n not in known]
            if unknown:
                raise SandboxError(f"no such server: {', '.join(unknown)}")
            targets = [state.get(n) or _placeholder(settings, n) for n in names]
        else:
            prefix = settings.netns_prefix
            orphans = _dir_names(settings) | {
                ns.removeprefix(prefix) for ns in net.list_netns(prefix)
            }
            targets = list(state.servers) + [
                _placeholder(settings, n) for n in sorted(orphans) if not state.get(n)
            ]
        if targets:
            say(f"stopping {', '.join(t.name for t in targets)}")
        server.stop_processes(settings, targets)
        for entry in targets:
            server.remove(settings, entry)
            state.remove(entry.name)
        store.commit()
        if not state.servers:
            _teardown_host(settings, state)
            store.commit()
        ssh.write_known_hosts(settings, state)


def _dir_names(settings: Settings) -> set[str]:
    if not settings.servers_dir.is_dir():
        return set()
    return {p.name for p in settings.servers_dir.iterdir() if p.is_dir()}


def _teardown_host(settings: Settings, state: State) -> None:
    """No server left: stray nspawns, mounts and netns of ours, bridge, proxy, firewall rules."""
    log = settings.logs_dir / "host.log"
    strays = sorted(procs.nspawn_under(settings.servers_dir))
    if strays:
        procs.terminate(strays)
    orphans = sorted(procs.container_inits_under(settings.servers_dir))
    if orphans:
        procs.kill(orphans)
    for point in server.mount_points():
        if point.startswith(str(settings.servers_dir) + "/"):
            server.unmount(point, log)
    for netns in net.list_netns(settings.netns_prefix):
        net.delete_netns(netns, None, log)
    # systemd-nspawn's own runtime dirs, when it left them empty
    for leftover in ("locks", "propagate", ""):
        with contextlib.suppress(OSError):
            (Path("/run/systemd/nspawn") / leftover).rmdir()
    for port in net.bridge_ports(settings):
        net.ip("link", "del", port, log=log, check=False)
    net.remove_bridge(settings, log)
    proxy.stop(settings, state.proxy_pid)
    state.proxy_pid = None
    net.remove_firewall(settings, log)
    state.firewall_rules = []
    state.bridge = None


# --- status, ssh, inventory ------------------------------------------------------------------


def status(settings: Settings) -> list[str]:
    state = Store(settings.state_file).state
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda s: ssh.sshd_answers(s.address), state.servers))
    rows = [("NAME", "ADDRESS", "STATE", "SSH", "RELEASE", "BASE")] if state.servers else []
    for entry, answer in zip(state.servers, answers, strict=True):
        running = "running" if server.is_running(entry) else "dead"
        if entry.state != "running":
            running = entry.state
        release = f"{entry.release} ({RELEASES.get(entry.release, '?')})"
        answered = "yes" if answer else "no"
        rows.append((entry.name, entry.address, running, answered, release, entry.base))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines = lines or ["no servers (bin/sandbox up N boots some)"]
    proxy_pid = proxy.find_ours(settings, state.proxy_pid)
    bridge = "up" if net.link_exists(settings.bridge) else "absent"
    lines.append(
        f"bridge {settings.bridge} {settings.bridge_ip}/{settings.network.prefixlen}: {bridge}; "
        f"apt proxy: {f'pid {proxy_pid}' if proxy_pid else 'stopped'}; "
        f"images: {', '.join([image.DEFAULT_BASE, *image.list_golden(settings)])}; "
        f"default release: {settings.default_release}"
    )
    return lines


def find(settings: Settings, name: str) -> Server:
    entry = Store(settings.state_file).state.get(name)
    if entry is None:
        raise SandboxError(f"no server {name!r} (bin/sandbox status lists them)")
    return entry


def ssh_exec(settings: Settings, name: str, command: list[str]) -> None:
    ssh.require_ssh_client()
    entry = find(settings, name)
    argv = ssh.ssh_argv(entry, command)
    os.execvp(argv[0], argv)


def inventory(settings: Settings) -> str:
    state = Store(settings.state_file).state
    data = state.to_dict()
    data["servers"] = [{**asdict(s), "running": server.is_running(s)} for s in state.servers]
    return json.dumps(data, indent=2)


# --- images ----------------------------------------------------------------------------------


def save(settings: Settings, name: str, golden: str, force: bool) -> Path:
    image.check_name(golden)
    with _lock(settings):
        state = Store(settings.state_file).state
        entry = state.get(name)
        if entry is None or not server.mounted(entry.root):
            raise SandboxError(f"no server {name!r} with its root mounted: bin/sandbox up first")
        target = image.golden_dir(settings, golden)
        users = [s.name for s in state.servers if Path(s.lower).parent == target]
        if users:
            raise SandboxError(f"image {golden!r} is in use by {', '.join(users)}")
        if target.exists() and not force:
            raise SandboxError(f"image {golden!r} exists (--force replaces it)")
        say(f"saving {name}'s root filesystem as image {golden}")
        started = time.monotonic()
        meta = {
            "name": golden,
            "from_server": name,
            "from_image": entry.base,
            "release": entry.release,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        home = image.save_golden(settings, Path(entry.root), golden, meta)
        size = run(["du", "-sh", str(home)], timeout=300).stdout.split()[0]
        say(f"saved in {time.monotonic() - started:.1f} s ({size})")
        return home


def remove_image(settings: Settings, golden: str) -> None:
    with _lock(settings):
        state = Store(settings.state_file).state
        target = image.golden_dir(settings, golden)
        users = [s.name for s in state.servers if Path(s.lower).parent == target]
        if users:
            raise SandboxError(f"image {golden!r} is in use by {', '.join(users)}")
        image.remove_golden(settings, golden)


def images(settings: Settings) -> list[str]:
    lines = []
    bases = settings.cache_dir / "bases"
    if bases.is_dir():
        for home in sorted(p for p in bases.iterdir() if (p / ".ready").exists()):
            release = release_of(home / "rootfs") or "?"
            lines.append(f"{image.DEFAULT_BASE} ({home.name})\t{release}\t{home / 'rootfs'}")
    for name in image.list_golden(settings):
        rootfs = image.golden_dir(settings, name) / "rootfs"
        lines.append(f"{name}\t{release_of(rootfs) or '?'}\t{rootfs}")
    return lines
