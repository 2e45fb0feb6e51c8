"""Every wait of the release tool is bounded, and the bounds an operator tunes come from data:
uWSGI not running refuses a run before it changes anything; a health check that hangs fails in
one line naming it; the stats socket cannot hold a run; the timeouts travel from group_data."""

import os
import pwd
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_release_commands import app_of, audit, deploy, layout, no_uwsgi_nor_systemd  # noqa: F401

from operations.settings.apps import deploy_settings
from operations.settings.defaults import default
from operations.settings.validators import ConfigError
from server import bounded, checks, cli, commands, golive, uwsgi
from server.errors import Failure
from server.settings import Options

REAL_REQUIRE_RUNNING = uwsgi.require_running  # before the autouse stub replaces it


def test_a_deploy_with_uwsgi_stopped_changes_nothing(layout, tmp_path, monkeypatch):  # noqa: F811
    assert deploy(layout, tmp_path, "1")[0] == 0
    assert deploy(layout, tmp_path, "2")[0] == 0
    app = app_of(layout)
    live, backups = app.live_release(), sorted(os.listdir(layout.backups_dir))
    releases, log = sorted(os.listdir(app.releases)), (app.base / "release.log").read_text()
    monkeypatch.setattr(uwsgi, "require_running", REAL_REQUIRE_RUNNING)  # no uWSGI here
    with pytest.raises(Failure, match=r"^notes: uWSGI is not running .*webserver_action=start"):
        deploy(layout, tmp_path, "3")
    assert app.live_release() == live and sorted(os.listdir(app.releases)) == releases
    assert sorted(os.listdir(layout.backups_dir)) == backups
    assert (app.base / "release.log").read_text() == log
    assert not app.lock.held()
    record = audit(layout)[-1]
    assert record["result"].startswith("failed: notes: uWSGI is not running")
    assert "attention" not in record
    # a rollback is refused the same way, before its switch
    with pytest.raises(Failure, match="uWSGI is not running"):
        commands.rollback(app_of(layout))
    assert app.live_release() == live and not app.lock.held()


