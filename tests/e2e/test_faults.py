"""Faults: the controller (the pyinfra process) is killed at a given step of a deploy, a
rollback or a restore, or its SSH link drops (packets dropped, not refused), on one sandbox
server running the real framework. After each, the server must end in one consistent state:
one version served by every worker, ``current``, ``release.log`` and ``audit.jsonl`` agreeing
on it, the lock free, and a re-run of the same deploy succeeding. Open-loop load runs through
nginx during every controller kill: no request may fail (a data restore's maintenance 503s
excepted, by design).

The timing is deterministic: the release tool's test-only pause hook (server.detach.pause)
holds the run at a named step while ``/etc/web2py/test-pause-<step>`` exists and says it got
there with ``/etc/web2py/test-paused-<step>``; the test kills pyinfra then, and lifts the flag.
Before the tool runs, markers decide: pyinfra's own output (it is still preparing), or the
partial upload in /tmp on a link slowed by ``tc`` (the upload is under way).

While the link is cut, the test reaches the server without SSH: ``nsenter`` into the
nspawn container's namespaces (the sandbox's own state file names its pid).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.loadgen import LoadRunner

from .sandboxlib import PYINFRA, ROOT, Server, http_get, installed_server, pyinfra, wait_for
from .test_app_deploy import SHARED_DATA, add_note, apps_data, set_version

PREFIX = "w2pf"
APP_DIR = "/srv/web2py-apps/notes"
CACHE_DIR = "/var/cache/pyinfra-web2py"  # web2py_cache_dir: where uploads land
FLAGS = "/etc/web2py"
REQUESTS = 48  # through nginx, 8 at a time, so that every worker answers some
LOAD_RATE = 20  # requests/s through nginx during each kill (2 shared cores: kept modest)
LOAD_MAX_S = 900  # the load is stopped when the case ends; this only bounds its plan
SLOW_LINK = "2mbit"  # SSH into the server, for the upload case (the upload takes seconds)
BLOB_BYTES = 1_500_000  # incompressible: the upload takes about 6 s on the slow link
RUN_TIMEOUT = 20  # deploy_run_timeout_seconds for the dropped-link case


@pytest.fixture(scope="module")
def server(web2py_zip, e2e_ready):
    """One sandbox server with web2py installed (W2P_KEEP_SANDBOX=1 keeps it afterwards)."""
    yield from installed_server(PREFIX, web2py_zip)


@pytest.fixture(scope="module")
def app(server, tmp_path_factory) -> dict:
    """The example app, deployed once (version "f-0"); ``version`` is the one last deployed."""
    return example_app(server, tmp_path_factory, "faults", "f-0")


def example_app(server: Server, tmp_path_factory, folder: str, version: str) -> dict:
    """The example app copied into a temporary ``folder`` and deployed once at ``version``."""
    app_dir = tmp_path_factory.mktemp(folder) / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
    state = {"dir": app_dir}
    new_version(state, version)
    first = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(state))
    assert first.returncode == 0, first.output[-4000:]
    return state


def hold_at(server: Server, step: str) -> None:
    """The tool's next run holds at ``step`` (the test-only pause flag) until it is lifted."""
    server.run(f"rm -f {FLAGS}/test-paused-{step}; touch {FLAGS}/test-pause-{step}")


def wait_held(server: Server, step: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Wait (bounded) until the tool holds at ``step``; fails naming pyinfra's exit if not."""
    reached = wait_for(
        lambda: server.run(f"test -e {FLAGS}/test-paused-{step} && echo y; true").strip(),
        timeout=timeout, interval=0.5,
    )  # fmt: skip
    assert reached, f"the tool never reached {step} (pyinfra exited {proc.poll()})"


def new_version(app: dict, version: str) -> None:
    """The app's code says ``version`` (its health check answers it), and so does its label."""
    set_version(app["dir"], version)
    app["version"] = version


def deploy_data(app: dict, **data: str) -> dict[str, str]:
    """The data of a deploy of ``app`` at its version, with more ``data`` keys."""
    return {**apps_data(app["dir"], version=app["version"]), **data}


def start(deploy: str, server: Server, data: dict[str, str]) -> subprocess.Popen:
    """pyinfra in the background (its output, unbuffered, to a file: nothing blocks on a pipe,
    and a test can wait for a line)."""
    args = [str(PYINFRA), "-y", "inventories/sandbox.py", deploy]
    for key, value in data.items():
        args += ["--data", f"{key}={value}"]
    env = {**os.environ, "W2P_SANDBOX_HOSTS": server.name, "PYTHONUNBUFFERED": "1"}
    env.setdefault("WEB2PY_SRC_ZIP", str(ROOT / "build" / "web2py_src.zip"))
    out = open(ROOT / "build" / f"faults-{server.name}.out", "w")  # noqa: SIM115
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
    )


