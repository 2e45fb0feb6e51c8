"""The web2py TEST STAND-IN's scheduler (payload gluon/scheduler.py, ``web2py.py -K``) with the
example app notes, installed as the deploys install it (applications/notes a symlink to a
release, its databases shared): tasks queued through the app's pages run in the worker, each
with the code on disk when it runs (an edited module, a switched release); the release tool's
scheduler-stop (TERMINATE through ``web2py.py -S notes -M -R``) lets the running task finish and
the worker exit 0; signals and KILL behave as web2py 2.26.1's worker (tests/unit/
test_gluon_scheduler.py runs the same steps on real gluon where it can run)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from operations.formats import DATA_DIRS
from server import commands, schedulers
from server.settings import Layout
from web2py_standin import build_zip
from web2py_standin.driver import StandinProcess, install_zip, stop_process

NOTES = Path(__file__).resolve().parents[2] / "examples" / "apps" / "notes"
HOST = socket.gethostname()

# web2py 2.26.1's scheduler tables: (column, SQLite type), as gluon's define_tables makes them
GLUON_TABLES = {
    "scheduler_task": [
        ("id", "INTEGER"), ("application_name", "CHAR(512)"), ("task_name", "CHAR(512)"),
        ("group_name", "CHAR(512)"), ("status", "CHAR(512)"), ("broadcast", "CHAR(1)"),
        ("function_name", "CHAR(512)"), ("uuid", "CHAR(255)"), ("args", "TEXT"),
        ("vars", "TEXT"), ("enabled", "CHAR(1)"), ("start_time", "TIMESTAMP"),
        ("next_run_time", "TIMESTAMP"), ("stop_time", "TIMESTAMP"), ("repeats", "INTEGER"),
        ("retry_failed", "INTEGER"), ("period", "INTEGER"), ("prevent_drift", "CHAR(1)"),
        ("cronline", "CHAR(512)"), ("timeout", "INTEGER"), ("sync_output", "INTEGER"),
        ("times_run", "INTEGER"), ("times_failed", "INTEGER"), ("last_run_time", "TIMESTAMP"),
        ("assigned_worker_name", "CHAR(512)"),
    ],
    "scheduler_run": [
        ("id", "INTEGER"), ("task_id", "INTEGER"), ("status", "CHAR(512)"),
        ("start_time", "TIMESTAMP"), ("stop_time", "TIMESTAMP"), ("run_output", "TEXT"),
        ("run_result", "TEXT"), ("traceback", "TEXT"), ("worker_name", "CHAR(512)"),
    ],
    "scheduler_worker": [
        ("id", "INTEGER"), ("worker_name", "CHAR(255)"), ("first_heartbeat", "TIMESTAMP"),
        ("last_heartbeat", "TIMESTAMP"), ("status", "CHAR(512)"), ("is_ticker", "CHAR(1)"),
        ("group_names", "TEXT"), ("worker_stats", "TEXT"),
    ],
    "scheduler_task_deps": [
        ("id", "INTEGER"), ("job_name", "CHAR(512)"), ("task_parent", "INTEGER"),
        ("task_child", "INTEGER"), ("can_visit", "CHAR(1)"),
    ],
}  # fmt: skip


def version_of(release: Path) -> str:
    return (release / "modules" / "notes_util.py").read_text().split("VERSION = '")[1].split("'")[0]


def set_version(release: Path, version: str) -> None:
    util = release / "modules" / "notes_util.py"
    old = f"VERSION = '{version_of(release)}'"
    util.write_text(util.read_text().replace(old, f"VERSION = '{version}'", 1))


def switch(root: Path, release: Path) -> None:
    """Point applications/notes at ``release`` in one rename, as a deploy does."""
    link = root / "applications" / "notes"
    tmp = link.with_name("notes.new")
    tmp.symlink_to(release)
    os.replace(tmp, link)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("srv")
    root = install_zip(build_zip(dest / "web2py_src.zip"), dest)  # as the deploys do
    release = dest / "releases" / "1"
    shutil.copytree(NOTES, release)
    for data in DATA_DIRS:
        (dest / "shared" / data).mkdir(parents=True)
        shutil.rmtree(release / data, ignore_errors=True)
        (release / data).symlink_to(dest / "shared" / data)
    switch(root, release)
    return root


def start_worker(root: Path, log: Path, app: str = "notes") -> subprocess.Popen:
    with open(log, "ab") as out:  # exactly what web2py-scheduler@notes.service runs
        return subprocess.Popen(
            [sys.executable, "web2py.py", "--no_gui", "--no_banner", "-K", app],
            cwd=root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


stop = stop_process  # only the process started here, by its PID


def worker_name(proc: subprocess.Popen) -> str:
    return f"{HOST}#{proc.pid}"


def sql(root: Path, query: str, *args) -> list[tuple]:
    with sqlite3.connect(root / "applications/notes/databases/scheduler.sqlite", timeout=10) as c:
        return c.execute(query, args).fetchall()


def tasks(root: Path) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """{label: (status, [(run status, worker) of each run])} from the scheduler's own tables."""
    found = {}
    for task_id, status, args in sql(root, "SELECT id, status, vars FROM scheduler_task"):
        runs = sql(root, "SELECT status, worker_name FROM scheduler_run WHERE task_id=?", task_id)
        found[json.loads(args).get("label")] = (status, runs)
    return found


