"""The server-side release tool (server/), run locally on a fake app layout."""

import itertools
import json
import os
import shutil
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from operations import formats
from operations.formats import EXIT_FAILED, AuditRecord
from server import backups, checks, cli, commands, files, golive, lock, releases, shared, uwsgi
from server.app import App
from server.errors import Failure, Locked
from server.settings import Checks, CleanupOptions, Layout, Options
from server.window import Window

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
    layout = Layout(
        apps_dir=str(tmp_path / "apps"), web2py_root=str(root), user=USER, group=USER,
        backups_dir=str(tmp_path / "backups"),
    )  # fmt: skip
    return App("notes", layout, Options(checks=Checks(keep_backups=3)))


def test_backups_in_the_same_second_never_collide(app, monkeypatch):
    monkeypatch.setattr(formats, "utc_stamp", lambda now=None: "20261125T101500Z")
    names = [backups.backup(app) for _ in range(3)]
    assert names == [
        "notes.20261125T101500Z.zip",
        "notes.20261125T101500Z-2.zip",
        "notes.20261125T101500Z-3.zip",
    ]
    backup_dir = Path(app.layout.backups_dir)
    for name in names:
        digest, listed = (backup_dir / f"{name}.sha256").read_text().split()
        assert listed == name and digest == formats.sha256_file(backup_dir / name)
        assert oct((backup_dir / name).stat().st_mode & 0o777) == "0o600"
    with zipfile.ZipFile(backup_dir / names[0]) as zf:
        assert sorted(zf.namelist()) == [
            "notes/controllers/default.py",
            "notes/databases/storage.sqlite",
        ]  # sessions are scratch: not backed up


def test_retention_keeps_newest_backups(app, monkeypatch):
    stamps = iter(f"2026112{i}T000000Z" for i in range(5))
    monkeypatch.setattr(formats, "utc_stamp", lambda now=None: next(stamps))
    names = []
    for i in range(5):
        names.append(backups.backup(app))
        os.utime(Path(app.layout.backups_dir) / names[-1], (1000 + i, 1000 + i))
        backups.prune(app)
    left = sorted(p.name for p in Path(app.layout.backups_dir).glob("*.zip"))
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
    app.checks.keep_releases = 2
    removed = releases.prune(app)
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
    app.lock.acquire("alice@laptop", "1.2.3")
    info = json.loads((app.lock.path / "info.json").read_text())
    assert info["version"] == "1.2.3"
    with pytest.raises(Failure, match="locked by .* \\(version 1.2.3\\).*deploys/unlock.py"):
        app.lock.acquire("alice@laptop", "2.0")
    app.lock.release()
    app.lock.acquire("alice@laptop", "2.0")


def test_restore_refuses_corrupt_foreign_and_unknown_backups(app, monkeypatch, tmp_path):
    monkeypatch.setattr(formats, "utc_stamp", lambda now=None: "20261125T101500Z")
    name = backups.backup(app)
    backup_dir = Path(app.layout.backups_dir)
    assert backups.verified(app, "latest").name == name
    assert backups.verified(app, name).name == name
    with pytest.raises(Failure, match="no backup 'other.zip'"):
        backups.verified(app, "other.zip")
    with pytest.raises(Failure, match="no backup"):
        backups.verified(app, "../etc/passwd")
    # corrupt: one byte changed
    data = bytearray((backup_dir / name).read_bytes())
    data[-30] ^= 0xFF
    (backup_dir / name).write_bytes(bytes(data))
    with pytest.raises(Failure, match="does not match its sha256: corrupt, refused"):
        backups.verified(app, name)
    # foreign: a valid zip with a valid .sha256, but of another app
    foreign = backup_dir / "notes.20261125T111111Z.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("blog/controllers/default.py", "x = 1\n")
    (backup_dir / f"{foreign.name}.sha256").write_text(
        f"{formats.sha256_file(foreign)}  {foreign.name}\n"
    )
    with pytest.raises(Failure, match="is not a backup of this app: refused"):
        backups.verified(app, foreign.name)