IDLE = (
    # [w]: the pattern must not match the shell that runs pgrep
    "pgrep -f '[w]eb2py-release|[s]erver[.]cli' >/dev/null && echo busy; "
    f"test -e {APP_DIR}/lock && echo locked; true"
)


def tool_idle(server: Server) -> bool:
    """No release tool runs on the server and the app's lock is free."""
    return not server.run(IDLE).strip()


def kill_at(
    server: Server, step: str, deploy: str, data: dict[str, str], allowed: tuple[str, ...] = ()
) -> None:
    """Run ``deploy`` under load, kill pyinfra (by PID, SIGKILL) once the tool is held at
    ``step``, let the tool go on, and wait (bounded) until it is done. No request through
    nginx may fail meanwhile (but for failure kinds in ``allowed``)."""
    hold_at(server, step)
    with under_load(server, allowed):
        proc = start(deploy, server, data)
        try:
            wait_held(server, step, proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            server.run(f"rm -f {FLAGS}/test-pause-{step}")
        assert wait_for(lambda: tool_idle(server), timeout=180, interval=1), "the tool never ended"


def kill_when(server: Server, deploy: str, data: dict[str, str], ready: Callable[[], bool]) -> str:
    """Run ``deploy`` under load, kill pyinfra (SIGKILL) as soon as ``ready()`` (polled every
    20 ms), and wait (bounded) until no tool runs on the server; pyinfra's output."""
    with under_load(server):
        proc = start(deploy, server, data)
        try:
            assert wait_for(ready, timeout=180, interval=0.02), (
                f"the marker never came (pyinfra exited {proc.poll()}): {output(server)[-3000:]}"
            )
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        assert wait_for(lambda: tool_idle(server), timeout=180, interval=1), "the tool never ended"
    return output(server)


@contextlib.contextmanager
def under_load(server: Server, allowed: tuple[str, ...] = ()) -> Iterator[LoadRunner]:
    """Open-loop load on the app's health check through nginx while the block runs; then
    every request must have succeeded, bar failure kinds in ``allowed`` (e.g. "status 503")."""
    url = f"http://{server.address}/notes/default/health"
    runner = LoadRunner(
        url, rate=LOAD_RATE, duration=LOAD_MAX_S, timeout=10, expect_body=b"ok notes"
    )
    with runner:
        try:
            yield runner
        finally:
            runner.stop()
    result = runner.result(60)
    unexpected = {kind: n for kind, n in result.by_kind.items() if kind not in allowed}
    assert result.sent > 0 and not unexpected, result.summary()


def output(server: Server) -> str:
    """What the last pyinfra run started by :func:`start` printed so far."""
    return (ROOT / "build" / f"faults-{server.name}.out").read_text(errors="replace")


def sandbox_entry(server: Server) -> dict:
    """The server's entry in the sandbox's state file (its nspawn pid, its veth)."""
    state_dir = Path(os.environ.get("W2P_SANDBOX_DIR") or ROOT / ".sandbox")
    servers = json.loads((state_dir / "state.json").read_text())["servers"]
    return next(s for s in servers if s["name"] == server.name)


def inside(server: Server, command: str, timeout: float = 60) -> str:
    """A root shell command on the server without SSH: nsenter into the namespaces of the
    container's init (the child of its systemd-nspawn process)."""
    nspawn = sandbox_entry(server)["pid"]
    init = Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split()[0]
    result = subprocess.run(
        ["nsenter", "-t", init, "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c", command],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, f"{command!r}: {result.stderr.strip()}"
    return result.stdout


def in_netns(server: Server, *command: str) -> None:
    """A host command (iptables) in the server's network namespace only."""
    nspawn = sandbox_entry(server)["pid"]
    init = Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split()[0]
    subprocess.run(["nsenter", "-t", init, "-n", "--", *command], check=True, timeout=30)


@contextlib.contextmanager
def slow_ssh(server: Server) -> Iterator[None]:
    """SSH traffic into the server limited to SLOW_LINK (htb on the host end of its veth);
    HTTP and everything else unshaped."""
    veth = sandbox_entry(server)["veth"]
    tc = ["tc", "qdisc", "add", "dev", veth, "root", "handle", "1:", "htb", "default", "10"]
    steps = [
        tc,
        ["tc", "class", "add", "dev", veth, "parent", "1:", "classid", "1:10", "htb",
         "rate", "10gbit"],
        ["tc", "class", "add", "dev", veth, "parent", "1:", "classid", "1:20", "htb",
         "rate", SLOW_LINK, "ceil", SLOW_LINK],
        ["tc", "filter", "add", "dev", veth, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
         "match", "ip", "protocol", "6", "0xff", "match", "ip", "dport", "22", "0xffff",
         "flowid", "1:20"],
    ]  # fmt: skip
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, timeout=30)
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", veth, "root"], capture_output=True, timeout=30)


@contextlib.contextmanager
def link_cut(server: Server) -> Iterator[None]:
    """Packets of SSH (port 22) dropped, both ways, inside the server's network namespace:
    the controller's connection hangs as on a dead link (no reset, no close)."""
    rules = [["INPUT", "-p", "tcp", "--dport", "22"], ["OUTPUT", "-p", "tcp", "--sport", "22"]]
    for rule in rules:
        in_netns(server, "iptables", "-I", *rule, "-j", "DROP")
    try:
        yield
    finally:
        for rule in rules:
            in_netns(server, "iptables", "-D", *rule, "-j", "DROP")


def snapshot(server: Server) -> str:
    """What a run changes on the server: the live release, the last release-log and audit
    lines, the releases, the uploads in the cache folder, the lock."""
    return server.run(
        f"readlink {APP_DIR}/current; tail -n 1 {APP_DIR}/release.log; "
        f"tail -n 1 {APP_DIR}/audit.jsonl; ls {APP_DIR}/releases; ls -A {CACHE_DIR}; "
        f"test -e {APP_DIR}/lock && echo locked; true"
    )


def served_versions(server: Server) -> set[str]:
    """The versions the workers serve: REQUESTS health checks through nginx, 8 at a time."""

    def one(_: int) -> str:
        status, _, body = http_get(server.address, "/notes/default/health")
        assert status == 200, body[:300]
        return body.decode().strip().rsplit(" ", 1)[-1]

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(one, range(REQUESTS)))


