"""The release tool's scheduler parts (web2py-scheduler@<app>): state, settle, graceful stop."""

import os
import subprocess
import sys

import pytest

from operations.formats import EXIT_USAGE, AuditRecord
from server import cli, commands, schedulers
from server.app import App
from server.settings import Layout


def layout(tmp_path) -> Layout:
    return Layout(apps_dir=str(tmp_path), web2py_root="/w", user="root", group="root")


RUNNING = {"ActiveState": "active", "SubState": "running", "MainPID": "42"}
RUNNING_TEXT = "active (running)"
LOOPING = {"ActiveState": "activating", "SubState": "auto-restart", "MainPID": "0",
           "ExecMainStatus": "0"}  # fmt: skip


def test_systemctl_show_output_and_time_spans():
    text = "ActiveState=active\nSubState=running\nMainPID=42\nExecMainStatus=0\nJunk\n"
    assert schedulers.parse_properties(text) == {**RUNNING, "ExecMainStatus": "0"}
    assert [schedulers.parse_timespan(t) for t in ("1min 30s", "90s", "500ms", "2h", "1d 1us")] == [
        90.0, 90.0, 0.5, 7200.0, 86400.000001,
    ]  # fmt: skip
    assert [schedulers.parse_timespan(t) for t in ("infinity", "", "5 parsecs")] == [None] * 3


def test_unit_states_read_as_one_phrase():
    assert schedulers.describe_unit(RUNNING) == "active (running), pid 42"
    assert schedulers.describe_unit(LOOPING) == "activating (auto-restart), last exit status 0"
    assert schedulers.describe_unit({}) == "? (?)"


@pytest.mark.parametrize(
    ("props", "first_pid", "running_for", "verdict"),
    [
        (RUNNING, None, 0, "wait"),  # first seen now
        (RUNNING, "42", 4.9, "wait"),
        (RUNNING, "42", 5.0, "up"),
        ({**RUNNING, "MainPID": "43"}, "42", 9, "down"),  # exited and started again
        ({"ActiveState": "activating", "SubState": "start"}, None, 0, "wait"),
        (LOOPING, None, 0, "down"),
        (LOOPING, "42", 3, "down"),
        ({"ActiveState": "failed", "SubState": "failed"}, None, 0, "down"),
        ({"ActiveState": "inactive", "SubState": "dead"}, None, 0, "down"),
    ],
)
def test_scheduler_verdict(props, first_pid, running_for, verdict):
    assert schedulers.scheduler_verdict(props, first_pid, running_for, 5.0) == verdict


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def watch(states, settle=5.0):
    """wait_for_scheduler over a scripted sequence of unit states (the last one repeats)."""
    clock, seen = Clock(), list(states)

    def properties(unit):
        assert unit == "web2py-scheduler@notes.service"
        return seen.pop(0) if len(seen) > 1 else seen[0]

    return schedulers.wait_for_scheduler(
        "web2py-scheduler@notes.service", settle, properties, clock, clock.sleep
    )


def test_a_worker_that_keeps_running_is_up_after_settling():
    assert watch([{"ActiveState": "activating", "SubState": "start"}, RUNNING]) == (
        True, "active (running), pid 42",
    )  # fmt: skip


def test_a_worker_that_exits_at_once_is_down_with_its_state():
    assert watch([RUNNING, RUNNING, LOOPING]) == (
        False, "activating (auto-restart), last exit status 0",
    )  # fmt: skip


def test_a_worker_that_restarted_between_two_looks_is_down():
    assert watch([RUNNING, {**RUNNING, "MainPID": "43"}]) == (
        False, "restarted (pid 42, then 43)",
    )  # fmt: skip


def test_a_start_that_never_ends_is_down_after_a_bound():
    ok, state = watch([{"ActiveState": "activating", "SubState": "start"}])
    assert not ok and state.startswith("not running for 5 s after 35 s: activating (start)")


def test_the_terminate_script_is_valid_python_naming_one_worker():
    compile(schedulers.TERMINATE_SCRIPT, "terminate.py", "exec")
    assert "worker_name == sys.argv[1]" in schedulers.TERMINATE_SCRIPT
    assert "'pyinfra-web2py-terminate: %d'" in schedulers.TERMINATE_SCRIPT


def test_failure_line_and_hint_for_an_app_without_a_scheduler(monkeypatch):
    journal = "starting single-scheduler for \"pages\"... | AttributeError: '_thread._local' " \
        "object has no attribute '_scheduler'"  # fmt: skip
    monkeypatch.setattr(schedulers, "journal_tail", lambda unit: journal)
    info = schedulers.scheduler_failure("web2py-scheduler@pages.service", "inactive (dead)")
    assert info["hint"] == "the app's models define no Scheduler (web2py.py -K needs one)"
    line = schedulers.failure_line("web2py-scheduler@pages.service", info)
    assert line.startswith("web2py-scheduler@pages.service: inactive (dead) (the app's models")
    assert line.endswith(f"; journal: {journal}") and "\n" not in line


