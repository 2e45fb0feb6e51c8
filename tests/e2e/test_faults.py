"""Faults: the controller (the pyinfra process) is killed at a given step of a deploy or a
rollback, on one sandbox server running the real framework. After each, the server must end in
one consistent state: one version served by every worker, ``current``, ``release.log`` and
``audit.jsonl`` agreeing on it, the lock free, and a re-run of the same deploy succeeding.

The timing is deterministic: the release tool's test-only pause hook (server.detach.pause)
holds the run at a named step while ``/etc/web2py/test-pause-<step>`` exists and says it got
there with ``/etc/web2py/test-paused-<step>``; the test kills pyinfra then, and lifts the flag.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .sandboxlib import PYINFRA, ROOT, Server, http_get, pyinfra, sandbox_down, sandbox_up, wait_for
from .test_app_deploy import apps_data, set_version

PREFIX = "w2pf"
APP_DIR = "/srv/web2py-apps/notes"
FLAGS = "/etc/web2py"
REQUESTS = 48  # through nginx, 8 at a time, so that every worker answers some


@pytest.fixture(scope="module")
def server(web2py_zip, e2e_ready):
    """One sandbox server with web2py installed (W2P_KEEP_SANDBOX=1 keeps it afterwards)."""
    (started,) = sandbox_up(PREFIX, 1)
    env = {
        "WEB2PY_ADMIN_PASSWORD": "adm-" + secrets.token_urlsafe(18),
        "WEB2PY_SRC_ZIP": web2py_zip,
    }
    run = pyinfra("deploys/install_web2py.py", [started], env=env)
    assert run.returncode == 0, run.output[-6000:]
    yield started
    if os.environ.get("W2P_KEEP_SANDBOX") != "1":
        sandbox_down([started.name])


@pytest.fixture(scope="module")
def app(server, tmp_path_factory) -> dict:
    """The example app, deployed once (version "f-0"); ``version`` is the one last deployed."""
    app_dir = tmp_path_factory.mktemp("faults") / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
    state = {"dir": app_dir}
    new_version(state, "f-0")
    first = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(state))
    assert first.returncode == 0, first.output[-4000:]
    return state


def new_version(app: dict, version: str) -> None:
    """The app's code says ``version`` (its health check answers it), and so does its label."""
    set_version(app["dir"], version)
    app["version"] = version


def deploy_data(app: dict) -> dict[str, str]:
    return apps_data(app["dir"], version=app["version"])


def start(deploy: str, server: Server, data: dict[str, str]) -> subprocess.Popen:
    """pyinfra in the background (its output to a file, so nothing blocks on a pipe)."""
    args = [str(PYINFRA), "-y", "inventories/sandbox.py", deploy]
    for key, value in data.items():
        args += ["--data", f"{key}={value}"]
    env = {**os.environ, "W2P_SANDBOX_HOSTS": server.name}
    env.setdefault("WEB2PY_SRC_ZIP", str(ROOT / "build" / "web2py_src.zip"))
    out = open(ROOT / "build" / f"faults-{server.name}.out", "w")  # noqa: SIM115
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
    )


def tool_idle(server: Server) -> bool:
    """No release tool runs on the server and the app's lock is free."""
    out = server.run(
        # [w]: the pattern must not match the shell that runs pgrep
        "pgrep -f '[w]eb2py-release|[s]erver[.]cli' >/dev/null && echo busy; "
        f"test -e {APP_DIR}/lock && echo locked; true"
    )
    return not out.strip()


def kill_at(server: Server, step: str, deploy: str, data: dict[str, str]) -> None:
    """Run ``deploy``, kill pyinfra (by PID, SIGKILL) once the tool is held at ``step``, let
    the tool go on, and wait (bounded) until it is done."""
    server.run(f"rm -f {FLAGS}/test-paused-{step}; touch {FLAGS}/test-pause-{step}")
    proc = start(deploy, server, data)
    try:
        reached = wait_for(
            lambda: server.run(f"test -e {FLAGS}/test-paused-{step} && echo y; true").strip(),
            timeout=180, interval=0.5,
        )  # fmt: skip
        assert reached, f"the tool never reached {step} (pyinfra exited {proc.poll()})"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        server.run(f"rm -f {FLAGS}/test-pause-{step}")
    assert wait_for(lambda: tool_idle(server), timeout=180, interval=1), "the tool never ended"


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


@pytest.mark.parametrize("step", ["after-unpack", "before-check", "after-switch", "chain-reload"])
def test_controller_killed_during_a_deploy(server, app, step):
    new_version(app, f"f-{step}-{int(time.time())}")
    kill_at(server, step, "deploys/app_deploy.py", deploy_data(app))
    # the run went on to its end without the controller: the new release is live
    assert_consistent(server, app["version"])
    rerun(server, app)


def test_controller_killed_mid_rollback(server, app):
    previous = json.loads(server.run(f"cat {APP_DIR}/current/REVISION"))
    good = server.run(f"awk '$3==\"live\" {{print $2}}' {APP_DIR}/release.log").split()
    target = [r for r in dict.fromkeys(reversed(good)) if r != previous["release"]][0]
    expected = json.loads(server.run(f"cat {APP_DIR}/releases/{target}/REVISION"))["version"]
    kill_at(server, "rollback-after-switch", "deploys/rollback.py", {"rollback_app": "notes"})
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
    server.run(f"rm -f {FLAGS}/test-paused-{step}; touch {FLAGS}/test-pause-{step}")
    first = start("deploys/app_deploy.py", server, deploy_data(app))
    rerun_proc = None
    try:
        assert wait_for(
            lambda: server.run(f"test -e {FLAGS}/test-paused-{step} && echo y; true").strip(),
            timeout=180, interval=0.5,
        ), "the tool never reached the pre-switch check"  # fmt: skip
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
