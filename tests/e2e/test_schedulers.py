"""web2py schedulers (web2py-scheduler@<app>) on a server of their own: install starts and checks
them, app deploys and rollbacks restart them gracefully with the new release's code.

A server of its own (prefix w2pk), so that its scheduler units and tasks never show up in the
other files' servers (webserver status, the cycles). The web2py is the e2e one: the gluon test
distribution by default (web2py's real scheduler), or the stand-in's scheduler with
W2P_TEST_FRAMEWORK=standin.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse

import pytest

from .sandboxlib import ROOT, http_get, pyinfra, sandbox_down, sandbox_up, wait_for
from .test_app_deploy import apps_data, set_version

PREFIX = "w2pk"
UNIT = "web2py-scheduler@notes.service"
SCHEDULERS = {"web2py_schedulers": '["notes"]'}
SLOW = 25  # seconds the task that a deploy must wait for runs


@pytest.fixture(scope="module")
def server(web2py_zip, e2e_ready):
    (started,) = sandbox_up(PREFIX, 1)
    yield started
    sandbox_down([started.name])


@pytest.fixture(scope="module")
def installed(server, admin_password, web2py_zip):
    """install_web2py with a scheduler for notes, twice."""
    env = {"WEB2PY_ADMIN_PASSWORD": admin_password, "WEB2PY_SRC_ZIP": web2py_zip}
    first = pyinfra("deploys/install_web2py.py", [server], data=SCHEDULERS, env=env)
    assert first.returncode == 0, first.output[-6000:]
    second = pyinfra("deploys/install_web2py.py", [server], data=SCHEDULERS, env=env)
    assert second.returncode == 0, second.output[-6000:]
    return {"server": server, "first": first, "second": second, "env": env}


@pytest.fixture(scope="module")
def app(tmp_path_factory, installed):
    app_dir = tmp_path_factory.mktemp("apps") / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
    return {"dir": app_dir, "server": installed["server"], "env": installed["env"]}


def unit(server) -> dict[str, str]:
    text = server.run(
        f"systemctl show {UNIT} -p ActiveState -p SubState -p MainPID -p UnitFileState"
    )
    return dict(line.split("=", 1) for line in text.split())


def tasks(server) -> dict:
    status, _, body = http_get(server.address, "/notes/default/tasks.json")
    assert status == 200, body[:500]
    return json.loads(body)


def queue(server, label: str, seconds: float = 0) -> int:
    form = urllib.parse.urlencode({"label": label, "seconds": seconds}).encode()
    status, _, body = http_get(
        server.address, "/notes/default/queue_task.json", method="POST", body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert status == 200, body[:500]
    return json.loads(body)["id"]


def task(server, label: str) -> dict:
    return next(t for t in tasks(server)["queue"] if t["label"] == label)


def logged(server, label: str) -> list[str]:
    """The VERSION of each row the task labelled ``label`` wrote."""
    return [row["version"] for row in tasks(server)["log"] if row["task"] == label]


def worker_of(server) -> str:
    """web2py's name for the unit's worker: <hostname>#<pid>."""
    return f"{server.run('hostname').strip()}#{unit(server)['MainPID']}"


def last_audit(server) -> dict:
    return json.loads(server.run("tail -n 1 /srv/web2py-apps/notes/audit.jsonl"))


def deploy(app):
    run = pyinfra("deploys/app_deploy.py", [app["server"]], data=apps_data(app["dir"]))
    assert run.returncode == 0, run.output[-4000:]
    return run


def test_install_starts_the_scheduler_and_a_second_run_changes_nothing(installed):
    server = installed["server"]
    assert installed["first"].totals["changed"] > 0
    assert installed["second"].totals["changed"] == 0, installed["second"].output[-4000:]
    state = unit(server)
    assert (state["ActiveState"], state["SubState"], state["UnitFileState"]) == (
        "active", "running", "enabled",
    ), state  # fmt: skip
    assert "Check the scheduler for notes keeps running" in installed["first"].output
    # the worker is web2py's: it beats in the app's scheduler tables
    assert wait_for(
        lambda: {"name": worker_of(server), "status": "ACTIVE"} in tasks(server)["workers"], 30
    ), tasks(server)


