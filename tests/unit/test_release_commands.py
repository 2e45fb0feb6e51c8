"""Each of the release tool's subcommands, called as a function on a layout under tmp_path."""

import contextlib
import json
import os
import pwd
import socket
from pathlib import Path

import pytest

from operations.formats import EXIT_FAILED, EXIT_LOCKED
from operations.local.packaging import build_package
from server import cli, commands, golive, lock, recover, schedulers, uwsgi, window
from server.app import App
from server.errors import Failure
from server.settings import Checks, DeployOptions, Layout, Options, RestoreOptions

USER = "root"


@pytest.fixture()
def layout(tmp_path) -> Layout:
    (tmp_path / "web2py" / "applications").mkdir(parents=True)
    (tmp_path / "maintenance").mkdir()
    return Layout(
        apps_dir=str(tmp_path / "apps"), web2py_root=str(tmp_path / "web2py"), user=USER,
        group=USER, backups_dir=str(tmp_path / "backups"),
        maintenance_dir=str(tmp_path / "maintenance"), stats=str(tmp_path / "no-stats.sock"),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def no_uwsgi_nor_systemd(monkeypatch):
    """No uWSGI to reload and no scheduler units here: the rest is real."""
    monkeypatch.setattr(golive, "reload", lambda app: None)
    monkeypatch.setattr(schedulers, "scheduler_enabled", lambda unit: False)


def app_of(layout: Layout, **options) -> App:
    # no health path: the pre-switch check and the check through nginx need a server
    return App(
        "notes", layout, Options(who="alice@laptop", checks=Checks(health_path=""), **options)
    )


def package(tmp_path: Path, version: str):
    source = tmp_path / f"src-{version}"
    (source / "controllers").mkdir(parents=True, exist_ok=True)
    (source / "controllers" / "default.py").write_text(f"VERSION = {version!r}\n")
    (source / "databases").mkdir(exist_ok=True)
    return build_package(source, tmp_path / f"notes-{version}.tar.gz")


def deploy(layout: Layout, tmp_path: Path, version: str) -> tuple[int, str]:
    built = package(tmp_path, version)
    options = DeployOptions(package=str(built.path), sha256=built.sha256, version=version)
    return commands.deploy(app_of(layout), options), built.sha256


def audit(layout: Layout) -> list[dict]:
    text = (Path(layout.apps_dir) / "notes" / "audit.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_deploy_makes_the_package_live_once(layout, tmp_path):
    code, sha = deploy(layout, tmp_path, "1")
    app = app_of(layout)
    live = app.live_release()
    assert code == 0 and live.endswith(sha[:12])
    assert (app.web2py_link / "controllers" / "default.py").read_text() == "VERSION = '1'\n"
    assert app.revision(live)["sha256"] == sha and app.good_releases() == [live]
    assert not (tmp_path / "notes-1.tar.gz").exists()  # the staged package is removed
    assert not app.lock.held()
    (record,) = audit(layout)
    assert record["action"] == "deploy" and record["result"] == "ok"
    assert record["who"] == "alice@laptop" and record["package_sha256"] == sha
    assert "from" not in record and "restored_from" not in record  # unset fields are left out
    again, _ = deploy(layout, tmp_path, "1")
    assert again == 0 and app.live_release() == live
    assert audit(layout)[-1]["result"] == "unchanged"


def test_rollback_goes_back_to_the_previous_good_release(layout, tmp_path):
    deploy(layout, tmp_path, "1")
    first = app_of(layout).live_release()
    deploy(layout, tmp_path, "2")
    assert commands.rollback(app_of(layout)) == 0
    app = app_of(layout)
    assert app.live_release() == first
    assert (app.web2py_link / "controllers" / "default.py").read_text() == "VERSION = '1'\n"
    record = audit(layout)[-1]
    assert record["action"] == "rollback" and record["release"] == first
    assert record["from"] != first and record["result"] == "ok"


def test_status_prints_the_apps_state(layout, tmp_path, capsys):
    deploy(layout, tmp_path, "1")
    capsys.readouterr()
    assert commands.status(app_of(layout)) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["live"] == app_of(layout).live_release() and state["locked"] is None
    assert state["good"] == [state["live"]] and state["revision"]["version"] == "1"
    assert state["down"] is False
    assert state["drift"] == {"changed": [], "missing": [], "added": []}


def test_status_reports_drift_of_the_live_release(layout, tmp_path, capsys):
    deploy(layout, tmp_path, "1")
    release = Path(layout.apps_dir) / "notes" / "current"
    edited = release / "controllers" / "default.py"
    edited.chmod(0o644)
    edited.write_text("VERSION = 'edited on the server'\n")
    (release / "controllers" / "extra.py").write_text("x = 1\n")
    (Path(layout.maintenance_dir) / "notes.down").write_text("")
    capsys.readouterr()
    assert commands.status(app_of(layout)) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["drift"] == {
        "changed": ["controllers/default.py"], "missing": [], "added": ["controllers/extra.py"],
    }  # fmt: skip
    assert state["down"] is True


def test_watch_probes_every_app_and_counts_their_answers(layout, tmp_path, monkeypatch, capsys):
    from server import watch

    log = tmp_path / "access.log"
    log.write_bytes(b"")
    probed = []

    def https_get(port, path, key=""):
        probed.append(path)
        with log.open("ab") as f:
            f.write(b'1.2.3.4 - - [x] "GET /notes/default/index HTTP/1.1" 500 0 "-" "-"\n')
        return 200, b"ok"

    monkeypatch.setattr(watch, "https_get", https_get)
    monkeypatch.setattr(watch, "ACCESS_LOG", str(log))
    deploy(layout, tmp_path, "1")
    capsys.readouterr()
    app = App("notes", layout, Options())
    assert app.checks.health_path == "/notes/default/index"  # the recorded default: its index
    assert watch.watch_apps(layout, ["notes"], seconds=0) == 0
    assert json.loads(capsys.readouterr().out) == {
        "requests": 1, "errors": 1, "probes": 1, "failed_probes": 0,
    }  # fmt: skip
    assert probed == ["/notes/default/index"]


def dead_lock(app: App) -> None:
    """The lock as a run that was killed leaves it (a pid that is not running)."""
    app.lock.path.mkdir(parents=True, exist_ok=True)
    dead = {"who": "bob", "since": "x", "version": "v", "pid": 2**22 + 7, "started": "1",
            "boot_id": lock.boot_id()}  # fmt: skip
    (app.lock.path / "info.json").write_text(json.dumps(dead))


def test_status_says_when_the_lock_holder_is_dead_or_alive(layout, capsys):
    app = app_of(layout)
    dead_lock(app)
    assert commands.status(app) == 0
    state = json.loads(capsys.readouterr().out)
    assert "locked by bob" in state["locked"] and "is DEAD" in state["locked"], state
    app.lock.release()
    app.lock.acquire("carol", "9")  # this live process
    assert commands.status(app) == 0
    state = json.loads(capsys.readouterr().out)
    assert "still running" in state["locked"] and "DEAD" not in state["locked"], state
    app.lock.release()
    assert commands.status(app) == 0
    assert json.loads(capsys.readouterr().out)["locked"] is None


def test_unlock_removes_a_dead_holders_lock(layout):
    app = app_of(layout)
    dead_lock(app)
    assert commands.unlock(app) == 0
    assert not app.lock.held()
    assert commands.unlock(app) == 0  # not locked: nothing to do


def test_reload_waits_until_every_worker_is_new(layout, tmp_path, monkeypatch):
    fifo, stats = tmp_path / "fifo", tmp_path / "stats.sock"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # uWSGI's master reads it
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stats))
    uid = pwd.getpwnam("www-data").pw_uid
    for path in (fifo, stats):
        os.chown(path, uid, -1)  # both are the uWSGI user's
    seen = iter([[{"pid": 1, "status": "idle"}], [{"pid": 1, "status": "idle"}]])
    monkeypatch.setattr(uwsgi, "workers", lambda stats: next(seen, [{"pid": 2, "status": "idle"}]))
    reload_layout = Layout(apps_dir=str(tmp_path), web2py_root="", fifo=str(fifo), stats=str(stats))
    try:
        assert commands.reload(reload_layout, timeout=5) == 0
        assert os.read(reader, 10) == b"c"  # uWSGI's master FIFO: chain reload
        monkeypatch.setattr(uwsgi, "workers", lambda stats: [{"pid": 1, "status": "idle"}])
        with pytest.raises(Failure, match="not all replaced within 0.3s"):
            commands.reload(reload_layout, timeout=0.3)
    finally:
        listener.close()
        os.close(reader)


