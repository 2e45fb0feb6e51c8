"""The server-side release tool's pure parts, run locally on a fake app layout."""

import importlib.util
import itertools
import json
import os
import shutil
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
    from operations.local.packaging import build_package

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
    from operations.local.packaging import build_delta, build_package

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
    from operations.local.packaging import build_delta, build_package

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


def shop_files() -> dict[str, str]:
    return {
        "controllers/default.py": "x = 1\n",
        "private/appconfig.ini": "[app]\nenvironment = development\n",
        "private/content/en/what.markmin": "# What v1\n",
    }


def test_private_ships_with_the_release_and_shared_files_are_seeded_once(app, tmp_path):
    app.args.shared_files = "private/appconfig.ini,private/auth.key"
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
    assert json.loads((r1 / tool.REVISION).read_text())["overlays"] == ["private/appconfig.ini"]
    assert not (app.shared / "files" / "private" / "auth.key").exists()  # nothing to seed from
    # the server's copy is kept from then on; a new package's copy does not replace it
    seeded.write_text("[app]\nenvironment = production\n")
    (source / "private" / "appconfig.ini").write_text("[app]\nenvironment = changed\n")
    from operations.local.packaging import build_package

    new = build_package(source, tmp_path / "p2.tar.gz")
    r2 = app.unpack(new.path, new.sha256, "r2", {"sha256": new.sha256})
    assert "production" in (r2 / "private" / "appconfig.ini").read_text()


def test_a_staged_auth_key_seeds_only_a_host_without_one(app, tmp_path):
    app.args.shared_files = "private/auth.key"
    staged = tmp_path / "auth-key-notes"
    staged.write_text("sha512:pushed")
    app.args.seed = [f"private/auth.key={staged}"]
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
    app.args.shared_files = "private/appconfig.ini,private/auth.key"
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
    app.args.appconfig, app.args.appconfig_masked = str(staged), str(masked)
    app.args.shared_files = "private/auth.key"
    live_release_from_package(app, tmp_path, shop_files())
    config = app.releases / "r1" / "private" / "appconfig.ini"
    assert not config.is_symlink() and "s3cret" in config.read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    twin = app.releases / "r1" / tool.MASKED_APPCONFIG
    assert "********" in twin.read_text() and oct(twin.stat().st_mode & 0o777) == "0o600"


def test_a_first_deploy_that_never_went_live_leaves_nothing_in_the_way(app, tmp_path):
    from operations.local.packaging import build_package

    shutil.rmtree(app.web2py_link)  # a new app, not a plain folder to adopt
    source = tmp_path / "src"
    for name, text in {**shop_files(), "databases/storage.sqlite": "SEED"}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    app.args.shared_files = "private/appconfig.ini"
    code = build_package(source, tmp_path / "code.tar.gz")
    app.unpack(code.path, code.sha256, "r1", {})  # attempt 1 (code mode): fails later
    app.record("r1", "failed")
    (app.shared / "databases" / "junk-of-the-check").write_text("x")
    (app.shared / "files" / "private" / "appconfig.ini").write_text("stale seed")
    full = build_package(source, tmp_path / "full.tar.gz", mode="full")
    app.unpack(full.path, full.sha256, "r2", {})  # attempt 2 (full mode) seeds afresh
    assert sorted(p.name for p in (app.shared / "databases").iterdir()) == ["storage.sqlite"]
    assert "development" in (app.shared / "files" / "private" / "appconfig.ini").read_text()


def test_rollback_and_restore_use_the_recorded_settings(app, tmp_path):
    def args():
        return tool.parser().parse_args(
            ["rollback", "--app", "notes", "--apps-dir", app.args.apps_dir,
             "--web2py-root", app.args.web2py_root, "--user", USER, "--group", USER]
        )  # fmt: skip

    settings = {"health_path": "/notes/default/health", "health_text": "ok", "keep_releases": 7}
    live_release_from_package(app, tmp_path, {"controllers/default.py": "x\n"})
    revision = app.releases / "r1" / tool.REVISION
    revision.write_text(json.dumps({"release": "r1", "settings": settings}))
    recorded = tool.App(args())
    assert recorded.args.health_path == "/notes/default/health"
    assert recorded.args.health_text == "ok" and recorded.args.keep_releases == 7
    assert recorded.args.health_status == 200 and recorded.args.hooks == "{}"
    revision.write_text(json.dumps({"release": "r1"}))  # a release from before: defaults
    assert tool.App(args()).args.health_path == "/notes/default/index"


