"""The Docker engine: the sandbox's servers as containers of a local Docker daemon.

The same servers as the nspawn engine (sandbox/commands.py), in the same state file:
systemd as PID 1 in a pure cgroup v2 hierarchy of its own, sshd with host keys made for each
server, the deploy user (key only, sudo), an address of its own on a dedicated Docker network
(internal, no NAT) whose bridge is the sandbox's bridge, apt through the sandbox's
apt-cacher-ng. Images are imported from the nspawn engine's cached base root filesystem (no
registry), saved images are commits. Everything goes through the docker SDK, nothing parses
CLI output.

Privilege: no --privileged, no added capability. What systemd needs beyond Docker's defaults:
a cgroup namespace of its own (``cgroupns=private``), tmpfs on /run, /run/lock and /tmp, its own
cgroup writable: the server's cgroup v2 directory, which Docker only names at create time
(``<parent>/<container id>``), is made before start and bind-mounted on the host onto
``servers/NAME/cgroup``, which the container mounts at /sys/fs/cgroup. The container sees its
own subtree and nothing above it (the namespace's root is that directory).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox import cgroups, dockerd, image, net, proxy, ssh
from sandbox.commands import finish_up, new_entries, prepare_host, wanted
from sandbox.config import SSH_USER, Settings
from sandbox.image import DEFAULT_BASE, apt_proxy_conf
from sandbox.mirror import host_mirrors
from sandbox.release import RELEASES, choose_release, describe
from sandbox.state import Server, State, Store, exclusive
from sandbox.util import SandboxError, run, say, tail, wait_until

if TYPE_CHECKING:
    import docker

IMAGE_REPO = "w2p-sandbox"
LABEL = "w2p-sandbox.bridge"  # on containers, the network and imported images
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 20  # systemd's poweroff (SIGRTMIN+3), then SIGKILL
MAX_PARALLEL_BOOTS = 8
HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519")  # what `ssh-keygen -A` makes on Debian
DEPLOY_UID = DEPLOY_GID = 1000  # image.py: useradd -u 1000 -U deploy
REQUIRED_TOOLS = {
    "apt-cacher-ng": "apt-cacher-ng",
    "debootstrap": "debootstrap",
    "ssh-keygen": "openssh-client",
    "tar": "tar",
    "mount": "mount",
    "start-stop-daemon": "dpkg",
}
# The flags that make systemd run as PID 1 (see the module docstring; README says why).
# /tmp as well, as systemd-nspawn does: trixie's systemd mounts a tmpfs there itself (tmp.mount),
# which needs CAP_SYS_ADMIN; an existing mount satisfies the unit.
TMPFS = {
    "/run": "rw,nosuid,nodev,mode=755",
    "/run/lock": "rw,nosuid,nodev,noexec,mode=1777",
    "/tmp": "rw,nosuid,nodev,mode=1777",
}


def network_name(settings: Settings) -> str:
    return f"w2p-sandbox-{settings.bridge}"


def container_name(settings: Settings, name: str) -> str:
    return f"{settings.bridge}-{name}"


def cgroup_parent(settings: Settings, name: str) -> str:
    """Docker's cgroupfs driver puts the container at <this>/<id> in every hierarchy."""
    return f"/{cgroups.PARENT}/{settings.bridge}/{name}"


def server_dir(settings: Settings, name: str) -> Path:
    return settings.servers_dir / name


def setup_log(settings: Settings, name: str) -> Path:
    return settings.logs_dir / f"{name}.setup.log"


def _labels(settings: Settings, name: str | None = None) -> dict[str, str]:
    labels = {LABEL: settings.bridge, "w2p-sandbox.state": str(settings.state_dir)}
    if name:
        labels["w2p-sandbox.server"] = name
    return labels


# --- host checks ---------------------------------------------------------------------------