def test_a_chain_reload_uwsgi_ignored_is_asked_again(tmp_path, monkeypatch):
    """uWSGI drops a 'c' while another chain reload runs (a dead run's, another app's): the
    reload asks again once no worker it saw was replaced for a while, until they all are."""
    fifo, stats = tmp_path / "fifo", tmp_path / "stats.sock"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stats))
    uid = pwd.getpwnam("www-data").pw_uid
    for path in (fifo, stats):
        os.chown(path, uid, -1)
    asked = bytearray()

    def workers(_: str) -> list[dict]:
        with contextlib.suppress(BlockingIOError):
            asked.extend(os.read(reader, 10))
        # uWSGI ignores the first 'c' (a chain reload already ran); the second replaces pid 1
        return [{"pid": 2 if asked.count(b"c") >= 2 else 1, "status": "idle"}]

    monkeypatch.setattr(uwsgi, "workers", workers)
    monkeypatch.setattr(uwsgi, "ASK_AGAIN_S", 0.3)
    try:
        uwsgi.chain_reload(str(fifo), str(stats), timeout=5, user="www-data")
        assert asked == b"cc", asked  # asked again once, then done
    finally:
        listener.close()
        os.close(reader)


def test_backup_writes_a_verified_zip_and_releases_the_lock(layout, tmp_path, capsys):
    deploy(layout, tmp_path, "1")
    app = app_of(layout)
    (app.shared / "databases" / "storage.sqlite").write_bytes(b"DATA")
    assert commands.backup(app) == 0
    (zip_path,) = Path(layout.backups_dir).glob("notes.*.zip")
    assert f"backup {zip_path}" in capsys.readouterr().out
    assert not app.lock.held()
    from server import backups

    assert backups.verified(app, zip_path.name) == zip_path


