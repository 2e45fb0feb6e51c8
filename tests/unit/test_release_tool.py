"""The server-side release tool's pure parts, run locally on a fake app layout."""

import importlib.util
import itertools
import json
import os
import zipfile
from pathlib import Path

import pytest

from operations.scripts import LOCAL_DIR

spec = importlib.util.spec_from_file_location("web2py_release", LOCAL_DIR / "web2py-release.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

USER = "root"


@pytest.fixture()
def app(tmp_path):
    root = tmp_path / "web2py"
    (root / "applications" / "notes" / "controllers").mkdir(parents=True)
    (root / "applications" / "notes" / "controllers" / "default.py").write_text("x = 1\n")
    (root / "applications" / "notes" / "databases").mkdir()
    (root / "applications" / "notes" / "databases" / "storage.sqlite").write_bytes(b"DB")
    (root / "applications" / "notes" / "sessions").mkdir()
    (root / "applications" / "notes" / "sessions" / "s1").write_text("scratch")
    args = tool.parser().parse_args(
        [
            "backup", "--app", "notes", "--apps-dir", str(tmp_path / "apps"),
            "--web2py-root", str(root), "--user", USER, "--group", USER,
            "--backups-dir", str(tmp_path / "backups"), "--keep-backups", "3",
        ]
    )  # fmt: skip
    return tool.App(args)


def test_backups_in_the_same_second_never_collide(app, monkeypatch):
    monkeypatch.setattr(tool, "utc_stamp", lambda now=None: "20261125T101500Z")
    names = [app.backup() for _ in range(3)]
    assert names == [
        "notes.20261125T101500Z.zip",
        "notes.20261125T101500Z-2.zip",
        "notes.20261125T101500Z-3.zip",
    ]
    backups = Path(app.args.backups_dir)
    for name in names:
        digest, listed = (backups / f"{name}.sha256").read_text().split()
        assert listed == name and digest == tool.sha256_file(backups / name)
        assert oct((backups / name).stat().st_mode & 0o777) == "0o600"
    with zipfile.ZipFile(backups / names[0]) as zf:
        assert sorted(zf.namelist()) == [
            "notes/controllers/default.py",
            "notes/databases/storage.sqlite",
        ]  # sessions are scratch: not backed up


def test_retention_keeps_newest_backups(app, monkeypatch):
    stamps = iter(f"2026112{i}T000000Z" for i in range(5))
    monkeypatch.setattr(tool, "utc_stamp", lambda now=None: next(stamps))
    names = []
    for i in range(5):
        names.append(app.backup())
        os.utime(Path(app.args.backups_dir) / names[-1], (1000 + i, 1000 + i))
        app.prune_backups()
    left = sorted(p.name for p in Path(app.args.backups_dir).glob("*.zip"))
    assert left == sorted(names[-3:])


def make_release(app, name):
    (app.releases / name).mkdir(parents=True)


def test_prune_never_removes_live_or_last_good(app):
    for name in ("r1", "r2", "r3", "r4", "r5", "r6"):
        make_release(app, name)
    app.base.mkdir(parents=True, exist_ok=True)
    for name, event in [("r1", "live"), ("r2", "live"), ("r3", "failed"), ("r4", "live"),
                        ("r5", "failed"), ("r6", "failed")]:  # fmt: skip
        app.record(name, event)
    os.symlink("releases/r4", app.current)
    app.args.keep_releases = 2
    removed = app.prune_releases()
    left = sorted(p.name for p in app.releases.iterdir())
    assert "r4" in left and "r2" in left  # live, and the last good before it
    assert set(removed) | set(left) == {"r1", "r2", "r3", "r4", "r5", "r6"}


def test_rollback_target_follows_the_release_log_not_names(app):
    for name in ("b", "a", "c"):
        make_release(app, name)
    for name, event in [("b", "live"), ("a", "live"), ("c", "failed"), ("b", "live")]:
        app.record(name, event)
    # by the log: b was live last, a before it; c never served
    assert app.good_releases() == ["a", "b"]


def test_lock_names_holder_and_is_exclusive(app):
    app.acquire("1.2.3")
    info = json.loads((app.lock_dir / "info.json").read_text())
    assert info["version"] == "1.2.3"
    with pytest.raises(tool.Failure, match="locked by .* \\(version 1.2.3\\).*deploys/unlock.py"):
        app.acquire("2.0")
    app.release_lock()
    app.acquire("2.0")


def test_restore_refuses_corrupt_foreign_and_unknown_backups(app, monkeypatch, tmp_path):
    monkeypatch.setattr(tool, "utc_stamp", lambda now=None: "20261125T101500Z")
    name = app.backup()
    backups = Path(app.args.backups_dir)
    assert app.verified_backup("latest").name == name
    assert app.verified_backup(name).name == name
    with pytest.raises(tool.Failure, match="no backup 'other.zip'"):
        app.verified_backup("other.zip")
    with pytest.raises(tool.Failure, match="no backup"):
        app.verified_backup("../etc/passwd")
    # corrupt: one byte changed
    data = bytearray((backups / name).read_bytes())
    data[-30] ^= 0xFF
    (backups / name).write_bytes(bytes(data))
    with pytest.raises(tool.Failure, match="does not match its sha256: corrupt, refused"):
        app.verified_backup(name)
    # foreign: a valid zip with a valid .sha256, but of another app
    foreign = backups / "notes.20261125T111111Z.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("blog/controllers/default.py", "x = 1\n")
    (backups / f"{foreign.name}.sha256").write_text(
        f"{tool.sha256_file(foreign)}  {foreign.name}\n"
    )
    with pytest.raises(tool.Failure, match="is not a backup of this app: refused"):
        app.verified_backup(foreign.name)


def test_backup_becomes_a_release_of_code_only(app, monkeypatch):
    monkeypatch.setattr(tool, "utc_stamp", lambda now=None: "20261125T101500Z")
    zip_path = Path(app.args.backups_dir) / app.backup()
    release_dir = app.unpack_backup(zip_path, "r-restore", {"sha256": "restore:x"})
    assert (release_dir / "controllers" / "default.py").read_text() == "x = 1\n"
    assert (release_dir / "databases").is_symlink()  # data comes from shared/, not the backup
    manifest = tool.parse_manifest((release_dir / tool.MANIFEST).read_text())
    assert list(manifest) == ["controllers/default.py"]
    assert json.loads((release_dir / tool.REVISION).read_text())["sha256"] == "restore:x"


def test_cleanup_dry_run_reports_and_real_run_removes(app, monkeypatch, capsys):
    stamps = (f"202611{20 + i}T000000Z" for i in itertools.count())
    monkeypatch.setattr(tool, "utc_stamp", lambda now=None: next(stamps))
    for i in range(5):
        name = app.backup()
        os.utime(Path(app.args.backups_dir) / name, (1000 + i, 1000 + i))
    app.args.keep_backups = 10  # backups made above were pruned to 3 by backup() itself
    (app.shared / "sessions").mkdir(parents=True)
    old, new = app.shared / "sessions" / "old", app.shared / "sessions" / "new"
    old.write_text("o")
    new.write_text("n")
    os.utime(old, (1, 1))
    args = app.args
    args.days, args.dry_run, args.keep_backups = 30, True, 1
    assert tool.cmd_cleanup(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == 1 and len(report["backups"]) == 2 and report["releases"] == []
    assert old.exists()  # a dry run removes nothing
    args.dry_run = False
    assert tool.cmd_cleanup(args) == 0
    assert not old.exists() and new.exists()
    assert len(list(Path(args.backups_dir).glob("*.zip"))) == 1


def test_a_plain_folders_data_is_adopted_only_when_asked(app, monkeypatch):
    """Unpacking never copies a live plain folder's data (writes after the copy would be
    lost): go_live copies it after taking the app down."""
    monkeypatch.setattr(tool, "utc_stamp", lambda now=None: "20261125T101500Z")
    zip_path = Path(app.args.backups_dir) / app.backup()
    app.unpack_backup(zip_path, "r1", {"sha256": "restore:x"})
    assert not (app.shared / "databases").exists()  # the folder still holds the live data
    assert (app.shared / "uploads").is_dir()  # a data dir the folder lacks starts empty
    assert app.adopt_legacy() == ["databases", "sessions"]
    assert (app.shared / "databases" / "storage.sqlite").read_bytes() == b"DB"
    assert app.adopt_legacy() == []  # shared data, once there, is live and never overwritten


def window_app(app, tmp_path, **options):
    app.args.maintenance_dir = str(tmp_path / "maintenance")
    app.args.stats = str(tmp_path / "no-stats.sock")
    app.args.notice_seconds = options.get("notice_seconds", 0)
    app.args.drain_timeout = 1
    (tmp_path / "maintenance").mkdir(exist_ok=True)
    return tool.Window(app)


def test_window_goes_down_after_the_notice_and_comes_back_up(app, tmp_path, monkeypatch):
    window = window_app(app, tmp_path, notice_seconds=60)
    window.notice.write_text("<p>soon</p>")
    os.utime(window.notice, (1000.0, 1000.0))  # written at t=1000
    slept = []
    monkeypatch.setattr(tool.time, "time", lambda: 1015.0)
    monkeypatch.setattr(tool.time, "sleep", slept.append)
    window.open("deploy")
    assert slept == [45.0]  # the rest of the notice period
    assert window.flag.exists() and window.notice.exists()  # the notice goes on the way up
    window.close()
    assert not window.flag.exists() and not window.notice.exists()


def test_window_leaves_an_app_the_operator_took_down_down(app, tmp_path):
    window = window_app(app, tmp_path)
    window.flag.touch()
    window.open("deploy")
    window.close()
    assert window.flag.exists()


def test_window_is_lifted_when_the_deploy_fails(app, tmp_path):
    window = window_app(app, tmp_path)
    app.args.down = True
    app.args.health_path = ""
    app.base.mkdir(parents=True)  # acquire() makes it
    calls = []

    def unpack():
        calls.append(window.flag.exists())
        raise tool.Failure("notes: broken package")

    entry: dict = {}
    assert tool.go_live(app, "r1", unpack, entry, backup=False) == tool.EXIT_FAILED
    assert calls == [False]  # unpacking happens while the app still serves
    assert entry["result"].startswith("failed") and not window.flag.exists()

    def unpack_ok():
        return app.releases / "r2"

    def data():
        calls.append(window.flag.exists())
        raise tool.Failure("notes: data copy failed")

    assert tool.go_live(app, "r2", unpack_ok, entry, backup=False, data=data) == 1
    assert calls == [False, True]  # data only moves while the app is down
    assert not window.flag.exists()


def test_a_deploy_that_ends_early_takes_its_notice_down(app, tmp_path):
    maintenance = tmp_path / "maintenance"
    maintenance.mkdir()
    (maintenance / "notes.notify").write_text("<p>soon</p>")
    staged = tmp_path / "notice-notes.html"
    staged.write_text("<p>soon</p>")
    argv = [
        "restore", "--app", "notes", "--apps-dir", app.args.apps_dir,
        "--web2py-root", app.args.web2py_root, "--user", USER, "--group", USER,
        "--backups-dir", str(tmp_path / "empty"), "--backup-name", "latest",
        "--maintenance-dir", str(maintenance), "--down", "--notice-seconds", "30",
        "--notice-file", str(staged),
    ]  # fmt: skip
    assert tool.main(argv) == tool.EXIT_FAILED  # no backups
    assert not (maintenance / "notes.notify").exists() and not staged.exists()


def test_backup_snapshots_a_live_sqlite_database_and_skips_vanished_files(app, monkeypatch):
    import sqlite3

    db = Path(app.args.web2py_root) / "applications" / "notes" / "databases" / "storage.sqlite"
    db.unlink()
    writer = sqlite3.connect(db)
    writer.execute("create table note (title text)")
    writer.execute("insert into note values ('committed')")
    writer.commit()
    writer.execute("insert into note values ('in flight')")  # open transaction, not committed
    (db.parent / "storage.sqlite-journal").write_bytes(b"half a transaction")
    gone = db.parent / "gone.table"
    gone.write_text("x")
    real_write = zipfile.ZipFile.write

    def write(self, filename, arcname=None, *args, **kwargs):
        if Path(filename) == gone:
            gone.unlink()  # the app removes it between the walk and the read
        return real_write(self, filename, arcname, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "write", write)
    name = app.backup()
    writer.rollback()
    writer.close()
    with zipfile.ZipFile(Path(app.args.backups_dir) / name) as zf:
        names = zf.namelist()
        snapshot = zf.read("notes/databases/storage.sqlite")
    assert "notes/databases/storage.sqlite-journal" not in names
    assert "notes/databases/gone.table" not in names
    copy = Path(app.args.backups_dir) / "copy.sqlite"
    copy.write_bytes(snapshot)
    rows = sqlite3.connect(copy).execute("select title from note").fetchall()
    assert rows == [("committed",)]
    assert not list(Path(app.args.backups_dir).glob(".sqlite-snapshot-*"))


def live_release_from_package(app, tmp_path, files: dict[str, str]):
    from operations.packaging import build_package

    source = tmp_path / "src"
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    package = build_package(source, tmp_path / "p1.tar.gz")
    app.base.mkdir(parents=True, exist_ok=True)
    app.unpack(package.path, package.sha256, "r1", {"sha256": package.sha256})
    os.symlink("releases/r1", app.current)
    return source, package


def test_delta_rebuilds_the_release_with_links_to_unchanged_files(app, tmp_path):
    from operations.packaging import build_delta, build_package

    files = {"controllers/default.py": "x = 1\n", "modules/a.py": "a\n", "modules/b.py": "b\n"}
    source, old = live_release_from_package(app, tmp_path, files)
    (source / "modules" / "a.py").write_text("a2\n")
    (source / "modules" / "b.py").unlink()
    new = build_package(source, tmp_path / "p2.tar.gz")
    delta = build_delta(new, old.files, tmp_path / "d.tar.gz")

    release = app.unpack_delta(delta.path, delta.sha256, "r2", {"sha256": new.sha256})
    assert (release / "modules" / "a.py").read_text() == "a2\n"
    assert not (release / "modules" / "b.py").exists()
    unchanged = release / "controllers" / "default.py"
    assert unchanged.stat().st_ino == (app.releases / "r1" / "controllers/default.py").stat().st_ino
    assert tool.parse_manifest((release / tool.MANIFEST).read_text()) == new.files
    assert (release / "databases").is_symlink()


def test_delta_is_refused_on_another_base_or_with_a_bad_file(app, tmp_path):
    from operations.packaging import build_delta, build_package

    source, old = live_release_from_package(app, tmp_path, {"controllers/default.py": "x\n"})
    (source / "modules").mkdir()
    (source / "modules" / "a.py").write_text("a\n")
    new = build_package(source, tmp_path / "p2.tar.gz")
    elsewhere = {**old.files, "controllers/other.py": "0" * 64}
    wrong_base = build_delta(new, elsewhere, tmp_path / "d1.tar.gz")
    with pytest.raises(tool.Failure, match="live release changed"):
        app.unpack_delta(wrong_base.path, wrong_base.sha256, "r2", {})
    delta = build_delta(new, old.files, tmp_path / "d2.tar.gz")
    with pytest.raises(tool.Failure, match="does not have sha256"):
        app.unpack_delta(delta.path, "0" * 64, "r3", {})
    assert sorted(p.name for p in app.releases.iterdir() if not p.name.startswith(".")) == ["r1"]


def test_the_staged_notice_goes_up_only_when_the_deploy_starts(app, tmp_path):
    window = window_app(app, tmp_path, notice_seconds=30)
    staged = tmp_path / "cache-notice.html"
    app.args.notice_file = str(staged)
    staged.write_text("<p>soon</p>")
    window.show_notice()
    assert window.notice.read_text() == "<p>soon</p>" and not staged.exists()
    assert oct(window.notice.stat().st_mode & 0o777) == "0o644"

    window.notice.unlink()
    staged.write_text("<p>soon</p>")
    window.flag.touch()  # down already: the operator's page stays, no notice
    window.show_notice()
    assert not window.notice.exists() and not staged.exists()