def assert_consistent(server: Server, version: str, result: str = "ok") -> None:
    """One version served, and current, release.log and audit.jsonl agree on it; lock free."""
    assert served_versions(server) == {version}
    current = server.run(f"readlink {APP_DIR}/current").strip().rsplit("/", 1)[-1]
    revision = json.loads(server.run(f"cat {APP_DIR}/current/REVISION"))
    assert revision["version"] == version
    last_log = server.run(f"tail -n 1 {APP_DIR}/release.log").split()
    assert last_log[1:] == [current, "live"], last_log
    record = json.loads(server.run(f"tail -n 1 {APP_DIR}/audit.jsonl"))
    assert record["release"] == current and record["version"] == version, record
    assert record["result"] == result, record
    assert "attention" not in record, record
    assert server.run(f"test -e {APP_DIR}/lock && echo held; true").strip() == ""


def rerun(server: Server, app: dict) -> None:
    """The same deploy again succeeds, changing nothing."""
    again = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app))
    assert again.returncode == 0, again.output[-4000:]
    assert again.totals["changed"] == 0, again.output[-4000:]


@pytest.mark.parametrize(
    "step", ["after-unpack", "before-check", "after-switch", "chain-reload", "health-check"]
)
def test_controller_killed_during_a_deploy(server, app, step):
    new_version(app, f"f-{step}-{int(time.time())}")
    kill_at(server, step, "deploys/app_deploy.py", deploy_data(app))
    # the run went on to its end without the controller: the new release is live
    assert_consistent(server, app["version"])
    rerun(server, app)