def test_restore_brings_back_code_and_data(layout, tmp_path):
    deploy(layout, tmp_path, "1")
    app = app_of(layout)
    (app.shared / "databases" / "storage.sqlite").write_bytes(b"BEFORE")
    commands.backup(app)
    deploy(layout, tmp_path, "2")
    (app.shared / "databases" / "storage.sqlite").write_bytes(b"AFTER")
    app = app_of(layout)
    assert commands.restore(app, RestoreOptions(restore_data=True)) == 0
    live = app.live_release()
    assert "-restore-" in live
    assert (app.web2py_link / "controllers" / "default.py").read_text() == "VERSION = '1'\n"
    assert (app.shared / "databases" / "storage.sqlite").read_bytes() == b"BEFORE"
    record = audit(layout)[-1]
    assert record["action"] == "restore" and record["restore_data"] is True
    assert record["restored_from"].startswith("notes.") and record["backup"]  # undo-able
    assert not (Path(layout.maintenance_dir) / "notes.down").exists()  # up again


def test_scheduler_check_passes_a_running_worker_and_names_a_failing_one(monkeypatch, capsys):
    monkeypatch.setattr(schedulers, "wait_for_scheduler", lambda unit, settle: (True, "up"))
    assert commands.scheduler_check("notes", 0.1) == 0
    monkeypatch.setattr(schedulers, "wait_for_scheduler", lambda unit, s: (False, "failed"))
    monkeypatch.setattr(schedulers, "journal_tail", lambda unit: "Traceback: boom")
    assert commands.scheduler_check("notes", 0.1) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "web2py-scheduler@notes.service is not running 0.1 s after its start: failed" in err
    assert "journal: Traceback: boom" in err


def test_a_locked_deploy_exits_locked_and_leaves_the_holders_notice(layout, tmp_path):
    holder = app_of(layout)
    holder.lock.acquire("carol@laptop", "9")  # this live process holds it
    notice = Path(layout.maintenance_dir) / "notes.notify"
    notice.write_text("<p>carol's deploy</p>")
    staged = tmp_path / "notice-notes.html"
    staged.write_text("<p>ours</p>")
    built = package(tmp_path, "1")
    (tmp_path / "release.json").write_text(layout.to_json())
    argv = [
        "deploy", "--layout", str(tmp_path / "release.json"), "--app", "notes",
        "--package", str(built.path), "--sha256", built.sha256,
        "--down", "--notice-seconds", "5", "--notice-file", str(staged),
    ]  # fmt: skip
    assert cli.main(argv) == EXIT_LOCKED
    assert notice.read_text() == "<p>carol's deploy</p>" and staged.exists()  # carol's
    assert holder.lock.held() and built.path.exists()  # nothing of the holder's was touched


