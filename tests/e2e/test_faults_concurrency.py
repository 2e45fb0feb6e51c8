"""Faults: deploys at the same time. Two apps deployed at once on one server (two pyinfra
processes, under load on both), and one run deploying to 20 servers at once.

What two deploys on one server share: the release tool's upload (both runs install it when the
server lacks this build), the one uWSGI that serves every app (a chain reload asked for while
another runs is ignored by uWSGI: server.reload_lock), nginx, /etc/web2py and the backups
folder. After each test, every app is consistent on every server: its workers all serve its
new version, ``current``, ``release.log`` and ``audit.jsonl`` agree, no lock is left, and a
second run of the same deploy changes nothing.

The reload race is also forced deterministically with the release tool's test-only pause hook,
per app (``/etc/web2py/test-pause-<step>.<app>``): app A's deploy is held right after it asked
uWSGI for a chain reload, app B's deploy starts its reload once uWSGI is half way through A's.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.loadgen import LoadRunner
from operations import release_tool

from .sandboxlib import (
    PYINFRA,
    ROOT,
    SANDBOX,
    Run,
    Server,
    http_get,
    pyinfra,
    sandbox_down,
    wait_bounded,
    wait_for,
)
from .test_app_deploy import set_version

PREFIX = "w2pc"
FLEET = 20  # servers deployed to at once by one run
APPS_DIR = "/srv/web2py-apps"
FLAGS = "/etc/web2py"
TOOL = release_tool.REMOTE_PATH
APP_NAMES = ("notes", "jotter")  # two copies of the example app, under two names
REQUESTS = 48  # per app and server, through nginx, 8 at a time: every worker answers some
TIMINGS = ROOT / "build" / "w2pc-timings.txt"  # how long booting and deploying took


def keep() -> bool:
    return os.environ.get("W2P_KEEP_SANDBOX") == "1"


def note_time(what: str, seconds: float) -> None:
    """Record a duration (CI has a time budget for this file): printed, and kept in build/."""
    line = f"{what}: {seconds:.1f} s"
    print(line)
    with TIMINGS.open("a") as out:
        out.write(f"{time.strftime('%H:%M:%S')} {line}\n")


def install(hosts: list[Server], web2py_zip: str) -> None:
    env = {
        "WEB2PY_ADMIN_PASSWORD": "adm-" + secrets.token_urlsafe(18),
        "WEB2PY_SRC_ZIP": web2py_zip,
    }
    started = time.monotonic()
    run = pyinfra("deploys/install_web2py.py", hosts, env=env)
    assert run.returncode == 0, run.output[-6000:]
    note_time(f"install_web2py on {len(hosts)} server(s)", time.monotonic() - started)


def boot(count: int) -> list[Server]:
    """w2pc-1..count (others of the prefix may run too: the fleet's, kept by W2P_KEEP_SANDBOX)."""
    subprocess.run(
        [str(SANDBOX), "up", str(count), "--prefix", PREFIX], check=True, timeout=900, cwd=ROOT
    )
    listed = subprocess.run(
        [str(SANDBOX), "inventory"], check=True, capture_output=True, text=True, cwd=ROOT,
        timeout=60,
    ).stdout  # fmt: skip
    wanted = {f"{PREFIX}-{i}" for i in range(1, count + 1)}
    servers = [Server(s["name"], s["address"]) for s in json.loads(listed)["servers"]]
    found = sorted((s for s in servers if s.name in wanted), key=lambda s: int(s.name[5:]))
    assert len(found) == count, listed[-2000:]
    return found


@pytest.fixture(scope="module")
def server(web2py_zip, e2e_ready):
    """w2pc-1, web2py installed (the fleet test boots w2pc-2..20 next to it)."""
    started = time.monotonic()
    (one,) = boot(1)
    note_time("boot 1 server", time.monotonic() - started)
    install([one], web2py_zip)
    yield one
    if not keep():
        sandbox_down([one.name])  # the fleet's teardown leaves it to this one


@pytest.fixture(scope="module")
def apps(server, tmp_path_factory) -> dict[str, Path]:
    """Two copies of the example app (``notes`` and ``jotter``), each deployed once."""
    work = tmp_path_factory.mktemp("conc")
    dirs = {}
    for name in APP_NAMES:
        dirs[name] = work / name
        shutil.copytree(ROOT / "examples" / "apps" / "notes", dirs[name])
        set_version(dirs[name], f"c-{name}-0")
    both = {name: app_settings(name, path) for name, path in dirs.items()}
    first = pyinfra("deploys/app_deploy.py", [server], data={"deploy_apps": json.dumps(both)})
    assert first.returncode == 0, first.output[-4000:]
    return dirs


def app_settings(name: str, path: Path) -> dict:
    """The app's deploy settings; its version label is the one its code says (set_version)."""
    return {
        "path": str(path), "health_path": f"/{name}/default/health", "health_text": "ok notes",
        "version": code_version(path),
    }  # fmt: skip


def code_version(path: Path) -> str:
    text = (path / "modules" / "notes_util.py").read_text()
    return text.split("VERSION = '", 1)[1].split("'", 1)[0]


def deploy_data(name: str, path: Path) -> dict[str, str]:
    """The deploy of one app (each pyinfra process deploys its own)."""
    return {"deploy_apps": json.dumps({name: app_settings(name, path)})}


def start(server_names: list[str], data: dict[str, str], out_name: str) -> subprocess.Popen:
    """pyinfra's app_deploy in the background, its output to build/<out_name>."""
    args = [str(PYINFRA), "-y", "inventories/sandbox.py", "deploys/app_deploy.py"]
    for key, value in data.items():
        args += ["--data", f"{key}={value}"]
    env = {**os.environ, "W2P_SANDBOX_HOSTS": ",".join(server_names)}
    env.setdefault("WEB2PY_SRC_ZIP", str(ROOT / "build" / "web2py_src.zip"))
    out = open(ROOT / "build" / out_name, "w")  # noqa: SIM115
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
    )