def test_a_restore_never_prunes_the_backup_it_restores(app, monkeypatch):
    stamps = iter(f"2026112{i}T000000Z" for i in range(5))
    monkeypatch.setattr(tool, "utc_stamp", lambda now=None: next(stamps))
    app.args.keep_backups = 1
    first = app.backup()
    os.utime(Path(app.args.backups_dir) / first, (1000, 1000))
    app.keep_backup.add(first)
    app.backup()
    assert (Path(app.args.backups_dir) / first).exists()


def test_a_failed_first_attempt_keeps_the_pushed_key_but_not_the_package_seeds(app, tmp_path):
    from operations.local.packaging import build_package

    shutil.rmtree(app.web2py_link)
    source = tmp_path / "src"
    for name, text in shop_files().items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    staged = tmp_path / "key"
    staged.write_text("sha512:pushed")
    app.args.shared_files = "private/appconfig.ini,private/auth.key"
    app.args.seed = [f"private/auth.key={staged}"]
    first = build_package(source, tmp_path / "p1.tar.gz")
    app.unpack(first.path, first.sha256, "r1", {})
    app.record("r1", "failed")
    (source / "private" / "appconfig.ini").write_text("[app]\nenvironment = fixed\n")
    app.args.seed = []  # the controller saw the key on the host: nothing pushed this time
    fixed = build_package(source, tmp_path / "p2.tar.gz")
    r2 = app.unpack(fixed.path, fixed.sha256, "r2", {})
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
    app.args.health_path, app.args.health_status = "/notes/default/index", 200
    with pytest.raises(tool.Failure, match=r"answered 500, expected 200: .*RuntimeError: boom"):
        app.judge("pre-switch check", 500, body)


def test_a_hostile_ticket_runs_nothing_and_a_page_without_one_is_quoted(app):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch /tmp/pwned-by-ticket",))

    errors = app.shared / "errors"
    errors.mkdir(parents=True)
    (errors / "t1").write_bytes(pickle.dumps({"traceback": Evil()}))
    Path("/tmp/pwned-by-ticket").unlink(missing_ok=True)
    assert app.error_summary(b'<a href="/admin/default/ticket/notes/t1">ticket</a>') == "ticket"
    assert not Path("/tmp/pwned-by-ticket").exists()  # nothing ran
    assert app.error_summary(b"<h1>Internal error</h1>\n<p>Ticket not saved</p>") == (
        "Internal error Ticket not saved"
    )


def adopting(app, tmp_path, monkeypatch, health_ok: bool):
    window_app(app, tmp_path)
    app.args.down, app.args.health_path = False, "/notes/default/index"
    app.args.shared_files = ""
    monkeypatch.setattr(tool.App, "precheck", lambda self, release_dir: None)
    monkeypatch.setattr(tool.App, "chain_reload", lambda self: None)

    def health(self):
        if not health_ok:
            raise tool.Failure("notes: health check of /notes/default/index answered 500")

    monkeypatch.setattr(tool.App, "health_through_nginx", health)
    app.base.mkdir(parents=True, exist_ok=True)
    zip_path = Path(app.args.backups_dir) / app.backup()
    entry: dict = {}

    def unpack():
        return app.unpack_backup(zip_path, "r1", {"sha256": "x"})

    return tool.go_live(app, "r1", unpack, entry, backup=True), entry


def test_an_adoption_that_fails_after_the_switch_puts_the_folder_back(app, tmp_path, monkeypatch):
    code, entry = adopting(app, tmp_path, monkeypatch, health_ok=False)
    assert code == tool.EXIT_FAILED and "app folder it adopted is back" in entry["result"]
    folder = app.web2py_link
    assert folder.is_dir() and not folder.is_symlink()
    assert (folder / "databases" / "storage.sqlite").read_bytes() == b"DB"
    assert not app.current.exists() and not list(folder.parent.glob(".notes.pre-releases-*"))


def test_a_good_adoption_leaves_no_folder_behind(app, tmp_path, monkeypatch):
    code, entry = adopting(app, tmp_path, monkeypatch, health_ok=True)
    assert code == 0 and entry["backup"]
    assert app.web2py_link.is_symlink()
    assert not list(app.web2py_link.parent.glob(".notes.pre-releases-*"))  # it is in the backup