def test_a_server_without_its_layout_file_gets_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "release.json"
    assert cli.main(["status", "--layout", str(missing), "--app", "notes"]) == EXIT_FAILED
    err = capsys.readouterr().err.strip()
    assert err == (
        f"{missing} is missing: this server's layout is written at install; run "
        "pyinfra INVENTORY deploys/install_web2py.py first"
    )


def test_the_layout_file_round_trips_and_refuses_what_it_does_not_know(layout, tmp_path):
    assert Layout.from_json(layout.to_json()) == layout
    record = json.loads(layout.to_json())
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        Layout.from_json(json.dumps({**record, "extra": 1}))
    del record["uwsgi"]
    with pytest.raises(ValueError, match=r"missing keys \['uwsgi'\]"):
        Layout.from_json(json.dumps(record))


def test_main_reload_and_watch_check_their_arguments(tmp_path, capsys):
    # reload takes no app (the units' ExecReload): it reaches the layout, never an app check
    missing = str(tmp_path / "no-release.json")
    assert cli.main(["reload", "--layout", missing]) == 1
    assert "no-release.json is missing" in capsys.readouterr().err
    assert cli.main(["watch", "--layout", missing, "--seconds", "1", "--app", "bad-name"]) == 2
    assert "not an app name" in capsys.readouterr().err


def test_a_run_that_died_after_its_switch_is_undone_by_the_next_deploy(layout, tmp_path, capsys):
    deploy(layout, tmp_path, "1")
    deploy(layout, tmp_path, "2")
    good = app_of(layout).live_release()
    # a third run unpacked and switched, then was killed: no "live" line, its lock left
    deploy(layout, tmp_path, "3")
    app = app_of(layout)
    died = app.live_release()
    log = Path(app.base / "release.log")
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))
    dead_lock(app)
    capsys.readouterr()
    assert commands.status(app) == 0
    state = json.loads(capsys.readouterr().out)
    assert f"release {died} was switched to by a run that died" in state["attention"], state
    assert "DEAD" in state["locked"], state

    code, _ = deploy(layout, tmp_path, "4")
    assert code == 0
    records = audit(layout)
    recovered, deployed = records[-2], records[-1]
    assert recovered["action"] == "recover" and recovered["result"] == "ok", recovered
    assert recovered["from"] == died and recovered["release"] == good, recovered
    assert recovered["took_over_lock_of"]["who"] == "bob", recovered
    assert deployed["action"] == "deploy" and deployed["result"] == "ok", deployed
    app = app_of(layout)
    assert died not in app.good_releases()  # never confirmed: not a rollback target
    assert (app.web2py_link / "controllers" / "default.py").read_text() == "VERSION = '4'\n"
    capsys.readouterr()
    assert commands.status(app) == 0
    assert json.loads(capsys.readouterr().out)["attention"] is None


def test_a_dead_rollback_is_undone_and_its_target_stays_good(layout, tmp_path):
    deploy(layout, tmp_path, "1")
    first = app_of(layout).live_release()
    deploy(layout, tmp_path, "2")
    second = app_of(layout).live_release()
    app = app_of(layout)
    golive.switch(app, first)  # the rollback's switch; then it was killed
    dead_lock(app)
    assert commands.unlock(app_of(layout)) == 0
    app = app_of(layout)
    assert app.live_release() == second and not app.lock.held()
    assert audit(layout)[-1]["action"] == "recover"
    assert app.good_releases() == [first, second]  # the first is still a rollback target


def test_a_window_a_dead_run_opened_is_lifted_and_an_operators_stays(layout, tmp_path):
    deploy(layout, tmp_path, "1")
    app = app_of(layout)
    flag = Path(layout.maintenance_dir) / "notes.down"
    flag.write_text(f"{window.RUN_MARK} {2**22 + 7}\n")
    dead_lock(app)
    assert commands.unlock(app) == 0
    assert not flag.exists()
    flag.write_text("")  # the operator's own `down`
    dead_lock(app)
    assert commands.unlock(app_of(layout)) == 0
    assert flag.exists()


def test_a_first_release_that_failed_is_not_taken_for_a_dead_run(layout, tmp_path):
    deploy(layout, tmp_path, "1")
    app = app_of(layout)
    app.record(app.live_release(), "failed")  # as a run that ended recorded it
    assert recover.unconfirmed(app) is None