def finish(proc: subprocess.Popen, out_name: str, timeout: float = 600) -> Run:
    """Wait (bounded) for a run started by :func:`start`; its exit code and output."""
    code = wait_bounded(proc, timeout)
    return Run(code, (ROOT / "build" / out_name).read_text(errors="replace"))


def served_versions(server: Server, app: str) -> set[str]:
    """The versions the app's workers serve: REQUESTS health checks through nginx."""

    def one(_: int) -> str:
        status, _, body = http_get(server.address, f"/{app}/default/health")
        assert status == 200, body[:300]
        return body.decode().strip().rsplit(" ", 1)[-1]

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(one, range(REQUESTS)))


def assert_consistent(server: Server, app: str, version: str) -> None:
    """Every worker serves ``version`` of ``app``; current, its REVISION, the last release.log
    line and the last audit record agree on it (a successful deploy); its lock is free."""
    base = f"{APPS_DIR}/{app}"
    assert served_versions(server, app) == {version}, (server.name, app)
    state = server.run(
        f"readlink {base}/current; cat {base}/current/REVISION; "
        f"tail -n 1 {base}/release.log; tail -n 1 {base}/audit.jsonl; "
        f"test -e {base}/lock && echo LOCKED; true"
    ).splitlines()
    current = state[0].rsplit("/", 1)[-1]
    revision, log_line, record = json.loads(state[1]), state[2].split(), json.loads(state[3])
    assert revision["version"] == version and revision["release"] == current, (server.name, state)
    assert log_line[1:] == [current, "live"], (server.name, log_line)
    assert record["release"] == current and record["version"] == version, (server.name, record)
    assert record["result"] == "ok" and "attention" not in record, (server.name, record)
    assert "LOCKED" not in state[4:], (server.name, state)


def assert_tool_installed(server: Server) -> None:
    """The tool is this build, and no staged copy was left next to it."""
    _, digest = release_tool.build()
    out = server.run(f"sha256sum {TOOL}; ls -a {Path(TOOL).parent}")
    assert out.split()[0] == digest, out
    assert ".web2py-release.pyz." not in out, out


def flag(server: Server, step: str, app: str) -> None:
    server.run(f"rm -f {FLAGS}/test-paused-{step}.{app}; touch {FLAGS}/test-pause-{step}.{app}")


def reached(server: Server, step: str, app: str) -> bool:
    return bool(server.run(f"test -e {FLAGS}/test-paused-{step}.{app} && echo y; true").strip())


# The server side of the forced race: read uWSGI's workers from its stats socket until some
# are new (pids not in PIDS) and some are not (A's chain reload half way), then lift the flag
# holding B. Prints the workers' pids at that moment. Bounded (60 s).
HALF_WAY = """
import json, os, socket, sys, time
stats = json.load(open('/etc/web2py/release.json'))['stats']
old = set(json.loads(sys.argv[1]))
def pids():
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5); s.connect(stats); data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk: break
            data += chunk
    return [w['pid'] for w in json.loads(data)['workers']]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    now = pids()
    # a new worker up (pid 0: one being respawned) next to an old one
    if any(p in old for p in now) and any(p > 0 and p not in old for p in now):
        os.unlink(sys.argv[2]); print(json.dumps(now)); break
    time.sleep(0.01)
"""


def worker_pids(server: Server) -> list[int]:
    code = HALF_WAY.split("deadline =")[0] + "print(json.dumps(pids()))"
    return json.loads(server.run(f"python3 -c {shlex.quote(code)} '[]'"))


def rerun_all(server_names: list[str], dirs: dict[str, Path], label: str) -> None:
    """The same deploys again, at once: each changes nothing."""
    procs = {
        name: start(server_names, deploy_data(name, path), f"{label}-{name}-again.out")
        for name, path in dirs.items()
    }
    for name, proc in procs.items():
        again = finish(proc, f"{label}-{name}-again.out")
        assert again.returncode == 0, again.output[-4000:]
        assert again.totals["changed"] == 0, again.output[-4000:]