@pytest.mark.parametrize("step", ["rollback-after-switch", "chain-reload", "health-check"])
def test_controller_killed_mid_rollback(server, app, step):
    previous = json.loads(server.run(f"cat {APP_DIR}/current/REVISION"))
    good = server.run(f"awk '$3==\"live\" {{print $2}}' {APP_DIR}/release.log").split()
    target = [r for r in dict.fromkeys(reversed(good)) if r != previous["release"]][0]
    expected = json.loads(server.run(f"cat {APP_DIR}/releases/{target}/REVISION"))["version"]
    kill_at(server, step, "deploys/rollback.py", {"rollback_app": "notes"})
    assert_consistent(server, expected)
    record = json.loads(server.run(f"tail -n 1 {APP_DIR}/audit.jsonl"))
    assert record["action"] == "rollback" and record["from"] == previous["release"], record
    # the same deploy as before the rollback: the re-run deploys it again, and succeeds
    again = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app))
    assert again.returncode == 0, again.output[-4000:]
    assert_consistent(server, app["version"])


def test_a_rerun_waits_for_the_run_that_lost_its_controller(server, app):
    new_version(app, f"f-wait-{int(time.time())}")
    step = "before-check"
    hold_at(server, step)
    first = start("deploys/app_deploy.py", server, deploy_data(app))
    rerun_proc = None
    try:
        wait_held(server, step, first)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        # the same deploy again, while the first run still holds the lock: it waits for it
        rerun_proc = subprocess.Popen(
            [str(PYINFRA), "-y", "inventories/sandbox.py", "deploys/app_deploy.py",
             *[arg for k, v in deploy_data(app).items() for arg in ("--data", f"{k}={v}")]],
            cwd=ROOT, env={**os.environ, "W2P_SANDBOX_HOSTS": server.name},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        waiting = f"grep -l 'waiting up to' {APP_DIR}/runs/*.log 2>/dev/null; true"
        assert wait_for(lambda: server.run(waiting).strip(), timeout=120, interval=0.5), (
            "the re-run never waited for the lock"
        )
    finally:
        server.run(f"rm -f {FLAGS}/test-pause-{step}")
    out, _ = rerun_proc.communicate(timeout=300)
    assert rerun_proc.returncode == 0, out[-4000:]
    assert wait_for(lambda: tool_idle(server), timeout=120, interval=1)
    # the re-run found the first run's deploy done: "unchanged", naming the live release
    assert_consistent(server, app["version"], result="unchanged")
    records = server.run(f"tail -n 2 {APP_DIR}/audit.jsonl").splitlines()
    assert json.loads(records[0])["result"] == "ok", records
    rerun(server, app)


def served_old_release(server: Server, before: str, version: str) -> None:
    """Nothing changed: the same snapshot (no new release, upload, log or audit line, no
    lock), no tool running, and every worker still serving ``version``."""
    assert tool_idle(server)
    assert snapshot(server) == before
    assert served_versions(server) == {version}


def redeploy(server: Server, app: dict) -> None:
    """The same deploy again goes live, then a third run changes nothing; no upload is left
    in /tmp."""
    again = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app))
    assert again.returncode == 0 and again.totals["changed"] > 0, again.output[-4000:]
    assert_consistent(server, app["version"])
    rerun(server, app)
    assert server.run("ls /tmp | grep '^pyinfra-'; true").strip() == ""