def check_tools() -> None:
    path = os.get_exec_path() + ["/usr/sbin", "/sbin"]
    missing = sorted(
        {p for tool, p in REQUIRED_TOOLS.items() if not any(Path(d, tool).exists() for d in path)}
    )
    if missing:
        raise SandboxError(f"missing apt packages: {' '.join(missing)} (run bin/setup)")


def cgroup_mounts(mountinfo: str) -> tuple[Path | None, list[Path]]:
    """(the cgroup v2 mount point, the v1 hierarchies' mount points) of the host, from the
    text of /proc/self/mountinfo; only mounts of a hierarchy's root count."""
    v2: Path | None = None
    v1: list[Path] = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, fstype = before.split(), after.split()[0] if after else ""
        if len(fields) < 5 or fields[3] != "/":
            continue
        point = Path(fields[4].encode().decode("unicode_escape"))
        if fstype == "cgroup2" and v2 is None:
            v2 = point
        elif fstype == "cgroup":
            v1.append(point)
    return v2, v1


def _host_cgroups() -> tuple[Path, list[Path]]:
    v2, v1 = cgroup_mounts(Path("/proc/self/mountinfo").read_text())
    if v2 is None:
        raise SandboxError(
            "the Docker engine needs a cgroup v2 hierarchy on the host (unified or hybrid "
            "mode); this host has cgroup v1 only: use the nspawn engine"
        )
    return v2, v1


def check_daemon(client: docker.DockerClient) -> None:
    info = client.info()
    if info.get("CgroupDriver") != "cgroupfs":
        raise SandboxError(
            f"dockerd uses the {info.get('CgroupDriver')} cgroup driver; the sandbox's Docker "
            'engine needs cgroupfs ("exec-opts": ["native.cgroupdriver=cgroupfs"] in '
            "/etc/docker/daemon.json)"
        )


# --- network -------------------------------------------------------------------------------


def ensure_network(client: docker.DockerClient, settings: Settings, log: Path) -> None:
    """The sandbox's Docker network: internal (no NAT; Docker's own isolation rules when it
    manages iptables), its bridge named and addressed as the nspawn
    engine's would be, so the proxy and net.py's firewall rules work unchanged."""
    from docker.types import IPAMConfig, IPAMPool

    name = network_name(settings)
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    if found:
        attrs = found[0].attrs
        configs = (attrs.get("IPAM") or {}).get("Config") or []
        subnet = configs[0].get("Subnet") if configs else None
        bridge = (attrs.get("Options") or {}).get("com.docker.network.bridge.name")
        if subnet == str(settings.network) and bridge == settings.bridge and attrs.get("Internal"):
            return
        raise SandboxError(
            f"Docker network {name} exists with other settings ({subnet}, bridge {bridge}): "
            f"bin/sandbox --engine docker down removes it"
        )
    if net.link_exists(settings.bridge):
        raise SandboxError(
            f"interface {settings.bridge} exists (another sandbox's bridge?): "
            "set W2P_SANDBOX_BRIDGE to another name"
        )
    net._check_subnet_free(settings)
    say(f"creating Docker network {name} (internal, bridge {settings.bridge}, {settings.network})")
    client.networks.create(
        name,
        driver="bridge",
        internal=True,
        ipam=IPAMConfig(
            pool_configs=[IPAMPool(subnet=str(settings.network), gateway=str(settings.bridge_ip))]
        ),
        options={
            "com.docker.network.bridge.name": settings.bridge,
            "com.docker.network.bridge.enable_ip_masquerade": "false",
        },
        labels=_labels(settings),
        check_duplicate=True,
    )
    # no IPv6 on the host side (as the nspawn engine): servers reach the host only by IPv4,
    # where net.py's rules hold
    net._no_ipv6(settings.bridge)
    with log.open("a") as out:
        out.write(f"created Docker network {name}\n")


def remove_network(client: docker.DockerClient, settings: Settings) -> None:
    for network in client.networks.list(names=[network_name(settings)]):
        if network.name == network_name(settings):
            say(f"removing Docker network {network.name} (bridge {settings.bridge})")
            network.remove()