def task_has_loaded_its_code(worker: subprocess.Popen) -> bool:
    """The worker's task process has run the notes models up to models/scheduler.py, which
    imports notes_util (its VERSION) and then opens scheduler.sqlite."""
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == worker.pid and any(
                os.readlink(fd).endswith("scheduler.sqlite") for fd in (proc / "fd").iterdir()
            ):
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def status(root: Path, label: str) -> str | None:
    return tasks(root).get(label, (None, []))[0]


def written(web: StandinProcess) -> list[tuple[str, str]]:
    """(label, VERSION) of each row tasks wrote, from the app's tasks.json page."""
    return [
        (row["task"], row["version"]) for row in web.get("/notes/default/tasks.json").json()["log"]
    ]  # noqa: E501


def wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def queue(web: StandinProcess, label: str, seconds: float = 0) -> int:
    r = web.post("/notes/default/queue_task.json", {"label": label, "seconds": str(seconds)})
    assert r.status == 200 and r.json()["label"] == label, r.text
    return r.json()["id"]


def web2py_script(root: Path, code: str) -> subprocess.CompletedProcess:
    script = root / "probe_script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, "web2py.py", "--no_banner", "-S", "notes", "-M", "-R", script.name],
        cwd=root, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_tables_and_queue_task_as_gluon(root):
    result = web2py_script(
        root,
        """
        import json
        ok = scheduler.queue_task('log', pvars=dict(label='shape'), timeout=30)
        bad = scheduler.queue_task('nosuch')
        print(json.dumps(dict(ok=[ok.id, ok['id'], dict(ok.errors), ok.uuid],
                              bad=[bad.id, sorted(bad.errors), bad.uuid])))
        """,
    )
    assert result.returncode == 0 and "Traceback" not in result.stdout, result
    shape = json.loads(result.stdout.strip().splitlines()[-1])
    task_id, same_id, errors, task_uuid = shape["ok"]
    assert task_id == same_id and isinstance(task_id, int) and errors == {} and task_uuid
    assert shape["bad"] == [None, ["function_name"], None]
    for table, columns in GLUON_TABLES.items():
        assert [(r[1], r[2]) for r in sql(root, f"PRAGMA table_info({table})")] == columns
    row = sql(root, "SELECT application_name, status, args, vars, uuid FROM scheduler_task")[0]
    assert row == ("notes/default", "QUEUED", "[]", '{"label": "shape"}', task_uuid)
    sql(root, "DELETE FROM scheduler_task")  # not for the worker tests


def test_tasks_run_with_the_code_on_disk_when_they_run(root, tmp_path):
    log = tmp_path / "scheduler.log"
    release = root.joinpath("applications", "notes").resolve()
    with StandinProcess(root) as web:
        assert web.get("/notes/default/queue_task.json").status == 405  # POST only
        assert web.post("/notes/default/queue_task.json", {"seconds": "x"}).status == 400
        queue(web, "first")
        worker = start_worker(root, log)
        try:
            version = version_of(release)
            assert wait_for(lambda: ("first", version) in written(web), 15), log.read_text()
            assert wait_for(lambda: status(root, "first") == "COMPLETED", 15)
            assert tasks(root)["first"][1] == [("COMPLETED", worker_name(worker))]
            workers = web.get("/notes/default/tasks.json").json()["workers"]
            assert {"name": worker_name(worker), "status": "ACTIVE"} in workers
            # the app's code edited in place: the next task runs the new code
            set_version(release, "1.0.1-edited")
            queue(web, "edited")
            assert wait_for(lambda: ("edited", "1.0.1-edited") in written(web), 15)
            # a deploy: a task queued before the switch runs after it, with the new release's
            # code; the task that was running finishes with the code it started with
            queue(web, "running", 2)
            assert wait_for(lambda: status(root, "running") == "RUNNING", 15), log.read_text()
            # (the worker has reaped the previous task's process by now: this one is its own)
            assert wait_for(lambda: task_has_loaded_its_code(worker), 15), log.read_text()
            queue(web, "before-switch")
            new = release.parent / "2"
            shutil.copytree(release, new, symlinks=True)
            set_version(new, "2.0.0-switched")
            switch(root, new)
            assert wait_for(lambda: status(root, "before-switch") == "COMPLETED", 15)
            assert written(web)[-2:] == [
                ("running", "1.0.1-edited"), ("before-switch", "2.0.0-switched"),
            ]  # fmt: skip
            assert worker.poll() is None  # one worker all along
            # SIGTERM while idle: exits at once, status 0 (as web2py's)
            started = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=5) == 0
            assert time.monotonic() - started < 2
        finally:
            stop(worker)


