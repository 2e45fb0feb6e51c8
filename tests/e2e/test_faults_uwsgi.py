"""Faults of the app server: uWSGI stopped when a deploy starts, its master killed (or stopped)
during the chain reload, and a release whose health check times out. On one sandbox server
running the real framework. After each, the server must be in one consistent state: one version
served by every worker (asked through nginx, many requests at a time), ``current``,
``release.log`` and ``audit.jsonl`` agreeing on it, the lock free and no release tool running;
when the tool cannot get there, it says ATTENTION in one line and the audit record says so.

Timing is deterministic: the release tool's test-only pause hook (server.detach.pause) holds a
run at the chain reload while ``/etc/web2py/test-pause-chain-reload`` exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.loadgen import LoadRunner

from .sandboxlib import (
    PYINFRA,
    ROOT,
    Server,
    http_get,
    installed_server,
    pyinfra,
    wait_bounded,
    wait_for,
)
from .test_app_deploy import apps_data, set_version
from .test_faults import deploy_data, example_app, new_version

PREFIX = "w2pu"
APP_DIR = "/srv/web2py-apps/notes"
UNIT = "web2py-uwsgi"  # templates/web2py-uwsgi.service.j2
FLAGS = "/etc/web2py"
REQUESTS = 48  # through nginx, 8 at a time, so that every worker answers some
HEALTH = "/notes/default/health"


@pytest.fixture(scope="module")
def server(web2py_zip, e2e_ready):
    """One sandbox server with web2py installed (W2P_KEEP_SANDBOX=1 keeps it afterwards)."""
    yield from installed_server(PREFIX, web2py_zip)


@pytest.fixture(scope="module")
def app(server, tmp_path_factory) -> dict:
    """The example app, deployed once (version "u-0"); ``version`` is the one last deployed."""
    return example_app(server, tmp_path_factory, "faults-uwsgi", "u-0")


@pytest.fixture
def uwsgi_running(server):
    """Whatever a test did to uWSGI, it runs again afterwards (the next test needs it)."""
    yield
    server.run(f"systemctl start {UNIT}", timeout=120)


def deploy(server: Server, app: dict, **data: str):
    return pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app, **data), timeout=600)


def start(server: Server, data: dict[str, str]) -> subprocess.Popen:
    """app_deploy in the background (its output to a file, so nothing blocks on a pipe)."""
    args = [str(PYINFRA), "-y", "inventories/sandbox.py", "deploys/app_deploy.py"]
    for key, value in data.items():
        args += ["--data", f"{key}={value}"]
    env = {**os.environ, "W2P_SANDBOX_HOSTS": server.name}
    env.setdefault("WEB2PY_SRC_ZIP", str(ROOT / "build" / "web2py_src.zip"))
    out = open(ROOT / "build" / f"faults-{server.name}.out", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
    )
    proc.output_file = out  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    """Wait (bounded) for a background run; its whole output."""
    wait_bounded(proc, timeout)
    out = proc.output_file  # type: ignore[attr-defined]
    out.seek(0)
    text = out.read()
    out.close()
    return text


def tool_idle(server: Server) -> bool:
    """No release tool runs on the server and the app's lock is free."""
    out = server.run(
        # [w]: the pattern must not match the shell that runs pgrep
        "pgrep -f '[w]eb2py-release|[s]erver[.]cli' >/dev/null && echo busy; "
        f"test -e {APP_DIR}/lock && echo locked; true"
    )
    return not out.strip()


def served_versions(server: Server) -> set[str]:
    """The versions the workers serve: REQUESTS health checks through nginx, 8 at a time
    (uWSGI hands each to a free worker, so with 4 workers every one answers some)."""

    def one(_: int) -> str:
        status, _, body = http_get(server.address, HEALTH)
        assert status == 200, (status, body[:300])
        return body.decode().strip().rsplit(" ", 1)[-1]

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(one, range(REQUESTS)))


def main_pid(server: Server) -> int:
    return int(server.run(f"systemctl show -p MainPID --value {UNIT}").strip() or 0)


def state(server: Server) -> dict:
    """What a run may change: current, the releases, the logs, the backups, the lock."""
    return {
        "current": server.run(f"readlink {APP_DIR}/current").strip(),
        "releases": server.run(f"ls {APP_DIR}/releases").split(),
        "release.log": server.run(f"cat {APP_DIR}/release.log"),
        "backups": server.run("ls /var/backups/web2py").split(),
        "lock": server.run(f"test -e {APP_DIR}/lock && echo held; true").strip(),
    }


def live_version(server: Server) -> str:
    """The version of the release ``current`` names."""
    return json.loads(server.run(f"cat {APP_DIR}/current/REVISION"))["version"]


def last_audit(server: Server) -> dict:
    return json.loads(server.run(f"tail -n 1 {APP_DIR}/audit.jsonl"))


