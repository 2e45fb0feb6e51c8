"""Faults: the release tool itself dies (SIGKILL of every release-tool process on the server, as
the OOM killer or an operator's ``kill -9`` would) at a step of a deploy. Its own work stops
there: ``current`` switched but never confirmed, workers not (all) reloaded, the lock held by
a dead process, maybe the app left down. Until the next run, ``deploys/status.py`` must say so;
the next run that takes the lock (a deploy, or ``deploys/unlock.py``) first undoes the dead
run (action "recover" in the audit log): one version on every worker again, and the logs
agreeing with it.

One sandbox server, real framework; timing by the tool's test-only pause hook (see
test_faults.py).
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from .sandboxlib import Server, http_get, installed_server, pyinfra, wait_for
from .test_faults import (
    APP_DIR,
    FLAGS,
    assert_consistent,
    deploy_data,
    example_app,
    hold_at,
    new_version,
    rerun,
    served_versions,
    start,
    tool_idle,
    wait_held,
)

PREFIX = "w2pq"  # its own (w2pf is test_faults')
HEALTH = "/notes/default/health"


@pytest.fixture(scope="module")
def server(web2py_zip, e2e_ready):
    """One sandbox server with web2py installed (W2P_KEEP_SANDBOX=1 keeps it afterwards)."""
    yield from installed_server(PREFIX, web2py_zip)


@pytest.fixture(scope="module")
def app(server, tmp_path_factory) -> dict:
    return example_app(server, tmp_path_factory, "tool-faults", "t-0")


def kill_tool_at(server: Server, step: str, data: dict[str, str]) -> None:
    """Run the deploy; once the tool is held at ``step``, SIGKILL every release-tool process
    on the server (the detached run and the process pyinfra talks to), then lift the flag."""
    hold_at(server, step)
    proc = start("deploys/app_deploy.py", server, data)
    try:
        wait_held(server, step, proc)
        server.run("pkill -KILL -f '[w]eb2py-release|[s]erver[.]cli' ; true")
        assert wait_for(lambda: tool_idle_but_locked(server), timeout=30, interval=0.5)
        assert proc.wait(timeout=120) != 0  # the controller saw its run die
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        server.run(f"rm -f {FLAGS}/test-pause-{step} {FLAGS}/test-paused-{step}")


def tool_idle_but_locked(server: Server) -> bool:
    """No release tool runs any more, and the lock is still there (its holder is dead)."""
    busy = "pgrep -f '[w]eb2py-release|[s]erver[.]cli' >/dev/null && echo busy; true"
    out = server.run(busy).strip()
    return not out and server.run(f"test -e {APP_DIR}/lock && echo y; true").strip() == "y"


def status_line(server: Server) -> str:
    run = pyinfra("deploys/status.py", [server])
    assert run.returncode == 0, run.output[-3000:]
    lines = [line for line in run.output.splitlines() if ": notes: " in line]
    assert lines, run.output[-3000:]
    return lines[-1]


def last_records(server: Server, n: int) -> list[dict]:
    return [json.loads(r) for r in server.run(f"tail -n {n} {APP_DIR}/audit.jsonl").splitlines()]


def test_tool_killed_after_its_switch_the_next_deploy_undoes_it_then_deploys(server, app):
    before = app["version"]
    new_version(app, f"t-switch-{int(time.time())}")
    kill_tool_at(server, "after-switch", deploy_data(app))
    # current names the new release and the workers were never reloaded: web2py runs the new
    # controllers at once while modules stay cached per worker, so they may serve either
    # version now (observed: both). Status must not be silent about it.
    assert served_versions(server) <= {before, app["version"]}
    line = status_line(server)
    assert "NEEDS ATTENTION" in line and "switched to by a run that died" in line, line
    assert "is DEAD" in line, line
    # the same deploy again: takes the dead run's lock over, undoes it, then deploys
    again = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app))
    assert again.returncode == 0, again.output[-4000:]
    assert_consistent(server, app["version"])
    recovered, deployed = last_records(server, 2)
    assert recovered["action"] == "recover" and recovered["result"] == "ok", recovered
    assert recovered["took_over_lock_of"]["pid"], recovered
    assert deployed["action"] == "deploy" and deployed["result"] == "ok", deployed
    assert "NEEDS ATTENTION" not in status_line(server)
    rerun(server, app)


def test_tool_killed_in_the_chain_reload_under_maintenance_unlock_recovers(server, app):
    before = app["version"]
    new_version(app, f"t-reload-{int(time.time())}")
    data = deploy_data(app)
    spec = json.loads(data["deploy_apps"])
    spec["notes"].update(maintenance=True, notice_seconds=0)
    data["deploy_apps"] = json.dumps(spec)
    kill_tool_at(server, "chain-reload", data)
    # the dead run left the app down for maintenance and its lock held
    assert http_get(server.address, HEALTH)[0] == 503
    assert "is DEAD" in status_line(server)
    unlock = pyinfra("deploys/unlock.py", [server], data={"unlock_app": "notes"})
    assert unlock.returncode == 0, unlock.output[-3000:]
    assert wait_for(lambda: tool_idle(server), timeout=60, interval=0.5)
    # undone: the last confirmed release on every worker, the window lifted, the logs agree
    assert_consistent(server, before)
    assert last_records(server, 1)[0]["action"] == "recover"
    assert "NEEDS ATTENTION" not in status_line(server)
    # and the deploy, run again, goes through
    again = pyinfra("deploys/app_deploy.py", [server], data=data)
    assert again.returncode == 0, again.output[-4000:]
    assert_consistent(server, app["version"])


def test_an_adoption_failing_after_its_switch_puts_the_plain_folder_back(server, app, tmp_path):
    """A plain app folder (as the fabfile or an install leaves it) is adopted by its first
    deploy; when that release fails after the switch, there is no release to go back to: the
    folder itself must serve again, with its data as it was, and the logs must say so."""
    root_apps = "/home/www-data/web2py/applications"
    plain, base = f"{root_apps}/adoptme", "/srv/web2py-apps/adoptme"
    server.run(
        f"rm -rf {plain} && cp -rL {APP_DIR}/current {plain} && rm -f {plain}/REVISION "
        f"{plain}/MANIFEST && sed -i \"s/^VERSION = .*/VERSION = 'plain'/\" "
        f"{plain}/modules/notes_util.py && chown -R www-data:www-data {plain}"
    )
    assert wait_for(
        lambda: http_get(server.address, "/adoptme/default/health")[2] == b"ok notes plain",
        timeout=60, interval=1,
    )  # fmt: skip
    data_sum = f"cd {plain}/databases && find . -type f -name '*.sqlite' | sort | xargs sha256sum"
    before = server.run(data_sum)
    local = tmp_path / "adoptme"
    shutil.copytree(app["dir"], local)
    new_version({"dir": local}, "adopted-1")
    spec = {
        "path": str(local), "health_path": "/adoptme/default/health", "health_text": "ok notes",
        "hooks": {"after_switch": ["echo broken after the switch >&2; exit 7"]},
    }  # fmt: skip
    run = pyinfra("deploys/app_deploy.py", [server], data={"deploy_apps": json.dumps(
        {"adoptme": spec})})  # fmt: skip
    assert run.returncode != 0, run.output[-3000:]
    assert "after_switch hook" in run.output and "exited 7" in run.output, run.output[-3000:]
    assert "adoptme: the app folder is back in place" in run.output, run.output[-3000:]
    # the plain folder serves again, on every worker, with its data untouched
    assert server.run(f"test -d {plain} && test ! -L {plain} && echo plain").strip() == "plain"
    for _ in range(24):
        assert http_get(server.address, "/adoptme/default/health")[2] == b"ok notes plain"
    assert server.run(data_sum) == before
    # nothing claims a release is live: no current, the log and the audit say failed
    assert server.run(f"test -e {base}/current && echo current; true").strip() == ""
    assert server.run(f"tail -n 1 {base}/release.log").split()[2] == "failed"
    record = json.loads(server.run(f"tail -n 1 {base}/audit.jsonl"))
    assert record["result"].startswith("failed") and "back in place" in record["result"], record
    assert server.run(f"test -e {base}/lock && echo held; true").strip() == ""
    assert server.run(f"ls -a {root_apps} | grep -c pre-releases; true").strip() == "0"