def test_controller_killed_before_the_upload(server, app):
    before, old = snapshot(server), app["version"]
    new_version(app, f"f-pre-{int(time.time())}")
    # pyinfra is loading the deploy (reading facts, building the package): no operation ran
    out = kill_when(
        server, "deploys/app_deploy.py", deploy_data(app),
        lambda: "Loading: deploys/app_deploy.py" in output(server),
    )  # fmt: skip
    assert "Starting operation" not in out, out[-3000:]
    served_old_release(server, before, old)
    redeploy(server, app)


def test_controller_killed_during_the_upload(server, app):
    before, old = snapshot(server), app["version"]
    # an incompressible file makes the upload take seconds on the slowed link
    (app["dir"] / "static" / "blob.bin").write_bytes(os.urandom(BLOB_BYTES))
    new_version(app, f"f-upload-{int(time.time())}")
    partial = "find /tmp -maxdepth 1 -name 'pyinfra-*' -size +64k | head -n 1"
    server.run("rm -f /tmp/pyinfra-*")  # an earlier failed run's partial must not count
    with slow_ssh(server):
        out = kill_when(
            server, "deploys/app_deploy.py", deploy_data(app),
            lambda: bool(inside(server, partial).strip()),
        )  # fmt: skip
    assert "Starting operation: Deploy app notes" in out, out[-3000:]
    # the partial upload is pyinfra's temporary file, never moved into the cache folder
    left = inside(server, f"find /tmp -maxdepth 1 -name 'pyinfra-*' -size -{BLOB_BYTES // 1024}k")
    assert left.strip(), "no partial upload: the kill came after the upload"
    served_old_release(server, before, old)
    redeploy(server, app)


@pytest.fixture(scope="module")
def backup_taken(server, app) -> dict:
    """A backup of the live release with a note in its data: its name, the data's checksums
    (databases, uploads, files) and the version its code answers."""
    add_note(server, "written before the backup")
    run = pyinfra("deploys/backup.py", [server], data={"backup_app": "notes"})
    assert run.returncode == 0, run.output[-4000:]
    names = server.run("ls -t /var/backups/web2py | grep '^notes[.].*[.]zip$'").split()
    return {"name": names[0], "data": server.run(SHARED_DATA), "version": app["version"]}


def assert_restored(server: Server, taken: dict) -> None:
    """The backup's code is live on every worker and its data in shared/ (checksums equal);
    current, release.log and audit.jsonl agree; the lock is free."""
    assert served_versions(server) == {taken["version"]}
    current = server.run(f"readlink {APP_DIR}/current").strip().rsplit("/", 1)[-1]
    revision = json.loads(server.run(f"cat {APP_DIR}/current/REVISION"))
    assert revision["version"] == f"restored from {taken['name']}", revision
    assert server.run(f"tail -n 1 {APP_DIR}/release.log").split()[1:] == [current, "live"]
    record = json.loads(server.run(f"tail -n 1 {APP_DIR}/audit.jsonl"))
    assert record["action"] == "restore" and record["release"] == current, record
    assert record["restored_from"] == taken["name"] and record["restore_data"], record
    assert record["result"] == "ok" and "attention" not in record, record
    assert server.run(f"test -e {APP_DIR}/lock && echo held; true").strip() == ""
    assert server.run(SHARED_DATA) == taken["data"]


@pytest.mark.parametrize("step", ["after-data-restore", "after-switch", "health-check"])
def test_controller_killed_mid_restore_with_data(server, app, backup_taken, step):
    add_note(server, f"written after the backup ({step})")
    assert server.run(SHARED_DATA) != backup_taken["data"]
    data = {"restore_app": "notes", "restore_backup": backup_taken["name"], "restore_data": "true"}
    # a data restore runs with the app down for maintenance: its 503s are by design
    kill_at(server, step, "deploys/restore.py", data, allowed=("status 503",))
    assert_restored(server, backup_taken)
    # the same restore again succeeds (a fresh release from the same backup and data)
    again = pyinfra("deploys/restore.py", [server], data=data)
    assert again.returncode == 0, again.output[-4000:]
    assert_restored(server, backup_taken)
    # and the app's deploy goes live again
    redeploy(server, app)