def test_release_tool_stop_lets_the_running_task_finish(root, tmp_path, monkeypatch):
    log = tmp_path / "scheduler.log"
    with StandinProcess(root) as web:
        queue(web, "slow", 3)
        queue(web, "after")
    first = start_worker(root, log)
    second = None
    try:
        assert wait_for(lambda: status(root, "slow") == "RUNNING", 15), log.read_text()
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        layout = Layout(apps_dir="", web2py_root=str(root), user=user, group=group)
        # a dead child stays in /proc until its parent reaps it: systemd there, us here
        monkeypatch.setattr(schedulers, "process_alive", lambda pid: first.poll() is None)
        started = time.monotonic()
        # sets the worker's row to TERMINATE
        assert commands.scheduler_stop(layout, "notes", str(first.pid), 20) == 0
        assert first.wait(timeout=5) == 0  # exited by itself, after its task: not signalled
        assert 1 < time.monotonic() - started < 15, log.read_text()
        state = tasks(root)
        assert state["slow"] == ("COMPLETED", [("COMPLETED", worker_name(first))]), state
        assert state["after"] == ("QUEUED", [])  # left for the next worker
        assert sql(
            root, "SELECT status FROM scheduler_worker WHERE worker_name=?", worker_name(first)
        ) == [("TERMINATE",)]  # noqa: E501
        second = start_worker(root, log)
        assert wait_for(lambda: status(root, "after") == "COMPLETED", 15), log.read_text()
        assert tasks(root)["after"][1] == [("COMPLETED", worker_name(second))]
    finally:
        stop(first)
        if second is not None:
            stop(second)


def test_failures_signals_and_kill(root, tmp_path):
    log = tmp_path / "scheduler.log"
    queued = web2py_script(
        root,
        """
        scheduler.queue_task('log', pvars=dict(label='bad', seconds='x'))
        scheduler.queue_task('log', pvars=dict(label='twice'), repeats=2, period=0)
        scheduler.queue_task('log', pvars=dict(label='signalled', seconds=30))
        scheduler.queue_task('log', pvars=dict(label='goes-on'))
        """,
    )
    assert queued.returncode == 0 and "Traceback" not in queued.stdout, queued
    worker = start_worker(root, log)
    try:
        assert wait_for(lambda: status(root, "signalled") == "RUNNING", 15), log.read_text()
        name = worker_name(worker)
        state = tasks(root)
        assert state["bad"] == ("FAILED", [("FAILED", name)])
        failed = sql(root, "SELECT traceback FROM scheduler_run WHERE status='FAILED'")
        assert "ValueError" in failed[0][0]
        # SIGTERM while a task runs: as web2py 2.26.1, the task is stopped, the worker goes on
        assert wait_for(lambda: task_has_loaded_its_code(worker), 15), log.read_text()
        worker.send_signal(signal.SIGTERM)
        assert wait_for(lambda: status(root, "goes-on") == "COMPLETED", 15), log.read_text()
        assert tasks(root)["signalled"] == ("FAILED", [("STOPPED", name)])
        assert worker.poll() is None
        # a repeating task (repeats=2, period=0) ran twice
        assert wait_for(lambda: status(root, "twice") == "COMPLETED", 15), log.read_text()
        assert tasks(root)["twice"][1] == [("COMPLETED", name)] * 2
        assert sql(root, "SELECT times_run FROM scheduler_task WHERE repeats=2") == [(2,)]
        # KILL in the worker's row: the running task is stopped and the worker exits 0
        with StandinProcess(root) as web:
            queue(web, "killed", 30)
        assert wait_for(lambda: status(root, "killed") == "RUNNING", 15), log.read_text()
        sql(root, "UPDATE scheduler_worker SET status='KILL' WHERE worker_name=?", name)
        assert worker.wait(timeout=10) == 0
        assert tasks(root)["killed"] == ("FAILED", [("STOPPED", name)])
    finally:
        stop(worker)


def test_without_a_scheduler_the_worker_exits_0_at_once(root, tmp_path):
    log = tmp_path / "scheduler.log"
    started = time.monotonic()
    proc = start_worker(root, log, app="welcome")  # its models define no Scheduler
    try:
        assert proc.wait(timeout=15) == 0
    finally:
        stop(proc)
    assert time.monotonic() - started < 10
    # as web2py: the AttributeError's traceback, which the release tool's hint looks for
    assert "no attribute '_scheduler'" in log.read_text()
    unknown = subprocess.run(
        [sys.executable, "web2py.py", "--no_banner", "-K", "nosuchapp"],
        cwd=root, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert unknown.returncode == 1 and "no scheduler left" in unknown.stderr
