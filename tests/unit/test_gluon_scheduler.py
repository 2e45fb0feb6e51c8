"""The notes app's scheduler on real gluon 2.26.1 (the gluon TEST DISTRIBUTION), run as
web2py-scheduler@notes runs it, and stopped as its ExecStop stops it (the release tool's
scheduler-stop): a running task finishes, the worker exits, the next task waits for the next
worker."""

from __future__ import annotations

import grp
import itertools
import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from operations.formats import DATA_DIRS
from server import commands, schedulers
from server.settings import Layout
from web2py_standin.driver import StandinProcess, install_zip, stop_process
from web2py_standin.gluon_dist import build_gluon_zip

NOTES = Path(__file__).resolve().parents[2] / "examples" / "apps" / "notes"
pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="gluon 2.26.1 runs on Python 3.11 and older"
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("srv")
    root = install_zip(build_gluon_zip(dest / "web2py_src.zip"), dest)  # as the deploys do
    shutil.copytree(NOTES, root / "applications" / "notes")
    for data in DATA_DIRS:
        (root / "applications" / "notes" / data).mkdir()
    return root


def start_worker(root: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:  # exactly what web2py-scheduler@notes.service runs
        return subprocess.Popen(
            [sys.executable, "web2py.py", "--no_gui", "--no_banner", "-K", "notes"],
            cwd=root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def tasks(root: Path) -> dict[str, tuple[str, list[str]]]:
    """{label: (status, [worker of each run])} from the scheduler's own tables."""
    with sqlite3.connect(root / "applications/notes/databases/scheduler.sqlite") as con:
        found = {}
        for task_id, status, args in con.execute("SELECT id, status, vars FROM scheduler_task"):
            runs = con.execute("SELECT worker_name FROM scheduler_run WHERE task_id=?", (task_id,))
            found[json.loads(args)["label"]] = (status, [row[0] for row in runs])
        return found


def wait_for(predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.25)
    return value


stop = stop_process  # only the process started here, by its PID


def test_pages_queue_tasks_and_a_graceful_stop_lets_the_running_one_finish(
    root, tmp_path, monkeypatch
):
    with StandinProcess(root) as web:
        assert web.get("/notes/default/health").text.startswith("ok notes")
        assert web.get("/notes/default/queue_task.json").status == 405  # POST only
        for label, seconds in (("slow", "8"), ("after", "0")):
            r = web.post("/notes/default/queue_task.json", {"label": label, "seconds": seconds})
            assert r.status == 200 and json.loads(r.text)["label"] == label, r.text
        assert web.post("/notes/default/queue_task.json", {"seconds": "x"}).status == 400
    log = tmp_path / "scheduler.log"
    first = start_worker(root, log)
    second = None
    try:
        assert wait_for(lambda: tasks(root)["slow"][0] == "RUNNING", 40), log.read_text()
        user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        layout = Layout(apps_dir="", web2py_root=str(root), user=user, group=group)
        # a dead child stays in /proc until its parent reaps it: systemd there, us here
        monkeypatch.setattr(schedulers, "process_alive", lambda pid: first.poll() is None)
        started = time.monotonic()
        assert commands.scheduler_stop(layout, "notes", str(first.pid), 30) == 0
        assert first.wait(timeout=5) == 0  # exited by itself, after its task: not signalled
        assert time.monotonic() - started < 25
        worker = f"{socket.gethostname()}#{first.pid}"
        state = tasks(root)
        assert state["slow"] == ("COMPLETED", [worker]), log.read_text()
        assert state["after"][0] in ("QUEUED", "ASSIGNED")  # left for the next worker
        second = start_worker(root, log)
        assert wait_for(lambda: tasks(root)["after"][0] == "COMPLETED", 40), log.read_text()
        assert tasks(root)["after"][1] == [f"{socket.gethostname()}#{second.pid}"]
    finally:
        stop(first)
        if second is not None:
            stop(second)
    with StandinProcess(root) as web:
        data = json.loads(web.get("/notes/default/tasks.json").text)
    assert [(row["task"], row["version"]) for row in data["log"]] == [
        ("slow", data["version"]), ("after", data["version"]),
    ]  # fmt: skip
    assert {task["label"]: task["status"] for task in data["queue"]} == {
        "slow": "COMPLETED", "after": "COMPLETED",
    }  # fmt: skip
    assert list(itertools.chain.from_iterable(t["runs"] for t in data["queue"]))