def fake_systemctl(monkeypatch, enabled="enabled", restart_rc=0):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        if command[:2] == ["systemctl", "is-enabled"]:
            return subprocess.CompletedProcess(command, 0, f"{enabled}\n", "")
        if command[:2] == ["systemctl", "show"]:
            return subprocess.CompletedProcess(command, 0, "TimeoutStopUSec=1min 30s\n", "")
        if command[:2] in (["systemctl", "restart"], ["systemctl", "stop"]):
            return subprocess.CompletedProcess(command, restart_rc, "", "Job failed.\n")
        raise AssertionError(command)

    monkeypatch.setattr(schedulers.subprocess, "run", run)
    return calls


def test_only_an_enabled_scheduler_is_restarted(monkeypatch):
    calls = fake_systemctl(monkeypatch, enabled="disabled")
    assert schedulers.restart_scheduler("notes") is None
    assert calls == [["systemctl", "is-enabled", "web2py-scheduler@notes.service"]]


def test_a_restart_is_bounded_by_the_units_stop_timeout_and_settles(monkeypatch):
    calls = fake_systemctl(monkeypatch)
    monkeypatch.setattr(schedulers, "wait_for_scheduler", lambda unit, settle: (True, RUNNING_TEXT))
    info = schedulers.restart_scheduler("notes")
    assert ["systemctl", "restart", "web2py-scheduler@notes.service"] in calls
    assert info["unit"] == "web2py-scheduler@notes.service" and info["ok"] is True
    assert info["state"] == "active (running)" and info["seconds"] >= 0


def test_a_failed_restart_goes_to_the_audit_and_never_raises(monkeypatch, tmp_path):
    fake_systemctl(monkeypatch, restart_rc=1)
    monkeypatch.setattr(schedulers, "journal_tail", lambda unit: "boom")
    entry = AuditRecord()
    schedulers.restart_app_scheduler(App("notes", layout(tmp_path)), entry)
    (info,) = entry.schedulers.values()
    assert info["ok"] is False and info["state"] == "systemctl restart exited 1: Job failed."
    assert info["journal"] == "boom"

    def broken(app, settle):
        raise OSError("no systemctl")

    monkeypatch.setattr(schedulers, "restart_scheduler", broken)
    schedulers.restart_app_scheduler(App("notes", layout(tmp_path)), entry)
    assert entry.schedulers["web2py-scheduler@notes.service"]["ok"] is False


def test_scheduler_stop_without_a_main_process_does_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(schedulers, "ask_terminate", lambda *a: pytest.fail("asked"))
    (tmp_path / "release.json").write_text(layout(tmp_path).to_json())
    for pid in ("", "0", str(2**22 + 7)):  # unset ($MAINPID after the worker exited), gone
        args = ["scheduler-stop", "--layout", str(tmp_path / "release.json"), "--app", "notes"]
        assert cli.main([*args, f"--pid={pid}"]) == 0


def test_scheduler_commands_need_an_app_name():
    assert cli.main(["scheduler-check", "--app", "../x"]) == EXIT_USAGE
    assert cli.main(["scheduler-stop", "--pid", "42"]) == EXIT_USAGE


def test_a_worker_web2py_cannot_reach_is_stopped_by_signal(monkeypatch, tmp_path):
    """No scheduler in the models (or web2py failing): SIGTERM, until the worker is gone."""
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        monkeypatch.setattr(schedulers, "ask_terminate", lambda layout, app, name, timeout: None)
        # the zombie stays in /proc until reaped: reap it as systemd would
        monkeypatch.setattr(schedulers, "process_alive", lambda pid: worker.poll() is None)
        assert commands.scheduler_stop(layout(tmp_path), "notes", str(worker.pid)) == 0
        assert worker.wait(timeout=5) == -15
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, 9)
            worker.wait()


def test_a_scheduler_stopped_while_the_app_was_down_is_started_again(monkeypatch, tmp_path):
    calls = fake_systemctl(monkeypatch)
    app, entry = App("notes", layout(tmp_path)), AuditRecord()
    schedulers.stop_app_scheduler(app)
    assert ["systemctl", "stop", "web2py-scheduler@notes.service"] in calls
    assert app.scheduler_stopped is True
    monkeypatch.setattr(schedulers, "wait_for_scheduler", lambda unit, settle: (True, RUNNING_TEXT))
    schedulers.restart_app_scheduler(app, entry)  # whatever the deploy's outcome
    assert ["systemctl", "restart", "web2py-scheduler@notes.service"] in calls
    assert app.scheduler_stopped is False and list(entry.schedulers) == [
        "web2py-scheduler@notes.service"
    ]
    assert "scheduler_stopped" not in entry.to_dict()  # the flag is not audited
