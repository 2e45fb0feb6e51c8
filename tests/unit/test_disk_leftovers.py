"""What a failed or killed run leaves (server/backups.py, server/releases.py, server/files.py):
a full disk during a backup or an unpack leaves nothing; what a killed one left never counts as
a backup or a release and goes the next time the app's lock is held; removal never follows a
link."""

import errno
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from operations import formats
from server import backups, commands, files, releases
from server.app import App
from server.errors import Failure
from server.settings import Checks, CleanupOptions, Layout, Options

USER = "root"


@pytest.fixture()
def app(tmp_path):
    root = tmp_path / "web2py"
    (root / "applications" / "notes" / "controllers").mkdir(parents=True)
    (root / "applications" / "notes" / "controllers" / "default.py").write_text("x = 1\n")
    (root / "applications" / "notes" / "databases").mkdir()
    (root / "applications" / "notes" / "databases" / "storage.sqlite").write_bytes(b"DB")
    layout = Layout(
        apps_dir=str(tmp_path / "apps"), web2py_root=str(root), user=USER, group=USER,
        backups_dir=str(tmp_path / "backups"),
    )  # fmt: skip
    return App("notes", layout, Options(checks=Checks(keep_backups=2)))


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def listing(path: Path) -> list[str]:
    return sorted(os.listdir(path)) if path.is_dir() else []


def stamps(monkeypatch):
    counter = iter(range(100))
    monkeypatch.setattr(formats, "utc_stamp", lambda now=None: f"202611{next(counter):02d}T0Z")


def test_a_backup_that_runs_out_of_space_leaves_nothing(app, monkeypatch):
    stamps(monkeypatch)
    first = backups.backup(app)
    before = listing(Path(app.layout.backups_dir))
    monkeypatch.setattr(backups, "_copy", no_space)
    with pytest.raises(Failure) as failed:
        backups.backup(app)
    assert str(failed.value) == (
        f"notes: backup failed: no space left on device in {app.layout.backups_dir}"
    )
    assert listing(Path(app.layout.backups_dir)) == before == [first, f"{first}.sha256"]


def test_a_backup_is_whole_when_it_appears_and_leaves_no_partial(app, monkeypatch):
    stamps(monkeypatch)
    name = backups.backup(app)
    folder = Path(app.layout.backups_dir)
    assert listing(folder) == [name, f"{name}.sha256"]
    assert backups.verified(app, name) == folder / name
    assert oct((folder / name).stat().st_mode & 0o777) == "0o600"