# --- images --------------------------------------------------------------------------------


def base_tag(img: image.Image) -> str:
    return f"{IMAGE_REPO}:base-{img.release}-{img.rootfs.parent.name}"


def golden_tag(name: str) -> str:
    return f"{IMAGE_REPO}:golden-{name}"


def ensure_imported(client: docker.DockerClient, settings: Settings, img: image.Image) -> str:
    """The base root filesystem as a Docker image (imported once; no registry is asked)."""
    import docker

    tag = base_tag(img)
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    # sandboxes on one machine share the daemon's images: one imports, the others wait
    with exclusive(img.rootfs.parent.parent / f"{img.rootfs.parent.name}.docker.lock", 900):
        try:
            client.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
        _import(client, settings, img, tag)
    return tag


def _import(client: docker.DockerClient, settings: Settings, img: image.Image, tag: str) -> None:
    say(f"importing {img.rootfs} as Docker image {tag}")
    started = time.monotonic()
    log = settings.logs_dir / "docker-import.log"
    with log.open("a") as err:
        pack = subprocess.Popen(
            ["tar", "-C", str(img.rootfs), "-cpf", "-", *image.TAR_FLAGS, "."],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            repository, _, version = tag.partition(":")
            client.api.import_image(
                src=pack.stdout,
                repository=repository,
                tag=version,
                changes=[
                    f'LABEL {LABEL}="" w2p-sandbox.release="{img.release}"',
                    'CMD ["/sbin/init"]',
                ],
                stream_src=True,
            )
        finally:
            if pack.stdout:
                pack.stdout.close()
            rc = pack.wait(timeout=600)
    if rc != 0:
        raise SandboxError(f"tar of {img.rootfs} failed (log: {log})")
    client.images.get(tag)
    say(f"imported in {time.monotonic() - started:.1f} s")


def golden_release(client: docker.DockerClient, name: str) -> str:
    import docker

    image.check_name(name)
    try:
        found = client.images.get(golden_tag(name))
    except docker.errors.ImageNotFound:
        raise SandboxError(
            f"no image {name!r} (saved: {', '.join(list_golden(client)) or 'none'}; "
            "make one with bin/sandbox --engine docker save SERVER NAME)"
        ) from None
    release = (found.labels or {}).get("w2p-sandbox.release", "")
    if release not in RELEASES:
        raise SandboxError(f"image {name!r} is not a Debian release the sandbox knows")
    return release


def list_golden(client: docker.DockerClient) -> list[str]:
    prefix = f"{IMAGE_REPO}:golden-"
    tags = [t for i in client.images.list(name=IMAGE_REPO) for t in i.tags]
    return sorted(t.removeprefix(prefix) for t in tags if t.startswith(prefix))


# --- one server ----------------------------------------------------------------------------


def _host_keys(directory: Path, name: str, log: Path) -> dict[str, bytes]:
    """Fresh host keys, as `ssh-keygen -A` makes them: {file name: content}."""
    files: dict[str, bytes] = {}
    for kind in HOST_KEY_TYPES:
        key = directory / f"ssh_host_{kind}_key"
        run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{name}", "-f", key], log=log)
        files[key.name] = key.read_bytes()
        files[key.name + ".pub"] = key.with_suffix(".pub").read_bytes()
    return files


def identity_tar(settings: Settings, name: str, public_key: str, keys: dict[str, bytes]) -> bytes:
    """machine-id, host keys, authorized_keys and the apt proxy line, as a tar for put_archive."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:

        def add(path: str, data: bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, gid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))

        def add_dir(path: str, mode: int, uid: int = 0, gid: int = 0) -> None:
            info = tarfile.TarInfo(path)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, gid
            info.mtime = int(time.time())
            tar.addfile(info)

        add("etc/machine-id", (uuid.uuid4().hex + "\n").encode(), 0o444)
        for file_name, data in sorted(keys.items()):
            add(f"etc/ssh/{file_name}", data, 0o644 if file_name.endswith(".pub") else 0o600)
        home = f"home/{SSH_USER}"
        add_dir(f"{home}/.ssh", 0o700, DEPLOY_UID, DEPLOY_GID)
        add(f"{home}/.ssh/authorized_keys", (public_key + "\n").encode(), 0o600,
            DEPLOY_UID, DEPLOY_GID)  # fmt: skip
        add("etc/apt/apt.conf.d/90sandbox-proxy", apt_proxy_conf(settings.proxy_url).encode(),
            0o644)  # fmt: skip
    return out.getvalue()


def new_server(
    settings: Settings, name: str, address: str, base: str, ref: str, release: str
) -> Server:
    """The state entry of a container server (root: the container's name; lower: its image)."""
    return Server(
        name=name,
        address=address,
        netns="",
        veth="",
        base=base,
        lower=ref,
        root=container_name(settings, name),
        ssh_user=SSH_USER,
        ssh_key=str(settings.ssh_key),
        known_hosts=str(settings.known_hosts),
        log=str(settings.logs_dir / f"{name}.console.log"),
        release=release,
        engine="docker",
    )


def start(client: docker.DockerClient, settings: Settings, entry: Server, public_key: str) -> None:
    """Create, give identity and its cgroup, start; returns once sshd answers."""
    log = setup_log(settings, entry.name)
    log.write_text("")
    home = server_dir(settings, entry.name)
    stage = home / "cgroup"
    stage.mkdir(parents=True, exist_ok=True)
    resolv = home / "resolv.conf"
    resolv.write_text("")  # no DNS, as on the nspawn engine's servers
    api = client.api
    host_config = api.create_host_config(
        cgroupns="private",
        cgroup_parent=cgroup_parent(settings, entry.name),
        tmpfs=TMPFS,
        binds={
            str(stage): {"bind": "/sys/fs/cgroup", "mode": "rw"},
            str(resolv): {"bind": "/etc/resolv.conf", "mode": "ro"},
        },
        network_mode=network_name(settings),
    )
    networking = api.create_networking_config(
        {network_name(settings): api.create_endpoint_config(ipv4_address=entry.address)}
    )
    created = api.create_container(
        entry.lower,
        command=["/sbin/init"],
        name=entry.root,
        hostname=entry.name,
        environment={"container": "docker"},
        stop_signal="SIGRTMIN+3",
        labels=_labels(settings, entry.name),
        host_config=host_config,
        networking_config=networking,
        detach=True,
    )
    container_id = created["Id"]
    (home / "container.id").write_text(container_id + "\n")
    v2, _ = _host_cgroups()
    own = v2 / cgroup_parent(settings, entry.name).strip("/") / container_id
    own.mkdir(parents=True, exist_ok=True)
    run(["mount", "--bind", own, stage], log=log, timeout=60)
    with tempfile.TemporaryDirectory(prefix="w2p-keys-") as tmp:
        keys = _host_keys(Path(tmp), entry.name, log)
    api.put_archive(container_id, "/", identity_tar(settings, entry.name, public_key, keys))
    pubs = [data for file_name, data in sorted(keys.items()) if file_name.endswith(".pub")]
    entry.host_keys = [" ".join(data.decode().split()[:2]) for data in pubs]
    api.start(container_id)
    entry.pid = api.inspect_container(container_id)["State"]["Pid"] or None
    wait_ready(client, entry)
    entry.state = "running"


def _container_state(client: docker.DockerClient, entry: Server) -> str:
    import docker

    try:
        return client.api.inspect_container(entry.root)["State"]["Status"]
    except docker.errors.NotFound:
        return "absent"


def wait_ready(client: docker.DockerClient, entry: Server, timeout: float = BOOT_TIMEOUT) -> None:
    ready = wait_until(
        lambda: (
            _container_state(client, entry) != "running"
            or ssh.sshd_answers(entry.address, timeout=1)
        ),
        timeout=timeout,
        interval=0.3,
    )
    state = _container_state(client, entry)
    if state != "running":
        Path(entry.log).write_bytes(client.api.logs(entry.root) if state != "absent" else b"")
        raise SandboxError(
            f"{entry.name}: container {state}: {tail(Path(entry.log), 1)!r} (log: {entry.log})"
        )
    if not ready:
        raise SandboxError(f"{entry.name}: sshd not up after {timeout:.0f} s")


def remove(client: docker.DockerClient | None, settings: Settings, name: str) -> None:
    """Stop (systemd powers off) and remove the container, unmount and remove its cgroup
    directories (every hierarchy Docker made them in) and its files."""
    import docker

    cname = container_name(settings, name)
    log = setup_log(settings, name)
    if client is not None:
        try:
            container = client.containers.get(cname)
        except docker.errors.NotFound:
            container = None
        if container is not None:
            if (container.labels or {}).get(LABEL) != settings.bridge:
                raise SandboxError(f"container {cname} is not this sandbox's: left alone")
            if container.status == "running":
                container.stop(timeout=STOP_TIMEOUT)
            container.remove(v=True, force=True)
    home = server_dir(settings, name)
    stage = home / "cgroup"
    for _ in range(10):
        if str(stage) not in _mount_points():
            break
        run(["umount", stage], log=log, timeout=60, check=False)
    v2, v1 = _host_cgroups()
    busy = cgroups.remove([point / cgroup_parent(settings, name).strip("/") for point in (v2, *v1)])
    if busy:
        with log.open("a") as out:
            out.write(f"cgroups still in use, left: {busy}\n")
    if home.exists() and str(stage) not in _mount_points():
        shutil.rmtree(home)


def _mount_points() -> set[str]:
    return {
        line.split()[4].encode().decode("unicode_escape")
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    }


def ours(client: docker.DockerClient, settings: Settings) -> dict[str, Any]:
    """This sandbox's containers: {server name: container}."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL}={settings.bridge}"})
    return {
        (c.labels or {}).get("w2p-sandbox.server", c.name): c
        for c in found
        if (c.labels or {}).get("w2p-sandbox.state") == str(settings.state_dir)
    }


def is_running(client: docker.DockerClient | None, entry: Server) -> bool:
    return client is not None and _container_state(client, entry) == "running"


# --- the engine ----------------------------------------------------------------------------


class DockerEngine:
    """bin/sandbox on a Docker daemon (see the module docstring)."""

    name = "docker"

    def _lock(self, settings: Settings):
        return exclusive(settings.state_dir / "lock")

    def _prepare(self, settings: Settings) -> None:
        for directory in (settings.state_dir, settings.servers_dir, settings.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def up(
        self, settings: Settings, count: int, base: str, prefix: str, release: str | None
    ) -> list[Server]:
        """Ensure PREFIX-1..COUNT run as containers."""
        check_tools()
        if not 1 <= count <= 200:
            raise SandboxError(f"up: N must be 1..200, not {count}")
        self._prepare(settings)
        _host_cgroups()
        started = time.monotonic()
        client = dockerd.ensure(settings)
        check_daemon(client)
        with self._lock(settings):
            store = Store(settings.state_file)
            state = store.state
            golden = None if base == DEFAULT_BASE else golden_release(client, base)
            release = choose_release(
                release,
                settings.default_release,
                prefix,
                [(s.name, s.release) for s in state.with_prefix(prefix) if is_running(client, s)],
                image_release=golden,
                image_name=base,
            )
            names, keep, fresh = wanted(state, prefix, count, lambda s: is_running(client, s))
            if not fresh:
                return keep
            for name in fresh:  # what a crashed run left for these names
                remove(client, settings, name)
                if store.state.get(name):
                    store.remove(name)
            try:
                return self._up(client, settings, store, names, fresh, base, release, started)
            except BaseException:
                if not any(is_running(client, s) for s in store.state.servers):
                    say("no server is running: removing the network and proxy again")
                    self._teardown_host(client, settings, store.state)
                    store.commit()
                raise

    def _up(self, client, settings, store, names, fresh, base, release, started):
        public_key = prepare_host(
            settings, store, lambda settings, log: ensure_network(client, settings, log)
        )
        if base == DEFAULT_BASE:
            img = image.ensure_base(settings, host_mirrors(release=release), release)
            ref = ensure_imported(client, settings, img)
        else:
            ref = golden_tag(base)
        new = new_entries(
            settings, store, fresh,
            lambda name, address: new_server(settings, name, address, base, ref, release),
        )  # fmt: skip
        say(f"booting {len(new)} {describe(release)} container(s) from image {ref}")
        boot_started = time.monotonic()
        errors: list[str] = []

        def boot_one(entry: Server) -> None:
            try:
                start(client, settings, entry, public_key)
                store.update(entry)
            except Exception as exc:  # noqa: BLE001 - reported per server, all cleaned up
                errors.append(f"{entry.name}: {exc}")
                say(f"{entry.name}: failed: {exc}")
                entry.state = "failed"
                store.update(entry)

        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_BOOTS, len(new))) as pool:
            list(pool.map(boot_one, new))
        for entry in [s for s in new if s.state == "failed"]:
            remove(client, settings, entry.name)
            store.remove(entry.name)
        return finish_up(settings, store, names, len(new), errors, started, boot_started)

    def down(self, settings: Settings, names: list[str]) -> None:
        """Stop and remove servers; with none left also the network, proxy, rules, daemon."""
        self._prepare(settings)
        with self._lock(settings):
            store = Store(settings.state_file)
            state = store.state
            on_disk = (
                {p.name for p in settings.servers_dir.iterdir() if p.is_dir()}
                if settings.servers_dir.is_dir()
                else set()
            )
            client = dockerd.client() if dockerd.answers() else None
            if client is None and (state.servers or on_disk):
                # its containers outlive a stopped daemon (stopped, not removed): start it to
                # remove them; teardown stops it again
                client = dockerd.ensure(settings)
            found = ours(client, settings) if client else {}
            known = {s.name for s in state.servers} | set(found) | on_disk
            if names:
                unknown = [n for n in names if n not in known]
                if unknown:
                    raise SandboxError(f"no such server: {', '.join(unknown)}")
                targets = list(names)
            else:
                targets = sorted(known)
            if targets:
                say(f"stopping {', '.join(targets)}")
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(targets)))) as pool:
                list(pool.map(lambda n: remove(client, settings, n), targets))
            for name in targets:
                state.remove(name)
            store.commit()
            if not state.servers:
                self._teardown_host(client, settings, state)
                store.commit()
            ssh.write_known_hosts(settings, state)

    def _teardown_host(self, client, settings: Settings, state: State) -> None:
        log = settings.logs_dir / "host.log"
        if client is not None:
            for name in ours(client, settings):  # whatever a lost state file left
                remove(client, settings, name)
            remove_network(client, settings)
            dangling = client.images.list(filters={"dangling": True, "label": LABEL})
            for leftover in dangling:
                client.images.remove(leftover.id)
        proxy.stop(settings, state.proxy_pid)
        state.proxy_pid = None
        net.remove_firewall(settings, log)
        state.firewall_rules = []
        state.bridge = None
        dockerd.stop_if_ours(settings)

    def status(self, settings: Settings) -> list[str]:
        """Servers, addresses, whether sshd answers; network, proxy, images."""
        state = Store(settings.state_file).state
        client = dockerd.client() if dockerd.answers() else None
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda s: ssh.sshd_answers(s.address), state.servers))
        rows = [("NAME", "ADDRESS", "STATE", "SSH", "RELEASE", "BASE")] if state.servers else []
        for entry, answer in zip(state.servers, answers, strict=True):
            running = "running" if is_running(client, entry) else "dead"
            if entry.state != "running":
                running = entry.state
            release = f"{entry.release} ({RELEASES.get(entry.release, '?')})"
            rows.append((entry.name, entry.address, running, "yes" if answer else "no",
                         release, entry.base))  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ] or ["no servers (bin/sandbox --engine docker up N boots some)"]
        proxy_pid = proxy.find_ours(settings, state.proxy_pid)
        network = "up" if net.link_exists(settings.bridge) else "absent"
        images = ", ".join([DEFAULT_BASE, *(list_golden(client) if client else [])])
        lines.append(
            f"engine docker ({'daemon up' if client else 'daemon not running'}); network "
            f"{network_name(settings)} bridge {settings.bridge} {settings.bridge_ip}/"
            f"{settings.network.prefixlen}: {network}; apt proxy: "
            f"{f'pid {proxy_pid}' if proxy_pid else 'stopped'}; images: {images}"
        )
        return lines

    def inventory(self, settings: Settings) -> str:
        """The state as JSON (inventories/sandbox.py reads the file itself)."""
        state = Store(settings.state_file).state
        client = dockerd.client() if state.servers and dockerd.answers() else None
        data = state.to_dict()
        data["servers"] = [{**asdict(s), "running": is_running(client, s)} for s in state.servers]
        return json.dumps(data, indent=2)

    def save(self, settings: Settings, name: str, golden: str, force: bool) -> str:
        """Commit a running server as image GOLDEN (identity is replaced at every boot)."""
        import docker

        image.check_name(golden)
        client = dockerd.ensure(settings)
        with self._lock(settings):
            state = Store(settings.state_file).state
            entry = state.get(name)
            if entry is None or not is_running(client, entry):
                raise SandboxError(f"no running server {name!r}: bin/sandbox up first")
            tag = golden_tag(golden)
            users = [s.name for s in state.servers if s.lower == tag]
            if users:
                raise SandboxError(f"image {golden!r} is in use by {', '.join(users)}")
            try:
                client.images.get(tag)
                if not force:
                    raise SandboxError(f"image {golden!r} exists (--force replaces it)")
            except docker.errors.ImageNotFound:
                pass
            say(f"saving {name} as image {golden} (docker commit)")
            started = time.monotonic()
            repository, _, version = tag.partition(":")
            client.containers.get(entry.root).commit(
                repository=repository,
                tag=version,
                conf={"Labels": {LABEL: "", "w2p-sandbox.release": entry.release,
                                 "w2p-sandbox.from": name,
                                 "w2p-sandbox.created": datetime.now(UTC).isoformat()}},
            )  # fmt: skip
            say(f"saved in {time.monotonic() - started:.1f} s")
            return tag

    def remove_image(self, settings: Settings, golden: str) -> None:
        """Delete a saved image."""
        import docker

        image.check_name(golden)
        client = dockerd.ensure(settings)
        with self._lock(settings):
            state = Store(settings.state_file).state
            tag = golden_tag(golden)
            users = [s.name for s in state.servers if s.lower == tag]
            if users:
                raise SandboxError(f"image {golden!r} is in use by {', '.join(users)}")
            try:
                client.images.remove(tag)
            except docker.errors.ImageNotFound:
                raise SandboxError(f"no image {golden!r}") from None
            finally:
                if not state.servers:  # started just for this: stopped again
                    dockerd.stop_if_ours(settings)

    def images(self, settings: Settings) -> list[str]:
        """Base and saved images in the daemon (none listed while it does not run)."""
        if not dockerd.answers():
            return ["the Docker daemon is not running (bin/sandbox --engine docker up starts it)"]
        client = dockerd.client()
        lines = []
        for found in client.images.list(name=IMAGE_REPO):
            release = (found.labels or {}).get("w2p-sandbox.release", "?")
            lines += [f"{tag}\t{release}\t{found.short_id}" for tag in found.tags]
        return sorted(lines)