def fake_uwsgi(tmp_path, body: str) -> str:
    script = tmp_path / "uwsgi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_the_pre_switch_check_waits_for_uwsgi_to_listen(app, tmp_path, monkeypatch):
    app.base.mkdir(parents=True, exist_ok=True)
    app.args.uwsgi = fake_uwsgi(tmp_path, "sleep 30")
    app.args.health_path, app.args.health_status, app.args.health_text = "/h", 200, "ok"
    app.args.check_timeout = 5
    answers = [ConnectionRefusedError(111, "Connection refused")] * 2 + [(200, b"ok")]

    def get(sock, path, timeout):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(tool, "unix_http_get", get)
    app.serve_check(tmp_path, "r1")  # refused twice (socket not listening yet), then healthy
    assert answers == [] and not list(app.base.glob(".check-log-*"))


def test_a_release_that_never_listens_is_one_clear_line(app, tmp_path, monkeypatch):
    app.base.mkdir(parents=True, exist_ok=True)
    app.args.uwsgi = fake_uwsgi(tmp_path, "echo 'ImportError: no module named shop' ; exit 1")
    app.args.health_path, app.args.check_timeout = "/h", 5

    def refused(sock, path, timeout):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(tool, "unix_http_get", refused)
    with pytest.raises(tool.Failure, match=r"does not load: ImportError: no module named shop$"):
        app.serve_check(tmp_path, "r1")


def test_a_lock_held_by_a_live_process_refuses_and_unlock_leaves_it(app):
    app.acquire("v1")
    with pytest.raises(tool.Locked, match="locked by"):
        app.acquire("v2")  # this very process holds it: alive
    args = app.args
    args.command = "unlock"
    with pytest.raises(tool.Failure, match="is still running"):
        tool.cmd_unlock(args)
    assert app.lock_dir.exists()


def test_a_lock_whose_holder_is_dead_is_taken_over_or_unlocked(app, capsys):
    app.base.mkdir(parents=True)
    app.lock_dir.mkdir()
    dead = {"who": "bob@laptop", "since": "x", "version": "v0", "pid": 2**22 + 7,
            "started": "123", "boot_id": tool.boot_id()}  # fmt: skip
    (app.lock_dir / "info.json").write_text(json.dumps(dead))
    assert tool.holder_alive(dead) is False
    app.acquire("v1")
    assert app.stale_lock["who"] == "bob@laptop"
    assert json.loads((app.lock_dir / "info.json").read_text())["pid"] == os.getpid()
    assert "taking over a stale lock" in capsys.readouterr().out
    rebooted = {**dead, "pid": os.getpid(), "boot_id": "another-boot"}
    assert tool.holder_alive(rebooted) is False
    assert tool.holder_alive({"who": "old tool", "pid": 1}) is None  # unknown: never broken


def test_rollback_refuses_a_target_that_is_not_a_release_id(app):
    args = app.args
    args.to = ".."
    app.base.mkdir(parents=True, exist_ok=True)
    with pytest.raises(tool.Failure, match=r"no release to roll back to \(\.\.\)"):
        tool.cmd_rollback(args)
    assert not app.lock_dir.exists()


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
    assert tool.ticket_traceback(data).endswith("RuntimeError: broken on purpose\n")


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
    app.args.days, app.args.dry_run = 30, False
    assert tool.cmd_cleanup(app.args) == 0
    assert (victim / "passwd").read_text() == "root:x:0:0"  # untouched
    assert not (cache / "sub" / "old").exists()  # the app's own old file went
    assert not os.path.lexists(cache / "old-link")  # the link itself went, not its target
    assert (cache / "sub" / "escape").is_symlink()  # a link to a folder is never entered


@pytest.mark.parametrize(
    "name", ["notes//tmp/x", "notes/../x", "notes/./x", "/notes/x", "notes/a\\\\..\\\\b", "other/x"]
)
def test_archive_names_that_leave_the_app_are_refused(name):
    assert not tool.safe_member(name, "notes/")
    assert tool.safe_member("notes/controllers/default.py", "notes/")


def test_a_backup_with_an_escaping_name_is_refused(app, tmp_path):
    backups = Path(app.args.backups_dir)
    backups.mkdir(parents=True, exist_ok=True)
    name = "notes.20261125T000000Z.zip"
    with zipfile.ZipFile(backups / name, "w") as zf:
        zf.writestr("notes/controllers/default.py", "x = 1\n")
        zf.writestr("notes//tmp/escaped-by-restore", "x")
    digest = tool.sha256_file(backups / name)
    (backups / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    with pytest.raises(tool.Failure, match="is not a backup of this app: refused"):
        app.verified_backup(name)