def assert_logs_agree(server: Server, version: str) -> dict:
    """current, the last release.log line and the last audit record name the release that
    serves ``version``; the lock is free and no tool runs. The last audit record."""
    current = server.run(f"readlink {APP_DIR}/current").strip().rsplit("/", 1)[-1]
    revision = json.loads(server.run(f"cat {APP_DIR}/current/REVISION"))
    assert revision["version"] == version, revision
    last_log = server.run(f"tail -n 1 {APP_DIR}/release.log").split()
    assert last_log[1:] == [current, "live"], last_log
    record = last_audit(server)
    live = record.get("release") if record["result"] == "ok" else record.get("result", "")
    assert current in live, (current, record)
    assert tool_idle(server), "a release tool still runs or the lock is held"
    return record


def error_lines(output: str, *words: str) -> list[str]:
    """The lines of pyinfra's output that hold every one of ``words``."""
    return [line for line in output.splitlines() if all(w in line for w in words)]


def test_uwsgi_stopped_when_the_deploy_starts(server, app, uwsgi_running):
    """A stopped app server is the operator's (or an outage's) state: the deploy does not
    start it behind their back; it fails before anything changes, saying why in one line."""
    live = live_version(server)
    server.run(f"systemctl stop {UNIT}", timeout=120)
    before = state(server)
    audit_before = server.run(f"wc -l < {APP_DIR}/audit.jsonl").strip()
    new_version(app, f"u-stopped-{int(time.time())}")
    run = deploy(server, app)
    assert run.returncode != 0, run.output[-3000:]
    said = error_lines(run.output, "uWSGI is not running")
    assert said and "webserver_action=start" in said[0], run.output[-3000:]
    assert "ATTENTION" not in run.output, run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    # nothing changed: no release unpacked, no backup, no release.log line, lock free
    assert state(server) == before
    assert server.run(f"systemctl is-active {UNIT}; true").strip() != "active"
    # the refusal is audited, naming the cause; the app did not change
    record = last_audit(server)
    assert int(server.run(f"wc -l < {APP_DIR}/audit.jsonl").strip()) == int(audit_before) + 1
    assert record["result"].startswith("failed") and "uWSGI is not running" in record["result"]
    assert "attention" not in record, record
    assert tool_idle(server)
    # once started again, the old version serves on every worker; the same deploy then works
    server.run(f"systemctl start {UNIT}", timeout=120)
    assert wait_for(lambda: http_get(server.address, HEALTH)[0] == 200, timeout=60)
    assert served_versions(server) == {live}
    again = deploy(server, app)
    assert again.returncode == 0, again.output[-4000:]
    assert served_versions(server) == {app["version"]}
    assert assert_logs_agree(server, app["version"])["result"] == "ok"


def hold_at_chain_reload(server: Server, data: dict[str, str]) -> subprocess.Popen:
    """Start a deploy and return once the tool is held right after asking for the chain
    reload (the new release is ``current`` by then)."""
    step = "chain-reload"
    server.run(f"rm -f {FLAGS}/test-paused-{step}; touch {FLAGS}/test-pause-{step}")
    proc = start(server, data)
    reached = wait_for(
        lambda: server.run(f"test -e {FLAGS}/test-paused-{step} && echo y; true").strip()
        or proc.poll() is not None,
        timeout=300, interval=0.5,
    )  # fmt: skip
    if not reached or proc.poll() is not None:
        server.run(f"rm -f {FLAGS}/test-pause-{step}")
        raise AssertionError(f"the tool never reached {step}:\n{finish(proc)[-3000:]}")
    return proc


def test_uwsgi_master_killed_during_the_chain_reload(server, app, uwsgi_running):
    """SIGKILL of the master: systemd restarts the unit (Restart=on-failure), every new
    worker loads ``current`` (the new release); the tool's wait sees every worker replaced,
    the health check passes: the new release is live, one version, the logs agree."""
    assert "Restart=on-failure" in server.run(f"systemctl cat {UNIT}")
    new_version(app, f"u-kill-{int(time.time())}")
    master = main_pid(server)
    proc = hold_at_chain_reload(server, deploy_data(app))
    try:
        server.run(f"kill -KILL {master}")
    finally:
        server.run(f"rm -f {FLAGS}/test-pause-chain-reload")  # the tool goes on at once
    output = finish(proc)
    assert proc.returncode == 0, output[-4000:]
    assert main_pid(server) not in (0, master)  # it was restarted by systemd
    assert "ATTENTION" not in output, output[-3000:]
    assert served_versions(server) == {app["version"]}
    record = assert_logs_agree(server, app["version"])
    assert record["result"] == "ok" and "attention" not in record, record


