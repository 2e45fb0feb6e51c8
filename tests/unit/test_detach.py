"""Detached runs (server.detach): the child outlives the process the controller started, and
the tool's one-line failures, lock wait and switch-back attention."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from operations.formats import AuditRecord
from operations.local.reports import report_lines
from operations.local.status import app_line, app_record
from server import cli, commands, detach, golive
from server.errors import Failure, Locked, cause
from server.lock import Lock, boot_id, process_start

ROOT = Path(__file__).resolve().parents[2]

# A child standing in for a deploy: says it started, waits for GO (bounded), writes its audit
# line, prints progress (to a pipe nobody reads any more) and exits 7.
CHILD = """
import sys, time
from pathlib import Path
from server import detach
detach.child_setup()
work = Path(sys.argv[1])
print("started", flush=True)
print("to stderr", file=sys.stderr)
detach.note("Traceback: private")
deadline = time.monotonic() + 30
while not (work / "GO").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
for n in range(200):
    print("progress", n)
(work / "audit.jsonl").write_text('{"result": "ok"}\\n')
sys.exit(detach.child_exit(7))
"""

PARENT = """
import sys
from pathlib import Path
from server import detach
sys.exit(detach.run_detached([sys.argv[1]], Path(sys.argv[1]) / "runs", "deploy", sys.argv[2]))
"""


def wait_until(predicate, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def parent(tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(detach.CHILD_ENV, None)
    return subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path), CHILD], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def run_log(tmp_path: Path) -> Path:
    (log,) = (tmp_path / "runs").glob("*.log")
    return log


def test_the_child_outlives_a_killed_parent_and_a_dead_pipe(tmp_path):
    proc = parent(tmp_path)
    assert wait_until(lambda: any((tmp_path / "runs").glob("*.log")))
    log = run_log(tmp_path)
    assert wait_until(lambda: b"O started" in log.read_bytes())
    os.kill(proc.pid, signal.SIGKILL)  # the controller's SSH command dies
    proc.wait(timeout=10)
    proc.stdout.close()  # and its pipe: nobody reads the child's output any more
    proc.stderr.close()
    (tmp_path / "GO").touch()
    assert wait_until(lambda: log.read_bytes().endswith(b"X 7\n")), log.read_text()[-500:]
    assert (tmp_path / "audit.jsonl").read_text() == '{"result": "ok"}\n'
    text = log.read_text()
    assert "O progress 199" in text and "E to stderr" in text and "T Traceback: private" in text
    assert (log.stat().st_mode & 0o777, log.parent.stat().st_mode & 0o777) == (0o600, 0o700)


def test_the_child_ignores_a_hangup_of_its_session(tmp_path):
    proc = parent(tmp_path)
    assert wait_until(lambda: any((tmp_path / "runs").glob("*.log")))
    log = run_log(tmp_path)
    assert wait_until(lambda: b"O started" in log.read_bytes())
    child_pid = int(
        subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    assert os.getsid(child_pid) == child_pid  # a session of its own
    os.kill(child_pid, signal.SIGHUP)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    (tmp_path / "GO").touch()
    assert wait_until(lambda: log.read_bytes().endswith(b"X 7\n")), log.read_text()[-500:]


def test_the_parent_relays_and_exits_as_the_child(tmp_path):
    (tmp_path / "GO").touch()
    proc = parent(tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7
    assert out.decode().splitlines()[0] == "started" and b"progress 199" in out
    assert err.decode() == "to stderr\n"  # no traceback, no exit record
    assert b"Traceback" not in out + err


def test_old_run_logs_beyond_retention_go(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for n in range(5):
        (runs / f"20200101T00000{n}Z-deploy.log").write_text("")
    new = detach.new_log(runs, "rollback", keep=3)
    assert sorted(p.name for p in runs.iterdir()) == [
        "20200101T000003Z-deploy.log", "20200101T000004Z-deploy.log", new.name,
    ]  # fmt: skip


def test_pause_waits_only_while_its_flag_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(detach, "PAUSE_DIR", str(tmp_path))
    started = time.monotonic()
    detach.pause("after-switch")  # no flag: at once
    assert time.monotonic() - started < 0.5
    (tmp_path / "test-pause-after-switch").touch()
    monkeypatch.setattr(detach, "PAUSE_LIMIT", 0.5)
    detach.pause("after-switch")  # bounded, even if nobody lifts the flag
    assert not (tmp_path / "test-paused-after-switch").exists()


def test_an_unexpected_error_is_one_line_without_a_repr(tmp_path, monkeypatch, capsys):
    layout = tmp_path / "release.json"
    layout.write_text(
        json.dumps(
            {
                "apps_dir": str(tmp_path / "apps"),
                "web2py_root": str(tmp_path),
                "user": "root",
                "group": "root",
                "data_dirs": [],
                "backups_dir": str(tmp_path),
                "fifo": "f",
                "stats": "s",
                "uwsgi": "u",
                "maintenance_dir": str(tmp_path),
                "health_port": 443,
            }
        )  # fmt: skip
    )

    def broken(app):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(commands, "status", broken)
    assert cli.main(["status", "--layout", str(layout), "--app", "notes"]) == 1
    err = capsys.readouterr().err
    assert err == "status: unexpected error: connection refused\n"


def test_cause_names_no_repr():
    assert cause(FileNotFoundError(2, "No such file or directory", "/x")) == (
        "no such file or directory: /x"
    )
    assert cause(KeyError("release")) == "'release' (KeyError)"
    assert cause(Failure("notes: bad")) == "notes: bad"


def test_a_live_holder_is_waited_for_then_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    lock = Lock(tmp_path, "notes")
    lock.path.mkdir()
    info = {"who": "bob", "pid": holder.pid, "started": process_start(holder.pid),
            "boot_id": boot_id(), "since": "x", "version": "v"}  # fmt: skip
    (lock.path / "info.json").write_text(json.dumps(info))
    with pytest.raises(Locked):
        lock.acquire("alice", "v2", wait=0.3)
    started = time.monotonic()
    # the holder ends (its lock stays behind; reaped, as its parent or init does): taken over
    threading.Thread(target=holder.wait, daemon=True).start()
    lock.acquire("alice", "v2", wait=10)
    assert time.monotonic() - started < 5 and lock.stale and lock.stale["who"] == "bob"
    holder.wait(timeout=10)


def test_a_failed_switch_back_reload_flags_the_app(monkeypatch, capsys):
    def no_reload(app):
        raise Failure("uWSGI workers were not all replaced within 60s")

    monkeypatch.setattr(golive, "reload", no_reload)
    entry = AuditRecord()

    class FakeApp:
        name = "notes"

    assert golive.reload_back(FakeApp(), entry, "rolling back") is False  # type: ignore[arg-type]
    assert entry.attention == (
        "after rolling back, the workers were not all reloaded: "
        "uWSGI workers were not all replaced within 60s"
    )
    assert entry.to_dict()["attention"] == entry.attention
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("notes: ATTENTION: after rolling back")
    record = app_record({"live": "r1", "attention": entry.attention}, {})
    assert app_line("w2p-1", "notes", record).startswith(
        "w2p-1: notes: NEEDS ATTENTION: after rolling back"
    )
    report = report_lines("w2p-1", "notes", "/b", entry.to_dict())
    assert "w2p-1: notes: NEEDS ATTENTION: after rolling back, the workers" in report[1]