def killed_leftovers(folder: Path) -> list[str]:
    """What backups killed midway leave: partials (new layout), and an orphan .sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [
        ".notes.20261101T0Z.zip.partial",
        ".notes.20261101T0Z.zip.sha256.partial",
        "notes.20261102T0Z.zip.sha256",  # renamed, then killed before the zip was
    ]
    for name in names:
        (folder / name).write_text("half")
    return names


def test_what_a_killed_backup_left_never_counts_and_goes_under_the_lock(app, monkeypatch):
    stamps(monkeypatch)
    folder = Path(app.layout.backups_dir)
    left = killed_leftovers(folder)
    others = [".shop.20261101T0Z.zip.partial", "shop.20261102T0Z.zip.sha256"]
    for name in others:  # another app's: its own lock, its own business
        (folder / name).write_text("x")
    assert backups._zips(app) == []
    assert backups.prune(app, dry_run=True) == []
    assert sorted(backups.remove_partials(app)) == sorted(left)
    assert listing(folder) == sorted(others)


def test_a_backup_removes_what_a_killed_one_left_first(app, monkeypatch):
    stamps(monkeypatch)
    folder = Path(app.layout.backups_dir)
    killed_leftovers(folder)
    name = backups.backup(app)
    assert listing(folder) == [name, f"{name}.sha256"]


def test_retention_never_counts_a_partial(app, monkeypatch):
    stamps(monkeypatch)
    folder = Path(app.layout.backups_dir)
    names = [backups.backup(app) for _ in range(2)]
    for i, name in enumerate(names):
        os.utime(folder / name, (1000 + i, 1000 + i))
    (folder / ".notes.20261199T0Z.zip.partial").write_text("half")
    assert backups.prune(app, dry_run=True) == []  # two backups, keep_backups=2


def test_latest_is_the_latest_whole_backup(app, monkeypatch):
    stamps(monkeypatch)
    folder = Path(app.layout.backups_dir)
    whole = backups.backup(app)
    os.utime(folder / whole, (1000, 1000))
    # an old tool's half-written zip: named as a backup, no .sha256, newest
    with zipfile.ZipFile(folder / "notes.20261150T0Z.zip", "w") as zf:
        zf.writestr("notes/controllers/default.py", "x = 1\n")
    assert backups.verified(app, "latest") == folder / whole
    with pytest.raises(Failure, match="has no readable .sha256"):
        backups.verified(app, "notes.20261150T0Z.zip")  # asked by name: refused, as before


def package(tmp_path: Path) -> tuple[Path, str]:
    from operations.local.packaging import build_package

    source = tmp_path / "src"
    (source / "controllers").mkdir(parents=True)
    (source / "controllers" / "default.py").write_text("x = 1\n")
    (source / "static").mkdir()
    (source / "static" / "big.bin").write_bytes(os.urandom(4096))
    built = build_package(source, tmp_path / "p.tar.gz")
    return built.path, built.sha256


def test_an_unpack_that_runs_out_of_space_leaves_no_staging_folder(app, tmp_path, monkeypatch):
    path, sha = package(tmp_path)
    real = tarfile.TarFile.extractall

    def half_then_full(self, target, *args, **kwargs):
        real(self, target, *args, **kwargs)  # written, then the disk is full
        no_space()

    monkeypatch.setattr(tarfile.TarFile, "extractall", half_then_full)
    with pytest.raises(Failure) as failed:
        releases.unpack(app, path, sha, "r1", {"sha256": sha})
    assert str(failed.value) == (f"notes: unpack failed: no space left on device in {app.releases}")
    assert listing(app.releases) == []


def test_an_unpack_refused_leaves_no_staging_folder(app, tmp_path, monkeypatch):
    path, sha = package(tmp_path)
    monkeypatch.setattr(formats, "parse_manifest", lambda text: {"controllers/default.py": "0"})
    with pytest.raises(Failure, match="does not match the package manifest"):
        releases.unpack(app, path, sha, "r1", {"sha256": sha})
    assert listing(app.releases) == []


def test_an_unpack_removes_a_killed_runs_staging_folder_first(app, tmp_path):
    path, sha = package(tmp_path)
    (app.releases / ".r0.tmp" / "static").mkdir(parents=True)  # its space is wanted now
    (app.releases / ".r1.tmp").mkdir()  # the same name as the new one
    releases.unpack(app, path, sha, "r1", {"sha256": sha})
    assert listing(app.releases) == ["r1"]


def outside(tmp_path: Path) -> Path:
    """A folder root must never delete from (what the app user would point a link at)."""
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    return target


def test_prune_removes_stale_staging_folders_never_following_links(app, tmp_path):
    precious = outside(tmp_path)
    (app.releases / "r1").mkdir(parents=True)
    stale = app.releases / ".r2.tmp"
    (stale / "static").mkdir(parents=True)
    (stale / "static" / "big.bin").write_bytes(b"x" * 100)
    os.symlink(precious, stale / "static" / "link")  # a link inside: removed, not followed
    os.symlink(precious, app.releases / ".r3.tmp")  # the staging name as a link
    (app.releases / ".other").mkdir()  # not a staging name: left alone
    assert releases.prune(app, dry_run=True) == []
    assert listing(app.releases) == [".other", ".r2.tmp", ".r3.tmp", "r1"]
    releases.prune(app)
    assert listing(app.releases) == [".other", "r1"]
    assert listing(precious) == ["keep.txt"]


def test_remove_below_never_follows_a_link(tmp_path):
    precious = outside(tmp_path)
    base = tmp_path / "base"
    (base / "tree" / "sub").mkdir(parents=True)
    (base / "tree" / "sub" / "f").write_text("f")
    os.symlink(precious, base / "tree" / "sub" / "to-precious")
    os.symlink(precious, base / "link")
    assert files.remove_below(base, "tree") is True
    assert files.remove_below(base, "link") is True
    assert files.remove_below(base, "gone") is False
    assert listing(base) == [] and listing(precious) == ["keep.txt"]
    os.symlink(tmp_path, tmp_path / "base-link")
    with pytest.raises(OSError):
        files.remove_below(tmp_path / "base-link", "precious")  # the base itself a link
    for bad in ("..", "a/b", ""):
        with pytest.raises(OSError):
            files.remove_below(base, bad)
    assert listing(precious) == ["keep.txt"]


def test_cleanup_removes_what_killed_runs_left(app, monkeypatch, capsys):
    stamps(monkeypatch)
    app.base.mkdir(parents=True)
    (app.releases / ".r9.tmp" / "static").mkdir(parents=True)
    left = killed_leftovers(Path(app.layout.backups_dir))
    assert commands.cleanup(app, CleanupOptions(days=30)) == 0
    assert listing(app.releases) == []
    assert listing(Path(app.layout.backups_dir)) == []
    out = capsys.readouterr().out
    assert "removed what an interrupted unpack left: .r9.tmp" in out
    assert f"removed what an interrupted backup left: {', '.join(sorted(left))}" in out