def test_a_task_queued_before_a_deploy_runs_after_it_with_the_new_code(app):
    server = app["server"]
    # adopts the installed app (1.0.0): its scheduler stops while the app is down for the copy
    # of its data, and starts after the switch
    first = deploy(app)
    assert f"notes: scheduler {UNIT} restarted in" in first.output, first.output[-3000:]
    assert last_audit(server)["schedulers"][UNIT]["seconds"] < 30  # no task waited for
    old_worker = worker_of(server)
    # a slow task running while the deploy comes, and one queued behind it
    queue(server, "slow", SLOW)
    assert wait_for(lambda: task(server, "slow")["status"] == "RUNNING", 60), tasks(server)
    queue(server, "after")
    set_version(app["dir"], "2.0.0")
    started = time.monotonic()
    run = deploy(app)
    took = time.monotonic() - started
    assert f"notes: scheduler {UNIT} restarted in" in run.output, run.output[-3000:]
    audit = last_audit(server)
    assert audit["result"] == "ok" and audit["schedulers"][UNIT]["ok"] is True, audit
    assert http_get(server.address, "/notes/default/health")[2] == b"ok notes 2.0.0"
    # the running task was let finish (not stopped) by the old worker, with the old code ...
    slow = task(server, "slow")
    assert slow["status"] == "COMPLETED", slow
    assert slow["runs"] == [{"status": "COMPLETED", "worker": old_worker}], slow
    assert logged(server, "slow") == ["1.0.0"]
    # ... and the queued one waited for the new worker, which runs the new release's code
    new_worker = worker_of(server)
    assert new_worker != old_worker
    assert unit(server)["SubState"] == "running"
    assert wait_for(lambda: task(server, "after")["status"] == "COMPLETED", 60), (
        tasks(server), took,
    )  # fmt: skip
    assert task(server, "after")["runs"] == [{"status": "COMPLETED", "worker": new_worker}]
    assert logged(server, "after") == ["2.0.0"]
    assert worker_of(server) == new_worker  # and it keeps running


def test_a_rollback_restarts_the_scheduler_with_the_previous_code(app):
    server = app["server"]
    before = worker_of(server)
    run = pyinfra("deploys/rollback.py", [server], data={"rollback_app": "notes"})
    assert run.returncode == 0, run.output[-4000:]
    assert f"notes: scheduler {UNIT} restarted in" in run.output, run.output[-3000:]
    assert last_audit(server)["schedulers"][UNIT]["ok"] is True
    assert worker_of(server) != before
    queue(server, "after-rollback")
    assert wait_for(lambda: logged(server, "after-rollback"), 60), tasks(server)
    assert logged(server, "after-rollback") == ["1.0.0"]


def test_a_restore_restarts_the_scheduler_too(app):
    server = app["server"]
    before = worker_of(server)
    run = pyinfra(
        "deploys/restore.py", [server], data={"restore_app": "notes", "restore_backup": "latest"}
    )
    assert run.returncode == 0, run.output[-4000:]
    assert f"notes: scheduler {UNIT} restarted in" in run.output, run.output[-3000:]
    audit = last_audit(server)
    assert audit["action"] == "restore" and audit["schedulers"][UNIT]["ok"] is True, audit
    assert worker_of(server) != before


def test_install_again_changes_nothing_and_leaves_the_worker_alone(app):
    server = app["server"]
    before = worker_of(server)
    time.sleep(6)  # the worker has now been up longer than the check's settle time
    run = pyinfra("deploys/install_web2py.py", [server], data=SCHEDULERS, env=app["env"])
    assert run.returncode == 0 and run.totals["changed"] == 0, run.output[-4000:]
    assert worker_of(server) == before


def test_install_fails_clearly_for_an_app_without_a_scheduler(app):
    server = app["server"]
    data = {
        "web2py_apps": json.dumps({"notes": "examples/apps/notes", "pages": "examples/apps/pages"}),
        "web2py_schedulers": '["notes", "pages"]',
    }
    try:
        run = pyinfra("deploys/install_web2py.py", [server], data=data, env=app["env"])
        assert run.returncode != 0
        lines = [line for line in run.output.splitlines() if "web2py-scheduler@pages" in line]
        failure = next(
            (line for line in lines if "is not running 5 s after its start" in line), None
        )
        assert failure, run.output[-4000:]
        assert "the app's models define no Scheduler" in failure
        assert "journal: " in failure and "_scheduler" in failure
    finally:
        server.run("systemctl disable --now web2py-scheduler@pages.service", check=False)
    assert unit(server)["SubState"] == "running"  # notes' scheduler was not touched