def test_backup_becomes_a_release_of_code_only(app, monkeypatch):
    monkeypatch.setattr(formats, "utc_stamp", lambda now=None: "20261125T101500Z")
    zip_path = Path(app.layout.backups_dir) / backups.backup(app)
    release_dir = releases.unpack_backup(app, zip_path, "r-restore", {"sha256": "restore:x"})
    assert (release_dir / "controllers" / "default.py").read_text() == "x = 1\n"
    assert (release_dir / "databases").is_symlink()  # data comes from shared/, not the backup
    manifest = formats.parse_manifest((release_dir / formats.MANIFEST).read_text())
    assert list(manifest) == ["controllers/default.py"]
    assert json.loads((release_dir / formats.REVISION).read_text())["sha256"] == "restore:x"


def test_cleanup_dry_run_reports_and_real_run_removes(app, monkeypatch, capsys):
    stamps = (f"202611{20 + i}T000000Z" for i in itertools.count())
    monkeypatch.setattr(formats, "utc_stamp", lambda now=None: next(stamps))
    for i in range(5):
        name = backups.backup(app)
        os.utime(Path(app.layout.backups_dir) / name, (1000 + i, 1000 + i))
    app.checks.keep_backups = 10  # backups made above were pruned to 3 by backup() itself
    (app.shared / "sessions").mkdir(parents=True)
    old, new = app.shared / "sessions" / "old", app.shared / "sessions" / "new"
    old.write_text("o")
    new.write_text("n")
    os.utime(old, (1, 1))
    app.checks.keep_backups = 1
    assert commands.cleanup(app, CleanupOptions(days=30, dry_run=True)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == 1 and len(report["backups"]) == 2 and report["releases"] == []
    assert old.exists()  # a dry run removes nothing
    assert commands.cleanup(app, CleanupOptions(days=30)) == 0
    assert not old.exists() and new.exists()
    assert len(list(Path(app.layout.backups_dir).glob("*.zip"))) == 1


def test_a_plain_folders_data_is_adopted_only_when_asked(app, monkeypatch):
    """Unpacking never copies a live plain folder's data (writes after the copy would be
    lost): go_live copies it after taking the app down."""
    monkeypatch.setattr(formats, "utc_stamp", lambda now=None: "20261125T101500Z")
    zip_path = Path(app.layout.backups_dir) / backups.backup(app)
    releases.unpack_backup(app, zip_path, "r1", {"sha256": "restore:x"})
    assert not (app.shared / "databases").exists()  # the folder still holds the live data
    assert (app.shared / "uploads").is_dir()  # a data dir the folder lacks starts empty
    assert shared.adopt_legacy(app) == ["databases", "sessions"]
    assert (app.shared / "databases" / "storage.sqlite").read_bytes() == b"DB"
    assert shared.adopt_legacy(app) == []  # shared data, once there, is live and never overwritten


def window_app(app, tmp_path, **options):
    app.layout = replace(
        app.layout,
        maintenance_dir=str(tmp_path / "maintenance"),
        stats=str(tmp_path / "no-stats.sock"),
    )
    app.options.notice_seconds = options.get("notice_seconds", 0)
    app.options.drain_timeout = 1
    (tmp_path / "maintenance").mkdir(exist_ok=True)
    return Window(app)


def test_window_goes_down_after_the_notice_and_comes_back_up(app, tmp_path, monkeypatch):
    window = window_app(app, tmp_path, notice_seconds=60)
    window.notice.write_text("<p>soon</p>")
    os.utime(window.notice, (1000.0, 1000.0))  # written at t=1000
    slept = []
    monkeypatch.setattr(time, "time", lambda: 1015.0)
    monkeypatch.setattr(time, "sleep", slept.append)
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
    app.options.down = True
    app.checks.health_path = ""
    app.base.mkdir(parents=True)  # acquire() makes it
    calls = []

    def unpack():
        calls.append(window.flag.exists())
        raise Failure("notes: broken package")

    entry = AuditRecord()
    assert golive.go_live(app, "r1", unpack, entry, backup=False) == EXIT_FAILED
    assert calls == [False]  # unpacking happens while the app still serves
    assert entry.result.startswith("failed") and not window.flag.exists()

    def unpack_ok():
        return app.releases / "r2"

    def data():
        calls.append(window.flag.exists())
        raise Failure("notes: data copy failed")

    assert golive.go_live(app, "r2", unpack_ok, entry, backup=False, data=data) == EXIT_FAILED
    assert calls == [False, True]  # data only moves while the app is down
    assert not window.flag.exists()


def test_a_deploy_that_ends_early_takes_its_notice_down(app, tmp_path):
    maintenance = tmp_path / "maintenance"
    maintenance.mkdir()
    (maintenance / "notes.notify").write_text("<p>soon</p>")
    staged = tmp_path / "notice-notes.html"
    staged.write_text("<p>soon</p>")
    layout = replace(
        app.layout, backups_dir=str(tmp_path / "empty"), maintenance_dir=str(maintenance)
    )
    (tmp_path / "release.json").write_text(layout.to_json())
    argv = [
        "restore", "--layout", str(tmp_path / "release.json"), "--app", "notes",
        "--backup-name", "latest", "--down", "--notice-seconds", "30",
        "--notice-file", str(staged),
    ]  # fmt: skip
    assert cli.main(argv) == EXIT_FAILED  # no backups
    assert not (maintenance / "notes.notify").exists() and not staged.exists()


def test_backup_snapshots_a_live_sqlite_database_and_skips_vanished_files(app, monkeypatch):
    import sqlite3

    db = Path(app.layout.web2py_root) / "applications" / "notes" / "databases" / "storage.sqlite"
    db.unlink()
    writer = sqlite3.connect(db)
    writer.execute("create table note (title text)")
    writer.execute("insert into note values ('committed')")
    writer.commit()
    writer.execute("insert into note values ('in flight')")  # open transaction, not committed
    (db.parent / "storage.sqlite-journal").write_bytes(b"half a transaction")
    gone = db.parent / "gone.table"
    gone.write_text("x")
    real_scandir = os.scandir

    class Listing(list):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def scandir(fd):
        with real_scandir(fd) as it:
            entries = Listing(it)
        if gone.exists() and "gone.table" in [e.name for e in entries]:
            gone.unlink()  # the app removes it between the listing and the read
        return entries

    monkeypatch.setattr(os, "scandir", scandir)
    name = backups.backup(app)
    writer.rollback()
    writer.close()
    with zipfile.ZipFile(Path(app.layout.backups_dir) / name) as zf:
        names = zf.namelist()
        snapshot = zf.read("notes/databases/storage.sqlite")
    assert "notes/databases/storage.sqlite-journal" not in names
    assert "notes/databases/gone.table" not in names
    copy = Path(app.layout.backups_dir) / "copy.sqlite"
    copy.write_bytes(snapshot)
    rows = sqlite3.connect(copy).execute("select title from note").fetchall()
    assert rows == [("committed",)]
    assert not list(Path(app.layout.backups_dir).glob(".sqlite-snapshot-*"))


def live_release_from_package(app, tmp_path, files: dict[str, str]):
    from operations.local.packaging import build_package

    source = tmp_path / "src"
    for name, text in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    package = build_package(source, tmp_path / "p1.tar.gz")
    app.base.mkdir(parents=True, exist_ok=True)
    releases.unpack(app, package.path, package.sha256, "r1", {"sha256": package.sha256})
    os.symlink("releases/r1", app.current)
    return source, package


def test_delta_rebuilds_the_release_with_links_to_unchanged_files(app, tmp_path):
    from operations.local.packaging import build_delta, build_package

    files = {"controllers/default.py": "x = 1\n", "modules/a.py": "a\n", "modules/b.py": "b\n"}
    source, old = live_release_from_package(app, tmp_path, files)
    (source / "modules" / "a.py").write_text("a2\n")
    (source / "modules" / "b.py").unlink()
    new = build_package(source, tmp_path / "p2.tar.gz")
    delta = build_delta(new, old.files, tmp_path / "d.tar.gz")

    release = releases.unpack_delta(app, delta.path, delta.sha256, "r2", {"sha256": new.sha256})
    assert (release / "modules" / "a.py").read_text() == "a2\n"
    assert not (release / "modules" / "b.py").exists()
    unchanged = release / "controllers" / "default.py"
    assert unchanged.stat().st_ino == (app.releases / "r1" / "controllers/default.py").stat().st_ino
    assert formats.parse_manifest((release / formats.MANIFEST).read_text()) == new.files
    assert (release / "databases").is_symlink()


def test_delta_is_refused_on_another_base_or_with_a_bad_file(app, tmp_path):
    from operations.local.packaging import build_delta, build_package

    source, old = live_release_from_package(app, tmp_path, {"controllers/default.py": "x\n"})
    (source / "modules").mkdir()
    (source / "modules" / "a.py").write_text("a\n")
    new = build_package(source, tmp_path / "p2.tar.gz")
    elsewhere = {**old.files, "controllers/other.py": "0" * 64}
    wrong_base = build_delta(new, elsewhere, tmp_path / "d1.tar.gz")
    with pytest.raises(Failure, match="live release changed"):
        releases.unpack_delta(app, wrong_base.path, wrong_base.sha256, "r2", {})
    delta = build_delta(new, old.files, tmp_path / "d2.tar.gz")
    with pytest.raises(Failure, match="does not have sha256"):
        releases.unpack_delta(app, delta.path, "0" * 64, "r3", {})
    assert sorted(p.name for p in app.releases.iterdir() if not p.name.startswith(".")) == ["r1"]


def test_the_staged_notice_goes_up_only_when_the_deploy_starts(app, tmp_path):
    window = window_app(app, tmp_path, notice_seconds=30)
    staged = tmp_path / "cache-notice.html"
    app.options.notice_file = str(staged)
    staged.write_text("<p>soon</p>")
    window.show_notice()
    assert window.notice.read_text() == "<p>soon</p>" and not staged.exists()
    assert oct(window.notice.stat().st_mode & 0o777) == "0o644"

    window.notice.unlink()
    staged.write_text("<p>soon</p>")
    window.flag.touch()  # down already: the operator's page stays, no notice
    window.show_notice()
    assert not window.notice.exists() and not staged.exists()


def shop_files() -> dict[str, str]:
    return {
        "controllers/default.py": "x = 1\n",
        "private/appconfig.ini": "[app]\nenvironment = development\n",
        "private/content/en/what.markmin": "# What v1\n",
    }


def test_private_ships_with_the_release_and_shared_files_are_seeded_once(app, tmp_path):
    app.options.shared_files = ("private/appconfig.ini", "private/auth.key")
    source, _ = live_release_from_package(app, tmp_path, shop_files())
    r1 = app.releases / "r1"
    # code: root-owned, readable by the web2py group only; the shared file is a link
    content = r1 / "private" / "content" / "en" / "what.markmin"
    assert content.read_text() == "# What v1\n" and not content.is_symlink()
    assert oct(content.stat().st_mode & 0o777) == "0o640"
    config = r1 / "private" / "appconfig.ini"
    assert config.is_symlink() and "development" in config.read_text()
    seeded = app.shared / "files" / "private" / "appconfig.ini"
    assert oct(seeded.stat().st_mode & 0o777) == "0o640"
    assert json.loads((r1 / formats.REVISION).read_text())["overlays"] == ["private/appconfig.ini"]
    assert not (app.shared / "files" / "private" / "auth.key").exists()  # nothing to seed from
    # the server's copy is kept from then on; a new package's copy does not replace it
    seeded.write_text("[app]\nenvironment = production\n")
    (source / "private" / "appconfig.ini").write_text("[app]\nenvironment = changed\n")
    from operations.local.packaging import build_package

    new = build_package(source, tmp_path / "p2.tar.gz")
    r2 = releases.unpack(app, new.path, new.sha256, "r2", {"sha256": new.sha256})
    assert "production" in (r2 / "private" / "appconfig.ini").read_text()


def test_a_staged_auth_key_seeds_only_a_host_without_one(app, tmp_path):
    app.options.shared_files = ("private/auth.key",)
    staged = tmp_path / "auth-key-notes"
    staged.write_text("sha512:pushed")
    app.options.seeds = {"private/auth.key": str(staged)}
    live_release_from_package(app, tmp_path, shop_files())
    key = app.releases / "r1" / "private" / "auth.key"
    assert key.is_symlink() and key.read_text() == "sha512:pushed"


def test_the_old_layouts_private_files_are_kept_not_lost(app, tmp_path, capsys):
    # before: private/ was a data dir (shared/private), auth.key written there by web2py
    old = app.shared / "private"
    (old / "content" / "en").mkdir(parents=True)
    (old / "auth.key").write_text("sha512:old-key")
    (old / "appconfig.ini").write_text("[app]\nenvironment = server\n")
    (old / "content" / "en" / "what.markmin").write_text("# stale\n")
    (old / "uploaded-by-app.txt").write_text("runtime")
    os.symlink("/etc/shadow", old / "planted")  # never followed
    app.options.shared_files = ("private/appconfig.ini", "private/auth.key")
    live_release_from_package(app, tmp_path, shop_files())
    r1 = app.releases / "r1" / "private"
    assert (r1 / "auth.key").read_text() == "sha512:old-key"
    assert "server" in (r1 / "appconfig.ini").read_text()  # the server's copy wins
    assert (r1 / "content" / "en" / "what.markmin").read_text() == "# What v1\n"  # the package's
    assert (r1 / "uploaded-by-app.txt").read_text() == "runtime"  # kept, linked, reported
    assert (
        not (r1 / "planted").exists()
        and not (app.shared / "files" / "private" / "planted").exists()
    )
    assert "kept private/uploaded-by-app.txt from shared/private" in capsys.readouterr().out
    assert (old / "auth.key").exists()  # the old folder stays for releases made before


def test_a_rendered_appconfig_is_part_of_the_release(app, tmp_path):
    staged, masked = tmp_path / "appconfig.ini", tmp_path / "appconfig.masked"
    staged.write_text("[db]\nuri = postgres://shop:s3cret@db/shop\n")
    masked.write_text("[db]\nuri = postgres://shop:********@db/shop\n")
    app.options.appconfig, app.options.appconfig_masked = str(staged), str(masked)
    app.options.shared_files = ("private/auth.key",)
    live_release_from_package(app, tmp_path, shop_files())
    config = app.releases / "r1" / "private" / "appconfig.ini"
    assert not config.is_symlink() and "s3cret" in config.read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    twin = app.releases / "r1" / formats.MASKED_APPCONFIG
    assert "********" in twin.read_text() and oct(twin.stat().st_mode & 0o777) == "0o600"


def test_a_first_deploy_that_never_went_live_leaves_nothing_in_the_way(app, tmp_path):
    from operations.local.packaging import build_package

    shutil.rmtree(app.web2py_link)  # a new app, not a plain folder to adopt
    source = tmp_path / "src"
    for name, text in {**shop_files(), "databases/storage.sqlite": "SEED"}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    app.options.shared_files = ("private/appconfig.ini",)
    code = build_package(source, tmp_path / "code.tar.gz")
    releases.unpack(app, code.path, code.sha256, "r1", {})  # attempt 1 (code mode): fails later
    app.record("r1", "failed")
    (app.shared / "databases" / "junk-of-the-check").write_text("x")
    (app.shared / "files" / "private" / "appconfig.ini").write_text("stale seed")
    full = build_package(source, tmp_path / "full.tar.gz", mode="full")
    releases.unpack(app, full.path, full.sha256, "r2", {})  # attempt 2 (full mode) seeds afresh
    assert sorted(p.name for p in (app.shared / "databases").iterdir()) == ["storage.sqlite"]
    assert "development" in (app.shared / "files" / "private" / "appconfig.ini").read_text()


def test_rollback_and_restore_use_the_recorded_settings(app, tmp_path):
    def rollback_app():
        return App("notes", app.layout)  # nothing given: as recorded

    settings = {"health_path": "/notes/default/health", "health_text": "ok", "keep_releases": 7}
    live_release_from_package(app, tmp_path, {"controllers/default.py": "x\n"})
    revision = app.releases / "r1" / formats.REVISION
    revision.write_text(json.dumps({"release": "r1", "settings": settings}))
    recorded = rollback_app()
    assert recorded.checks.health_path == "/notes/default/health"
    assert recorded.checks.health_text == "ok" and recorded.checks.keep_releases == 7
    assert recorded.checks.health_status == 200 and recorded.checks.hooks == "{}"
    revision.write_text(json.dumps({"release": "r1"}))  # a release from before: defaults
    assert rollback_app().checks.health_path == "/notes/default/index"


def test_a_restore_never_prunes_the_backup_it_restores(app, monkeypatch):
    stamps = iter(f"2026112{i}T000000Z" for i in range(5))
    monkeypatch.setattr(formats, "utc_stamp", lambda now=None: next(stamps))
    app.checks.keep_backups = 1
    first = backups.backup(app)
    os.utime(Path(app.layout.backups_dir) / first, (1000, 1000))
    app.keep_backup.add(first)
    backups.backup(app)
    assert (Path(app.layout.backups_dir) / first).exists()


def test_a_failed_first_attempt_keeps_the_pushed_key_but_not_the_package_seeds(app, tmp_path):
    from operations.local.packaging import build_package

    shutil.rmtree(app.web2py_link)
    source = tmp_path / "src"
    for name, text in shop_files().items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    staged = tmp_path / "key"
    staged.write_text("sha512:pushed")
    app.options.shared_files = ("private/appconfig.ini", "private/auth.key")
    app.options.seeds = {"private/auth.key": str(staged)}
    first = build_package(source, tmp_path / "p1.tar.gz")
    releases.unpack(app, first.path, first.sha256, "r1", {})
    app.record("r1", "failed")
    (source / "private" / "appconfig.ini").write_text("[app]\nenvironment = fixed\n")
    app.options.seeds = {}  # the controller saw the key on the host: nothing pushed this time
    fixed = build_package(source, tmp_path / "p2.tar.gz")
    r2 = releases.unpack(app, fixed.path, fixed.sha256, "r2", {})
    assert (r2 / "private" / "auth.key").read_text() == "sha512:pushed"
    assert "fixed" in (r2 / "private" / "appconfig.ini").read_text()


def test_a_failed_check_names_the_error_from_web2pys_ticket(app, tmp_path):
    import pickle

    errors = app.shared / "errors"
    errors.mkdir(parents=True)
    trace = (
        'Traceback (most recent call last):\n  File "models/db.py", line 3\nRuntimeError: boom\n'
    )
    ticket = "203.0.113.1.2026-12-02.01-16-02.abc"
    (errors / ticket).write_bytes(pickle.dumps({"layer": "models/db.py", "traceback": trace}))
    body = f'Ticket issued: <a href="/admin/default/ticket/notes/{ticket}">x</a>'.encode()
    app.checks.health_path, app.checks.health_status = "/notes/default/index", 200
    with pytest.raises(Failure, match=r"answered 500, expected 200: .*RuntimeError: boom"):
        checks.judge(app, "pre-switch check", 500, body)


def test_a_hostile_ticket_runs_nothing_and_a_page_without_one_is_quoted(app):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/pwned-by-ticket",))

    errors = app.shared / "errors"
    errors.mkdir(parents=True)
    (errors / "t1").write_bytes(pickle.dumps({"traceback": Evil()}))
    Path("/tmp/pwned-by-ticket").unlink(missing_ok=True)
    assert (
        checks.error_summary(app, b'<a href="/admin/default/ticket/notes/t1">ticket</a>')
        == "ticket"
    )
    assert not Path("/tmp/pwned-by-ticket").exists()  # nothing ran
    assert checks.error_summary(app, b"<h1>Internal error</h1>\n<p>Ticket not saved</p>") == (
        "Internal error Ticket not saved"
    )


def adopting(app, tmp_path, monkeypatch, health_ok: bool):
    window_app(app, tmp_path)
    app.options.down, app.checks.health_path = False, "/notes/default/index"
    app.options.shared_files = ()
    monkeypatch.setattr(checks, "precheck", lambda app, release_dir: None)
    monkeypatch.setattr(golive, "reload", lambda app: None)

    def health(app):
        if not health_ok:
            raise Failure("notes: health check of /notes/default/index answered 500")

    monkeypatch.setattr(checks, "health_through_nginx", health)
    app.base.mkdir(parents=True, exist_ok=True)
    zip_path = Path(app.layout.backups_dir) / backups.backup(app)
    entry = AuditRecord()

    def unpack():
        return releases.unpack_backup(app, zip_path, "r1", {"sha256": "x"})

    return golive.go_live(app, "r1", unpack, entry, backup=True), entry


def test_an_adoption_that_fails_after_the_switch_puts_the_folder_back(app, tmp_path, monkeypatch):
    code, entry = adopting(app, tmp_path, monkeypatch, health_ok=False)
    assert code == EXIT_FAILED and "app folder it adopted is back" in entry.result
    folder = app.web2py_link
    assert folder.is_dir() and not folder.is_symlink()
    assert (folder / "databases" / "storage.sqlite").read_bytes() == b"DB"
    assert not app.current.exists() and not list(folder.parent.glob(".notes.pre-releases-*"))


def test_a_good_adoption_leaves_no_folder_behind(app, tmp_path, monkeypatch):
    code, entry = adopting(app, tmp_path, monkeypatch, health_ok=True)
    assert code == 0 and entry.backup
    assert app.web2py_link.is_symlink()
    assert not list(app.web2py_link.parent.glob(".notes.pre-releases-*"))  # it is in the backup


def fake_uwsgi(tmp_path, body: str) -> str:
    script = tmp_path / "uwsgi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_the_pre_switch_check_waits_for_uwsgi_to_listen(app, tmp_path, monkeypatch):
    app.base.mkdir(parents=True, exist_ok=True)
    app.layout = replace(app.layout, uwsgi=fake_uwsgi(tmp_path, "sleep 30"))
    app.checks.health_path, app.checks.health_status, app.checks.health_text = "/h", 200, "ok"
    app.options.check_timeout = 5
    answers = [ConnectionRefusedError(111, "Connection refused")] * 2 + [(200, b"ok")]

    def get(sock, path, timeout):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(uwsgi, "unix_http_get", get)
    checks.serve_check(
        app, tmp_path, "r1"
    )  # refused twice (socket not listening yet), then healthy
    assert answers == [] and not list(app.base.glob(".check-log-*"))


def test_a_release_that_never_listens_is_one_clear_line(app, tmp_path, monkeypatch):
    app.base.mkdir(parents=True, exist_ok=True)
    app.layout = replace(
        app.layout, uwsgi=fake_uwsgi(tmp_path, "echo 'ImportError: no module named shop' ; exit 1")
    )
    app.checks.health_path, app.options.check_timeout = "/h", 5

    def refused(sock, path, timeout):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(uwsgi, "unix_http_get", refused)
    with pytest.raises(Failure, match=r"does not load: ImportError: no module named shop$"):
        checks.serve_check(app, tmp_path, "r1")


def test_a_lock_held_by_a_live_process_refuses_and_unlock_leaves_it(app):
    app.lock.acquire("alice@laptop", "v1")
    with pytest.raises(Locked, match="locked by"):
        app.lock.acquire("alice@laptop", "v2")  # this very process holds it: alive
    with pytest.raises(Failure, match="is still running"):
        commands.unlock(app)
    assert app.lock.path.exists()


def test_a_lock_whose_holder_is_dead_is_taken_over_or_unlocked(app, capsys):
    app.base.mkdir(parents=True)
    app.lock.path.mkdir()
    dead = {"who": "bob@laptop", "since": "x", "version": "v0", "pid": 2**22 + 7,
            "started": "123", "boot_id": lock.boot_id()}  # fmt: skip
    (app.lock.path / "info.json").write_text(json.dumps(dead))
    assert lock.holder_alive(dead) is False
    app.lock.acquire("alice@laptop", "v1")
    assert app.lock.stale["who"] == "bob@laptop"
    assert json.loads((app.lock.path / "info.json").read_text())["pid"] == os.getpid()
    assert "taking over a stale lock" in capsys.readouterr().out
    rebooted = {**dead, "pid": os.getpid(), "boot_id": "another-boot"}
    assert lock.holder_alive(rebooted) is False
    assert lock.holder_alive({"who": "old tool", "pid": 1}) is None  # unknown: never broken


def test_rollback_refuses_a_target_that_is_not_a_release_id(app):
    app.base.mkdir(parents=True, exist_ok=True)
    with pytest.raises(Failure, match=r"no release to roll back to \(\.\.\)"):
        commands.rollback(app, "..")
    assert not app.lock.path.exists()


def test_web2pys_own_tickets_are_read_though_they_pickle_its_classes(monkeypatch):
    import pickle
    import sys
    import types

    html = types.ModuleType("gluon_html_for_test")

    class XML(str):
        def __reduce__(self):
            return (XML, (str(self),))

    XML.__module__, XML.__qualname__ = "gluon_html_for_test", "XML"
    html.XML = XML
    monkeypatch.setitem(sys.modules, "gluon_html_for_test", html)
    ticket = {
        "traceback": "Traceback ...\nRuntimeError: broken on purpose\n",
        "snapshot": {"request": XML("<div>request</div>"), "frames": [{"lnum": 3}]},
    }
    data = pickle.dumps(ticket)
    monkeypatch.delitem(sys.modules, "gluon_html_for_test")  # as on the server: not importable
    assert checks.ticket_traceback(data).endswith("RuntimeError: broken on purpose\n")


def test_cleanup_never_follows_a_link_the_app_user_planted(app, tmp_path):
    victim = tmp_path / "etc"
    victim.mkdir()
    (victim / "passwd").write_text("root:x:0:0")
    os.utime(victim / "passwd", (1, 1))  # old enough to be removed, if it were reached
    cache = app.shared / "cache"
    (cache / "sub").mkdir(parents=True)
    os.symlink(victim, cache / "sub" / "escape")  # a folder link inside the app's scratch
    os.symlink(victim / "passwd", cache / "old-link")
    os.utime(cache / "old-link", (1, 1), follow_symlinks=False)
    (cache / "sub" / "old").write_text("x")
    os.utime(cache / "sub" / "old", (1, 1))
    assert commands.cleanup(app, CleanupOptions(days=30)) == 0
    assert (victim / "passwd").read_text() == "root:x:0:0"  # untouched
    assert not (cache / "sub" / "old").exists()  # the app's own old file went
    assert not os.path.lexists(cache / "old-link")  # the link itself went, not its target
    assert (cache / "sub" / "escape").is_symlink()  # a link to a folder is never entered


@pytest.mark.parametrize(
    "name", ["notes//tmp/x", "notes/../x", "notes/./x", "/notes/x", "notes/a\\\\..\\\\b", "other/x"]
)
def test_archive_names_that_leave_the_app_are_refused(name):
    assert not files.safe_member(name, "notes/")
    assert files.safe_member("notes/controllers/default.py", "notes/")


def test_a_backup_with_an_escaping_name_is_refused(app, tmp_path):
    backup_dir = Path(app.layout.backups_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    name = "notes.20261125T000000Z.zip"
    with zipfile.ZipFile(backup_dir / name, "w") as zf:
        zf.writestr("notes/controllers/default.py", "x = 1\n")
        zf.writestr("notes//tmp/escaped-by-restore", "x")
    digest = formats.sha256_file(backup_dir / name)
    (backup_dir / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    with pytest.raises(Failure, match="is not a backup of this app: refused"):
        backups.verified(app, name)