def stats_server(path: Path, answer: bytes | None, hold: float = 0) -> socket.socket:
    """A unix socket at ``path`` owned by the current user that answers each client with
    ``answer`` (None: accepts and says nothing for ``hold`` seconds)."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                if answer is None:
                    time.sleep(hold)
                else:
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_uwsgi_counts_as_running_only_when_its_stats_socket_answers(tmp_path, monkeypatch):
    fifo, stats = tmp_path / "uwsgi.fifo", tmp_path / "stats.sock"
    user = pwd.getpwuid(os.getuid()).pw_name
    with pytest.raises(Failure, match=r"^uWSGI is not running \(.*stats.sock does not exist\)"):
        REAL_REQUIRE_RUNNING(str(fifo), str(stats), user)
    os.mkfifo(fifo)
    listener = stats_server(stats, b'{"workers": [{"pid": 7, "status": "idle"}]}')
    try:
        REAL_REQUIRE_RUNNING(str(fifo), str(stats), user)
    finally:
        listener.close()
        stats.unlink()
    monkeypatch.setattr(uwsgi, "STATS_TIMEOUT", 0.5)
    listener = stats_server(stats, None, hold=5)  # listens, never answers
    try:
        started = time.monotonic()
        with pytest.raises(Failure, match="does not answer"):
            REAL_REQUIRE_RUNNING(str(fifo), str(stats), user)
        assert time.monotonic() - started < 3
    finally:
        listener.close()


def test_a_stats_socket_that_trickles_cannot_hold_a_run(tmp_path, monkeypatch):
    stats = tmp_path / "stats.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stats))
    listener.listen(1)

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            for _ in range(100):
                try:
                    conn.sendall(b" ")
                except OSError:  # the reader gave up: as it should
                    return
                time.sleep(0.05)

    threading.Thread(target=trickle, daemon=True).start()
    monkeypatch.setattr(uwsgi, "STATS_TIMEOUT", 0.5)
    started = time.monotonic()
    assert uwsgi.workers(str(stats)) == []
    assert time.monotonic() - started < 2
    listener.close()


def test_a_health_check_that_hangs_fails_in_one_line_within_its_timeout(
    layout,  # noqa: F811
    monkeypatch,
):
    app = app_of(layout, check_timeout=1)
    app.checks.health_path = "/notes/default/health"
    asked: list[float] = []

    def hangs(port, path, key="", timeout=10):
        asked.append(timeout)
        time.sleep(min(timeout, 5))
        raise TimeoutError("The read operation timed out")

    monkeypatch.setattr(uwsgi, "https_get", hangs)
    started = time.monotonic()
    with pytest.raises(Failure) as failed:
        checks.health_through_nginx(app)
    took = time.monotonic() - started
    assert str(failed.value) == (
        "notes: health check of /notes/default/health timed out: no answer through nginx within 1s"
    )
    assert took < 2 and all(t <= 1 for t in asked)  # each request within the check's bound


def test_a_health_check_refused_by_nginx_names_the_check(layout, monkeypatch):  # noqa: F811
    app = app_of(layout, check_timeout=0.3)
    app.checks.health_path = "/notes/default/health"

    def refused(port, path, key="", timeout=10):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(uwsgi, "https_get", refused)
    with pytest.raises(Failure, match=r"^notes: health check of /notes/default/health failed"):
        checks.health_through_nginx(app)


def test_the_timeouts_come_from_data_with_group_datas_defaults():
    config = deploy_settings({}, require_apps=False)
    assert config.timeout_args() == [
        "--check-timeout", str(default("deploy_check_timeout_seconds")),
        "--reload-timeout", str(default("deploy_reload_timeout_seconds")),
        "--hook-timeout", str(default("deploy_hook_timeout_seconds")),
    ]  # fmt: skip
    assert config.drain_timeout == default("deploy_drain_timeout_seconds")
    tuned = deploy_settings(
        {"deploy_check_timeout_seconds": "5", "deploy_drain_timeout_seconds": 2},
        require_apps=False,
    )
    assert (tuned.check_timeout, tuned.drain_timeout) == (5, 2)
    with pytest.raises(ConfigError, match="deploy_reload_timeout_seconds: 0 is out of range"):
        deploy_settings({"deploy_reload_timeout_seconds": 0}, require_apps=False)


def test_the_tools_own_defaults_are_group_datas():
    # the tool runs on servers without group_data: its defaults must say the same
    args = cli.parser().parse_args(["deploy", "--app", "a", "--package", "p", "--sha256", "s"])
    options = cli.options_of(args)
    assert options.check_timeout == default("deploy_check_timeout_seconds")
    assert options.reload_timeout == default("deploy_reload_timeout_seconds")
    assert options.hook_timeout == default("deploy_hook_timeout_seconds")
    assert options.drain_timeout == default("deploy_drain_timeout_seconds")
    assert Options().check_timeout == default("deploy_check_timeout_seconds")
    reload = cli.parser().parse_args(["reload"])
    assert reload.reload_timeout == default("deploy_reload_timeout_seconds")


@pytest.mark.parametrize(("state", "fails_within"), [("inactive", 1.5), ("activating", None)])
def test_a_chain_reload_gives_up_at_once_when_uwsgi_was_stopped(
    tmp_path, monkeypatch, state, fails_within
):
    fifo, stats = tmp_path / "fifo", tmp_path / "stats.sock"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # uWSGI's master reads it
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stats))
    user = pwd.getpwuid(os.getuid()).pw_name
    seen = iter([[{"pid": 1, "status": "idle"}]])
    monkeypatch.setattr(uwsgi, "workers", lambda stats: next(seen, []))  # then gone
    monkeypatch.setattr(uwsgi, "unit_state", lambda unit=uwsgi.UNIT: state)
    started = time.monotonic()
    try:
        with pytest.raises(Failure) as failed:
            uwsgi.chain_reload(str(fifo), str(stats), 3, user)
    finally:
        listener.close()
        os.close(reader)
    took = time.monotonic() - started
    if fails_within:  # stopped for good: said at once, naming the unit's state
        assert (
            str(failed.value) == "uWSGI stopped during the chain reload (web2py-uwsgi is inactive)"
        )
        assert took < fails_within
    else:  # being restarted by systemd: waited for, up to the timeout
        assert "was not back within 3s" in str(failed.value) and took >= 3


def test_a_hook_that_outlives_its_timeout_is_killed_with_its_children(tmp_path):
    # subprocess.run would kill the shell only: its background job would go on
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        bounded.run("sleep 31.7 & sleep 31.7; echo never", 0.5, shell=True, cwd=tmp_path)
    assert time.monotonic() - started < 3
    left = subprocess.run(["pgrep", "-f", "^sleep 31.7$"], capture_output=True, text=True)
    assert left.stdout.strip() == ""  # the whole group went
    done = bounded.run(["sh", "-c", "echo out; echo err >&2; exit 3"], 5)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_a_hook_that_times_out_fails_in_one_line(layout, tmp_path):  # noqa: F811
    app = app_of(layout, hook_timeout=0.5)
    app.checks.hooks = '{"before_switch": ["sleep 30"]}'
    with pytest.raises(Failure) as failed:
        golive.run_hooks(app, "before_switch", tmp_path)
    assert str(failed.value) == (
        "notes: before_switch hook 'sleep 30' timed out after 0.5s "
        "(deploy_hook_timeout_seconds); it was killed"
    )
