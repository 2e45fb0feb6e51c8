"""One server: overlay root, identity, network namespace, systemd-nspawn boot, teardown."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from sandbox import cgroups, net, procs
from sandbox.config import SSH_USER, Settings
from sandbox.image import Image, apt_proxy_conf
from sandbox.ssh import read_host_keys, sshd_answers
from sandbox.state import Server
from sandbox.util import SandboxError, in_root, run, tail, wait_until, write_file

BOOT_TIMEOUT = 60.0


def server_dir(settings: Settings, name: str) -> Path:
    return settings.servers_dir / name


def setup_log(settings: Settings, name: str) -> Path:
    return settings.logs_dir / f"{name}.setup.log"


def new_server(settings: Settings, name: str, address: str, image: Image) -> Server:
    home = server_dir(settings, name)
    return Server(
        name=name,
        address=address,
        netns=net.netns_name(settings, name),
        veth=net.veth_name(settings, name),
        base=image.name,
        lower=str(image.rootfs),
        root=str(home / "root"),
        ssh_user=SSH_USER,
        ssh_key=str(settings.ssh_key),
        known_hosts=str(settings.known_hosts),
        log=str(settings.logs_dir / f"{name}.console.log"),
        release=image.release,
    )


def is_running(server: Server) -> bool:
    return procs.is_nspawn_for(server.pid, server.root)


# --- mounts ----------------------------------------------------------------------------------


def mounted(path: str) -> bool:
    return path in mount_points()


def mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(point.encode().decode("unicode_escape"))
    return points


def mount_overlay(settings: Settings, server: Server, log: Path) -> None:
    home = server_dir(settings, server.name)
    if mounted(server.root):
        run(["umount", server.root], log=log, timeout=60)
    for sub in ("upper", "work"):
        shutil.rmtree(home / sub, ignore_errors=True)
    for sub in ("upper", "work", "root"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={server.lower},upperdir={home / 'upper'},workdir={home / 'work'}"
    run(["mount", "-t", "overlay", "overlay", "-o", options, server.root], log=log, timeout=60)


def unmount(path: str, log: Path) -> None:
    for attempt in range(10):
        if not mounted(path):
            return
        if run(["umount", path], log=log, timeout=60, check=False).returncode == 0:
            continue
        time.sleep(0.5 * (attempt + 1))
    if mounted(path):
        run(["umount", "-l", path], log=log, timeout=60)


# --- identity --------------------------------------------------------------------------------


def write_identity(settings: Settings, server: Server, public_key: str, log: Path) -> None:
    """Hostname, hosts, resolv.conf, machine-id, fresh SSH host keys, authorized_keys, apt proxy."""
    root = Path(server.root)
    write_file(in_root(root, "etc/hostname"), f"{server.name}\n")
    write_file(
        in_root(root, "etc/hosts"),
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{server.name}\n{server.address}\t{server.name}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n",
    )
    write_file(in_root(root, "etc/resolv.conf"), "")
    write_file(in_root(root, "etc/machine-id"), uuid.uuid4().hex + "\n", mode=0o444)
    proxy_conf = in_root(root, "etc/apt/apt.conf.d/90sandbox-proxy")
    write_file(proxy_conf, apt_proxy_conf(settings.proxy_url))
    for key in in_root(root, "etc/ssh/sshd_config").parent.glob("ssh_host_*"):
        key.unlink()
    run(["chroot", server.root, "ssh-keygen", "-A"], log=log, timeout=60)
    uid, gid, home = _passwd_entry(root, SSH_USER)
    ssh_dir = in_root(root, f"{home}/.ssh/authorized_keys").parent
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, uid, gid, follow_symlinks=False)
    os.chmod(ssh_dir, 0o700)
    keys = in_root(root, f"{home}/.ssh/authorized_keys")
    write_file(keys, public_key + "\n", mode=0o600)
    os.chown(keys, uid, gid, follow_symlinks=False)


def _passwd_entry(root: Path, user: str) -> tuple[int, int, str]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    raise SandboxError(f"no user {user} in {root}/etc/passwd")


# --- boot and stop ---------------------------------------------------------------------------


def boot(settings: Settings, server: Server) -> int:
    console = Path(server.log)
    console.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "systemd-nspawn", "--quiet", "-b", "-D", server.root, "-M", server.name,
        "--register=no", "--keep-unit", f"--network-namespace-path=/run/netns/{server.netns}",
        "--console=read-only", "--resolv-conf=off", "--timezone=off",
    ]  # fmt: skip
    # The container's systemd gets a pure cgroup v2 hierarchy, as on a real Debian 12 or Ubuntu
    # 22.04+ server, also on a host with hybrid cgroups (v1 controllers); and a cgroup of its
    # own (see sandbox/cgroups.py: without it, all servers shared one).
    directories = cgroups.server_cgroups(settings.bridge, server.name)
    cgroups.create(directories)
    (Path(server.root).parent / "cgroups").write_text("".join(f"{d}\n" for d in directories))
    argv, extra = cgroups.wrap(argv, directories)
    env = {**os.environ, **extra, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
    with console.open("w") as out:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd="/", env=env,
        )  # fmt: skip
    return child.pid


def wait_ready(server: Server, timeout: float = BOOT_TIMEOUT) -> None:
    ready = wait_until(
        lambda: not procs.alive(server.pid) or sshd_answers(server.address, timeout=1),
        timeout=timeout,
        interval=0.3,
    )
    if not procs.alive(server.pid):
        raise SandboxError(
            f"{server.name}: systemd-nspawn exited: {tail(Path(server.log), 1)!r} "
            f"(log: {server.log})"
        )
    if not ready:
        raise SandboxError(f"{server.name}: sshd not up after {timeout:.0f} s (log: {server.log})")


def start(settings: Settings, server: Server, public_key: str) -> Server:
    """Network, overlay, identity, boot; returns the server running with its host keys."""
    log = setup_log(settings, server.name)
    log.write_text("")
    net.create_netns(settings, server.netns, server.veth, server.address, log)
    mount_overlay(settings, server, log)
    write_identity(settings, server, public_key, log)
    server.host_keys = read_host_keys(Path(server.root))
    server.pid = boot(settings, server)
    # The pid is recorded at once: a crash from here on still leaves it for `down`.
    (server_dir(settings, server.name) / "nspawn.pid").write_text(f"{server.pid}\n")
    wait_ready(server)
    server.state = "running"
    return server


def stop_processes(settings: Settings, servers: list[Server]) -> None:
    """Power off (SIGTERM to nspawn) every given server at once; SIGKILL after a timeout.
    Only processes this tool recorded, or nspawns booting a root inside our state dir."""
    roots = {s.root for s in servers}
    pids = {s.pid for s in servers if s.pid and procs.is_nspawn_for(s.pid, s.root)}
    for server in servers:
        recorded = _read_pid(server_dir(settings, server.name) / "nspawn.pid")
        if recorded and procs.is_nspawn_for(recorded, server.root):
            pids.add(recorded)
    pids |= {pid for pid, root in procs.nspawn_under(settings.servers_dir).items() if root in roots}
    left = procs.terminate(sorted(pids), grace=20, kill_wait=10)
    if left:
        raise SandboxError(f"systemd-nspawn processes {left} did not exit")
    # A container whose systemd-nspawn died (killed, crashed) keeps running on its own.
    uppers = {str(Path(s.root).parent / "upper") for s in servers}
    orphans = [
        p for p, up in procs.container_inits_under(settings.servers_dir).items() if up in uppers
    ]
    if orphans:
        left = procs.kill(orphans)
        if left:
            raise SandboxError(f"orphaned container processes {left} did not exit")


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def remove(settings: Settings, server: Server) -> None:
    """After its process is gone: unmount, delete netns and veth, remove its files."""
    log = setup_log(settings, server.name)
    unmount(server.root, log)
    net.delete_netns(server.netns, server.veth, log)
    home = server_dir(settings, server.name)
    try:
        recorded = [Path(line) for line in (home / "cgroups").read_text().split()]
    except OSError:
        recorded = []
    busy = cgroups.remove(recorded)
    if busy:
        with log.open("a") as out:
            out.write(f"cgroups still in use, left: {busy}\n")
    if home.exists() and not mounted(str(home / "root")):
        shutil.rmtree(home)
