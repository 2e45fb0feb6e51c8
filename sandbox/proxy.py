"""apt-cacher-ng started by hand (a policy-rc.d may block the packaged service), our own config."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from pathlib import Path

from sandbox import procs
from sandbox.config import Settings
from sandbox.util import SandboxError, say, tail, wait_until, write_file

BINARY = "/usr/sbin/apt-cacher-ng"
USER = "apt-cacher-ng"


def dirs(settings: Settings) -> tuple[Path, Path, Path]:
    # One per bridge: two sandboxes (e.g. a test's own) never share a running proxy's files.
    base = settings.cache_dir / "apt-cacher-ng" / settings.bridge
    return base / "etc", base / "cache", base / "log"


def conf_dir(settings: Settings) -> str:
    return str(dirs(settings)[0])


def config_text(settings: Settings, cache: Path, logs: Path) -> str:
    # No Remap-* lines: a plain caching proxy for the URLs apt asks for (the host's mirror).
    return (
        f"CacheDir: {cache}\n"
        f"LogDir: {logs}\n"
        "SupportDir: /usr/lib/apt-cacher-ng\n"
        f"Port: {settings.proxy_port}\n"
        f"BindAddress: 127.0.0.1 {settings.bridge_ip}\n"
        f"SocketPath: {logs}/socket\n"
        "ReportPage: acng-report.html\n"
        "ExThreshold: 4\n"
        "FollowIndexFileRemoval: 1\n"
    )


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def find_ours(settings: Settings, recorded: int | None) -> int | None:
    conf = conf_dir(settings)
    if procs.is_proxy_for(recorded, conf):
        return recorded
    found = procs.proxies_for(conf)
    return found[0] if found else None


def ensure(settings: Settings, recorded: int | None) -> int:
    """Our apt-cacher-ng's PID, starting it if needed; fails if another owns the port."""
    pid = find_ours(settings, recorded)
    hosts = ("127.0.0.1", str(settings.bridge_ip))
    if pid:
        if all(listening(h, settings.proxy_port) for h in hosts):
            return pid
        procs.terminate([pid], grace=5)
    for host in hosts:
        if listening(host, settings.proxy_port):
            raise SandboxError(
                f"something else listens on {host}:{settings.proxy_port} (not this sandbox's "
                "apt-cacher-ng): stop it, e.g. systemctl disable --now apt-cacher-ng, "
                "or set W2P_SANDBOX_PROXY_PORT"
            )
    return start(settings)


def start(settings: Settings) -> int:
    if not Path(BINARY).exists():
        raise SandboxError(f"{BINARY} missing: run bin/setup (apt package apt-cacher-ng)")
    try:
        account = pwd.getpwnam(USER)
    except KeyError as exc:
        raise SandboxError(f"no user {USER}: run bin/setup (apt package apt-cacher-ng)") from exc
    etc, cache, logs = dirs(settings)
    for directory in (settings.cache_dir, etc.parent.parent, etc.parent, etc):
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o755)
    for directory in (cache, logs):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, account.pw_uid, account.pw_gid)
    write_file(etc / "acng.conf", config_text(settings, cache, logs))
    log = settings.logs_dir / "apt-cacher-ng.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"starting apt-cacher-ng on 127.0.0.1 and {settings.bridge_ip}:{settings.proxy_port}")
    with log.open("a") as out:
        child = subprocess.Popen(
            [BINARY, "-c", str(etc), "ForeGround=1"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            user=account.pw_uid, group=account.pw_gid, extra_groups=[],
            start_new_session=True, cwd="/",
        )  # fmt: skip
    up = wait_until(
        lambda: (
            child.poll() is not None
            or all(
                listening(h, settings.proxy_port) for h in ("127.0.0.1", str(settings.bridge_ip))
            )
        ),
        timeout=20,
    )
    if not up or child.poll() is not None:
        procs.terminate([child.pid], grace=3)
        raise SandboxError(f"apt-cacher-ng did not start: {tail(log, 3)!r} (log: {log})")
    return child.pid


def stop(settings: Settings, recorded: int | None) -> None:
    pids = {p for p in (recorded,) if procs.is_proxy_for(p, conf_dir(settings))}
    pids |= set(procs.proxies_for(conf_dir(settings)))
    if pids:
        say("stopping apt-cacher-ng")
        left = procs.terminate(sorted(pids), grace=10)
        if left:
            raise SandboxError(f"apt-cacher-ng (pid {left}) did not stop")