def test_two_apps_deployed_at_once_under_load(server, apps):
    # the server lacks this build of the release tool: both runs install it at once
    server.run(f"rm -f {TOOL}")
    versions = {name: f"c-{name}-{int(time.time())}" for name in APP_NAMES}
    for name, path in apps.items():
        set_version(path, versions[name])
    loads = [
        LoadRunner(
            f"http://{server.address}/{name}/default/health",
            rate=60, duration=40, timeout=5, expect_body=b"ok notes",
        )
        for name in APP_NAMES
    ]  # fmt: skip
    for load in loads:
        load.start()
    try:
        time.sleep(2)
        started = time.monotonic()
        procs = {
            name: start([server.name], deploy_data(name, path), f"w2pc-both-{name}.out")
            for name, path in apps.items()
        }
        runs = {name: finish(proc, f"w2pc-both-{name}.out") for name, proc in procs.items()}
        note_time("two apps deployed at once", time.monotonic() - started)
        results = [load.result(120) for load in loads]
    finally:
        for load in loads:
            load.stop()
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}: {run.output[-4000:]}"
        assert run.totals["changed"] >= 1, run.output[-4000:]
    for result in results:
        assert result.sent >= 2000 and result.failed == 0, result.summary()
    for name in APP_NAMES:
        assert_consistent(server, name, versions[name])
    assert_tool_installed(server)
    assert server.run(f"ls -a {FLAGS} | grep test-pause; true").strip() == ""
    rerun_all([server.name], apps, "w2pc-both")


def test_a_reload_during_another_apps_chain_reload(server, apps):
    """A's deploy asks uWSGI for a chain reload; B's reload starts half way through it.
    uWSGI ignores B's request then: B must wait for A's reload to end and ask for its own."""
    a, b = APP_NAMES
    versions = {name: f"c-{name}-race-{int(time.time())}" for name in APP_NAMES}
    for name, path in apps.items():
        set_version(path, versions[name])
    for name in APP_NAMES:
        flag(server, "after-switch", name)  # both held once switched, before their reloads
    flag(server, "chain-reload", a)  # A held after asking uWSGI for its chain reload
    procs = {
        name: start([server.name], deploy_data(name, path), f"w2pc-race-{name}.out")
        for name, path in apps.items()
    }
    try:
        for name in APP_NAMES:
            assert wait_for(lambda n=name: reached(server, "after-switch", n), 240, 0.5), (
                f"{name}'s deploy never reached after-switch"
            )
        old = worker_pids(server)
        watcher = subprocess.Popen(
            [str(SANDBOX), "ssh", server.name, "sudo", "python3", "-c", shlex.quote(HALF_WAY),
             shlex.quote(json.dumps(old)), f"{FLAGS}/test-pause-after-switch.{b}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        time.sleep(2)  # the watcher reads the stats socket before A's reload starts
        server.run(f"rm -f {FLAGS}/test-pause-after-switch.{a}")
        half, _ = watcher.communicate(timeout=90)
        assert watcher.returncode == 0 and half.strip(), f"never half way: {half}"
        # B now reloads while uWSGI is half way through A's chain reload; A is still held
        assert wait_for(lambda: reached(server, "chain-reload", a), 60, 0.5)
        time.sleep(3)  # B is at its reload (with the fix: waiting for A's to end)
    finally:
        server.run(f"rm -f {FLAGS}/test-pause-*")
    runs = {name: finish(proc, f"w2pc-race-{name}.out") for name, proc in procs.items()}
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}: {run.output[-4000:]}"
    # B's reload came while A's was under way (B's run log says it waited for it)
    log = server.run(f"cat $(ls -t {APPS_DIR}/{b}/runs/*-deploy.log | head -n 1)")
    assert "waiting for another uWSGI reload" in log, log[-2000:]
    for name in APP_NAMES:
        assert_consistent(server, name, versions[name])
    rerun_all([server.name], apps, "w2pc-race")


@pytest.fixture(scope="module")
def fleet(server, web2py_zip) -> list[Server]:
    """w2pc-1..20 (w2pc-1 is the server above), web2py installed on all."""
    started = time.monotonic()
    servers = boot(FLEET)
    note_time(f"boot {FLEET - 1} more servers", time.monotonic() - started)
    install(servers, web2py_zip)
    yield servers
    if not keep():
        sandbox_down([s.name for s in servers if s.name != server.name])


def test_twenty_servers_deployed_at_once(fleet, tmp_path):
    app = tmp_path / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app)
    names = [s.name for s in fleet]
    for step in ("first", "update"):  # a first release where w2pc-1 has one; then a new one
        version = f"c-fleet-{step}-{int(time.time())}"
        set_version(app, version)
        data = deploy_data("notes", app)
        started = time.monotonic()
        run = pyinfra("deploys/app_deploy.py", fleet, data=data)
        note_time(f"app_deploy ({step}) to {FLEET} servers at once", time.monotonic() - started)
        assert run.returncode == 0, run.output[-6000:]
        with ThreadPoolExecutor(5) as pool:
            list(pool.map(assert_consistent, fleet, ["notes"] * FLEET, [version] * FLEET))
    again = pyinfra("deploys/app_deploy.py", fleet, data=data)
    assert again.returncode == 0, again.output[-4000:]
    assert again.totals["changed"] == 0, again.output[-4000:]
    assert len(names) == FLEET