def test_uwsgi_stopped_during_the_chain_reload(server, app, uwsgi_running):
    """systemctl stop in the middle of the chain reload: nothing restarts it, so no worker can
    be told to serve one version. The tool sees the unit stopped and gives up at once (not at
    the reload bound), switches back, cannot reload either, and says so: one ATTENTION line,
    the audit record carries "attention", status shows it; current and release.log name the
    previous release, which serves on every worker once uWSGI starts."""
    live = live_version(server)
    live_release = server.run(f"readlink {APP_DIR}/current").strip().rsplit("/", 1)[-1]
    new_version(app, f"u-stop-{int(time.time())}")
    # a reload bound the run must not need: systemd says the unit is stopped, the tool
    # gives up at once rather than at the bound
    proc = hold_at_chain_reload(server, deploy_data(app, deploy_reload_timeout_seconds="120"))
    try:
        server.run(f"systemctl stop {UNIT}", timeout=120)
    finally:
        server.run(f"rm -f {FLAGS}/test-pause-chain-reload")
    started = time.monotonic()
    output = finish(proc)
    took = time.monotonic() - started
    assert proc.returncode != 0, output[-4000:]
    attention = error_lines(output, "ATTENTION")
    assert len(attention) == 1, output[-4000:]
    assert "uWSGI" in attention[0] and "webserver_action" in attention[0], attention
    assert took < 60, f"the tool took {took:.0f} s to give up"
    assert "uWSGI stopped during the chain reload (web2py-uwsgi is inactive)" in output
    assert server.run(f"readlink {APP_DIR}/current").strip().endswith(live_release)
    last_log = server.run(f"tail -n 2 {APP_DIR}/release.log").splitlines()
    assert last_log[0].split()[2] == "failed" and last_log[1].split()[1:] == [live_release, "live"]
    record = last_audit(server)
    assert record["result"].startswith("failed") and live_release in record["result"], record
    assert "attention" in record and "uWSGI" in record["attention"], record
    assert tool_idle(server)
    status = pyinfra("deploys/status.py", [server], data=deploy_data(app))
    assert "NEEDS ATTENTION" in status.output, status.output[-3000:]
    # the operator starts uWSGI: the previous release serves on every worker
    server.run(f"systemctl start {UNIT}", timeout=120)
    assert wait_for(lambda: http_get(server.address, HEALTH)[0] == 200, timeout=60)
    assert served_versions(server) == {live}


def slow_health(app_dir, seconds: int) -> None:
    """The release's health check hangs ``seconds`` for the release tool's check through
    nginx (a client on the server itself, 127.0.0.1), the way a release hangs on a dependency
    only production has; the pre-switch check (its own uWSGI, no client address) and every
    other client get their answer at once, so the release gets as far as the switch."""
    controller = app_dir / "controllers" / "default.py"
    text = controller.read_text()
    hook = (
        "    if request.env.remote_addr == '127.0.0.1':\n"
        f"        import time; time.sleep({seconds})\n"
    )
    marker = "    session.forget(response)\n    db.executesql('SELECT 1')\n"
    assert marker in text
    controller.write_text(text.replace(marker, hook + marker, 1))


def test_a_health_check_that_times_out_switches_back(server, app, uwsgi_running, tmp_path):
    """The new release's health check hangs past the timeout: the tool says so in one line
    ("health check" … "timed out"), switches back and reloads, every worker serves the old
    version, the logs agree, the lock is free. Under open-loop load on the same health path
    (from another client, which the failed release answers at once), no request fails through
    the whole run: the switch, the reloads and the switch back lose none, and the worker held
    by the hanging check is replaced only once it is done."""
    live = live_version(server)
    live_release = server.run(f"readlink {APP_DIR}/current").strip().rsplit("/", 1)[-1]
    bad = tmp_path / "notes"
    shutil.copytree(app["dir"], bad)
    slow_health(bad, 20)
    set_version(bad, "u-slow")
    data = {
        **apps_data(bad, version="u-slow"),
        "deploy_check_timeout_seconds": "5",
    }
    url = f"http://{server.address}{HEALTH}"
    started = time.monotonic()
    with LoadRunner(url, rate=40, duration=40, timeout=5, expect_body=b"ok notes") as load:
        time.sleep(1)
        run = pyinfra("deploys/app_deploy.py", [server], data=data, timeout=600)
        result = load.result(120)
    took = time.monotonic() - started
    assert run.returncode != 0, run.output[-3000:]
    said = error_lines(run.output, "health check", "timed out")
    assert said and "rolled back to" in said[0], run.output[-3000:]
    assert "ATTENTION" not in run.output and "Traceback" not in run.output, run.output[-3000:]
    assert result.sent >= 1500 and result.failed == 0, result.summary()
    assert served_versions(server) == {live}
    assert server.run(f"readlink {APP_DIR}/current").strip().endswith(live_release)
    assert_logs_agree(server, live)
    last_log = server.run(f"tail -n 2 {APP_DIR}/release.log").splitlines()
    assert last_log[0].split()[2] == "failed", last_log
    record = last_audit(server)
    assert record["result"].startswith("failed") and "timed out" in record["result"], record
    assert "attention" not in record, record
    print(f"health-check timeout run: {took:.1f} s; load {result.summary()}")