def cut_while_held(server: Server, proc: subprocess.Popen, step: str) -> None:
    """Once the tool is held at ``step``: cut the link, let the tool go on, and wait (bounded)
    for the server's run and for pyinfra to end, the link still cut."""
    held = f"test -e {FLAGS}/test-paused-{step} && echo y; true"
    wait_for(lambda: proc.poll() is not None or server.run(held).strip(), timeout=180)
    assert server.run(held).strip(), f"the tool never reached {step}: {output(server)[-3000:]}"
    with link_cut(server):
        inside(server, f"rm -f {FLAGS}/test-pause-{step}")
        # the server's run ends on its own, with no link to the controller
        assert wait_for(lambda: not inside(server, IDLE).strip(), timeout=180, interval=1)
        # the controller gives up once the bound is over, without the link
        proc.wait(timeout=RUN_TIMEOUT + 90)


def test_the_link_drops_mid_deploy(server, app):
    new_version(app, f"f-link-{int(time.time())}")
    step = "before-check"
    server.run(f"rm -f {FLAGS}/test-paused-{step}; touch {FLAGS}/test-pause-{step}")
    # the bound must be longer than the lock wait (refused otherwise)
    data = {
        **deploy_data(app),
        "deploy_run_timeout_seconds": str(RUN_TIMEOUT),
        "deploy_lock_wait_seconds": "10",
    }
    # nginx keeps serving while SSH is cut: the load goes on through it all
    with under_load(server):
        proc = start("deploys/app_deploy.py", server, data)
        try:
            cut_while_held(server, proc, step)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            server.run(f"rm -f {FLAGS}/test-pause-{step}")
    out = output(server)
    assert proc.returncode != 0, out[-3000:]
    unknown = [line for line in out.splitlines() if "outcome unknown" in line]
    assert len(unknown) == 1, out[-3000:]
    assert f"{server.name}: notes: deploy outcome unknown" in unknown[0], unknown
    assert "pyinfra INVENTORY deploys/status.py" in unknown[0], unknown
    assert "Traceback" not in out, out[-3000:]
    # once the link is back: the run had finished, status says so, a re-run changes nothing
    assert_consistent(server, app["version"])
    current = server.run(f"readlink {APP_DIR}/current").strip().rsplit("/", 1)[-1]
    status = pyinfra("deploys/status.py", [server])
    assert status.returncode == 0, status.output[-3000:]
    line = next(ln for ln in status.output.splitlines() if f"{server.name}: notes:" in ln)
    assert f"release {current} ({app['version']})" in line and "lock: free" in line, line
    rerun(server, app)


def test_the_link_drops_during_the_upload(server, app):
    before, old = snapshot(server), app["version"]
    (app["dir"] / "static" / "blob.bin").write_bytes(os.urandom(BLOB_BYTES))
    new_version(app, f"f-upload-link-{int(time.time())}")
    data = {
        **deploy_data(app),
        "deploy_run_timeout_seconds": str(RUN_TIMEOUT),
        "deploy_lock_wait_seconds": "10",
    }
    partial = "find /tmp -maxdepth 1 -name 'pyinfra-*' -size +64k | head -n 1"
    server.run("rm -f /tmp/pyinfra-*")  # an earlier failed run's partial must not count
    with under_load(server), slow_ssh(server):
        proc = start("deploys/app_deploy.py", server, data)
        try:
            wait_for(
                lambda: proc.poll() is not None or inside(server, partial).strip(),
                timeout=180, interval=0.05,
            )  # fmt: skip
            assert inside(server, partial).strip(), f"no upload: {output(server)[-3000:]}"
            with link_cut(server):
                # the controller gives up once the bound is over, without the link
                proc.wait(timeout=RUN_TIMEOUT + 90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    out = output(server)
    assert proc.returncode != 0, out[-3000:]
    lost = [line for line in out.splitlines() if "deploy not started" in line]
    assert len(lost) == 1, out[-3000:]
    assert lost[0].strip().startswith(f"{server.name}: notes: deploy not started: "), lost
    assert "the live release is unchanged" in lost[0] and "Traceback" not in out, out[-3000:]
    # once the link is back: nothing changed, and the deploy goes through
    served_old_release(server, before, old)
    redeploy(server, app)
