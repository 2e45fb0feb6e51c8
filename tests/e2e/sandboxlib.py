"""Helpers for end-to-end tests: sandbox servers, bounded pyinfra runs, checks on the server."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYINFRA = ROOT / ".venv" / "bin" / "pyinfra"
SANDBOX = ROOT / "bin" / "sandbox"
PYINFRA_TIMEOUT = 900  # seconds for one pyinfra run: a first install through the apt proxy
# The sandbox engine the servers boot on (bin/sandbox reads the same variable): nspawn or docker.
ENGINE = (os.environ.get("W2P_SANDBOX_ENGINE") or "nspawn").strip().lower()


@dataclass(frozen=True)
class Server:
    name: str
    address: str

    def run(self, command: str, timeout: float = 60, check: bool = True) -> str:
        """Run a shell command as root on the server (ssh as deploy + sudo)."""
        result = subprocess.run(
            [str(SANDBOX), "ssh", self.name, "sudo", "sh", "-c", _quote(command)],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name}: {command!r} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    def run_bytes(self, command: str, timeout: float = 120) -> bytes:
        """Like run, for binary output."""
        result = subprocess.run(
            [str(SANDBOX), "ssh", self.name, "sudo", "sh", "-c", _quote(command)],
            capture_output=True, timeout=timeout, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout


def _quote(command: str) -> str:
    return "'" + command.replace("'", "'\"'\"'") + "'"


def e2e_prerequisites() -> str | None:
    """Why end-to-end tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "end-to-end tests need root (sandbox servers are systemd-nspawn containers)"
    for tool in ("systemd-nspawn", "debootstrap", "apt-cacher-ng", "ip"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"end-to-end tests need {tool}: run bin/setup"
    if not PYINFRA.exists():
        return "no .venv: run bin/setup"
    if ENGINE == "docker" and not Path("/usr/sbin/dockerd").exists():
        return "W2P_SANDBOX_ENGINE=docker needs dockerd: run bin/setup (apt package docker.io)"
    return None


def sandbox_up(
    names_prefix: str, count: int, timeout: float = 900, release: str | None = None
) -> list[Server]:
    """Servers PREFIX-1..COUNT (of a Debian release, default the sandbox's)."""
    subprocess.run(
        [str(SANDBOX), "up", str(count), "--prefix", names_prefix,
         *(["--release", release] if release else [])],
        check=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    state = json.loads(
        subprocess.run(
            [str(SANDBOX), "inventory"],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        ).stdout  # fmt: skip
    )
    servers = [
        Server(s["name"], s["address"])
        for s in state["servers"]
        if s["name"].startswith(f"{names_prefix}-")
    ]
    assert len(servers) == count, state
    return sorted(servers, key=lambda s: s.name)


def sandbox_down(names: list[str]) -> None:
    subprocess.run([str(SANDBOX), "down", *names], check=True, timeout=300, cwd=ROOT)


@dataclass
class Run:
    returncode: int
    output: str

    @property
    def totals(self) -> dict[str, int]:
        """pyinfra's 'Grand total' row: hosts, changed, errors, unchanged operations."""
        match = re.search(r"Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", self.output)
        assert match, f"no results table in pyinfra output:\n{self.output[-3000:]}"
        values = [0 if v == "-" else int(v) for v in match.groups()]
        return dict(zip(("hosts", "changed", "errors", "unchanged"), values, strict=True))


def pyinfra(
    deploy: str,
    hosts: list[Server],
    data: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    extra: list[str] | None = None,
    timeout: float = PYINFRA_TIMEOUT,
    inventory: str = "inventories/sandbox.py",
) -> Run:
    """Run a deploy with real pyinfra over SSH against sandbox servers, bounded in time."""
    args = [str(PYINFRA), "-y", inventory, deploy, *(extra or [])]
    for key, value in (data or {}).items():
        args += ["--data", f"{key}={value}"]
    full_env = {**os.environ, "W2P_SANDBOX_HOSTS": ",".join(h.name for h in hosts), **(env or {})}
    full_env.setdefault("WEB2PY_SRC_ZIP", str(ROOT / "build" / "web2py_src.zip"))
    result = subprocess.run(
        args, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return Run(result.returncode, result.stdout + result.stderr)


def http_get(
    url_host: str,
    path: str,
    https: bool = False,
    port: int | None = None,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    tls_max: ssl.TLSVersion | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """One request to a sandbox address (never anywhere else)."""
    import http.client

    if https:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if tls_max is not None:
            with warnings.catch_warnings():  # old versions on purpose: they must be refused
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = tls_max
            context.set_ciphers("ALL:@SECLEVEL=0")
        conn = http.client.HTTPSConnection(url_host, port or 443, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(url_host, port or 80, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def wait_for(predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def installed_server(prefix: str, web2py_zip: str) -> Iterator[Server]:
    """One sandbox server with web2py installed, for a module fixture's ``yield from``; down
    afterwards (also when the install failed) unless W2P_KEEP_SANDBOX=1."""
    (started,) = sandbox_up(prefix, 1)
    try:
        env = {
            "WEB2PY_ADMIN_PASSWORD": "adm-" + secrets.token_urlsafe(18),
            "WEB2PY_SRC_ZIP": web2py_zip,
        }
        run = pyinfra("deploys/install_web2py.py", [started], env=env)
        assert run.returncode == 0, run.output[-6000:]
        yield started
    finally:
        if os.environ.get("W2P_KEEP_SANDBOX") != "1":
            sandbox_down([started.name])


def wait_bounded(proc: subprocess.Popen, timeout: float) -> int:
    """Wait up to ``timeout`` for a process a test started; killed (by its PID) after that.
    Its exit code."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return proc.returncode
