"""Root never follows a path the app user controls: the release tool's file access against
planted links, FIFOs and sockets (victims untouched, nothing blocks, special files reported)."""

import os
import pwd
import signal
import socket
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from operations.local.packaging import build_package
from server import backups, checks, commands, files, golive, schedulers, shared, uwsgi
from server.app import App
from server.errors import Failure
from server.settings import Checks, DeployOptions, Layout, Options

SECRET = b"root-only secret"


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    """A blocking open (a FIFO without a writer) fails the test instead of hanging it."""

    def timeout(*_: object) -> None:
        raise TimeoutError("blocked: the code under test waited on a special file")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture()
def victim(tmp_path: Path) -> Path:
    """A root-only file outside every tree the tool walks."""
    path = tmp_path / "root-only" / "secret"
    path.parent.mkdir(mode=0o700)
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def plant(folder: Path, victim: Path) -> list[str]:
    """A link to the victim, a link to its folder, a FIFO and a socket in ``folder``."""
    (folder / "leak.txt").symlink_to(victim)
    (folder / "keys").symlink_to(victim.parent)
    os.mkfifo(folder / "blocker")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "app.sock"))
    listener.close()
    return ["app.sock (socket)", "blocker (FIFO)", "keys (link)", "leak.txt (link)"]


def untouched(victim: Path) -> None:
    st = victim.lstat()
    assert victim.read_bytes() == SECRET and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0


# --- the uWSGI master FIFO and stats socket ------------------------------------------------
WWW = pwd.getpwnam("www-data").pw_uid


def test_fifo_link_to_a_root_file_is_refused_and_the_file_untouched(tmp_path, victim):
    fifo = tmp_path / "uwsgi.fifo"
    fifo.symlink_to(victim)
    with pytest.raises(Failure, match="symbolic link: refused"):
        uwsgi.write_fifo(str(fifo), b"c", WWW)
    untouched(victim)


def test_fifo_without_a_reader_fails_at_once(tmp_path):
    fifo = tmp_path / "uwsgi.fifo"
    os.mkfifo(fifo)
    os.chown(fifo, WWW, -1)
    with pytest.raises(Failure, match="no reader"):
        uwsgi.write_fifo(str(fifo), b"c", WWW)


def test_fifo_that_is_a_regular_file_or_not_the_users_is_refused(tmp_path):
    regular = tmp_path / "regular"
    regular.write_bytes(b"keep")
    os.chown(regular, WWW, -1)
    with pytest.raises(Failure, match="not a FIFO"):
        uwsgi.write_fifo(str(regular), b"c", WWW)
    assert regular.read_bytes() == b"keep"  # opened without O_TRUNC, nothing written
    roots = tmp_path / "roots.fifo"
    os.mkfifo(roots)
    reader = os.open(roots, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(Failure, match="not a FIFO of uid"):
            uwsgi.write_fifo(str(roots), b"c", WWW)
        os.chown(roots, WWW, -1)
        uwsgi.write_fifo(str(roots), b"c", WWW)
        assert os.read(reader, 10) == b"c"
    finally:
        os.close(reader)


def test_stats_socket_must_be_the_users_socket(tmp_path, victim):
    link = tmp_path / "stats.sock"
    link.symlink_to(victim)
    with pytest.raises(Failure, match="not a socket"):
        uwsgi.check_socket(str(link), WWW)
    real = tmp_path / "real.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(real))
    try:
        with pytest.raises(Failure, match="not a socket of uid"):
            uwsgi.check_socket(str(real), WWW)  # root's, not the uWSGI user's
        os.chown(real, WWW, -1)
        uwsgi.check_socket(str(real), WWW)
        link.unlink()
        link.symlink_to(real)
        with pytest.raises(Failure, match="not a socket"):
            uwsgi.check_socket(str(link), WWW)  # a link to a good socket: still not followed
    finally:
        listener.close()


# --- the descriptor walk -------------------------------------------------------------------
def test_walk_yields_regular_files_only_and_reports_the_rest(tmp_path, victim):
    top = tmp_path / "data"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "a.txt").write_text("a")
    expected = plant(top, victim)
    skipped: list[str] = []
    fd = os.open(top, files.DIR_FLAGS)
    try:
        found = {rel: os.read(f, 100) for rel, f, _ in files.regular_files_fd(fd, skipped)}
    finally:
        os.close(fd)
    assert found == {"sub/a.txt": b"a"}
    assert sorted(skipped) == expected


def test_open_dir_below_never_follows_a_link(tmp_path, victim):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "data").symlink_to(victim.parent)
    with pytest.raises(OSError):
        files.open_dir_below(tmp_path / "base", "data")


# --- backups and adoption, as the tool runs them -----------------------------------------
@pytest.fixture()
def layout(tmp_path) -> Layout:
    (tmp_path / "web2py" / "applications").mkdir(parents=True)
    (tmp_path / "maintenance").mkdir()
    return Layout(
        apps_dir=str(tmp_path / "apps"), web2py_root=str(tmp_path / "web2py"), user="root",
        group="root", backups_dir=str(tmp_path / "backups"),
        maintenance_dir=str(tmp_path / "maintenance"), stats=str(tmp_path / "no-stats.sock"),
    )  # fmt: skip


@pytest.fixture()
def no_uwsgi(monkeypatch):
    monkeypatch.setattr(golive, "reload", lambda app: None)
    monkeypatch.setattr(schedulers, "scheduler_enabled", lambda unit: False)


def app_of(layout: Layout) -> App:
    return App("notes", layout, Options(who="t", checks=Checks(health_path="")))


def deploy(layout: Layout, tmp_path: Path, version: str) -> int:
    source = tmp_path / f"src-{version}"
    (source / "controllers").mkdir(parents=True, exist_ok=True)
    (source / "controllers" / "default.py").write_text(f"VERSION = {version!r}\n")
    (source / "databases").mkdir(exist_ok=True)
    built = build_package(source, tmp_path / f"notes-{version}.tar.gz")
    options = DeployOptions(package=str(built.path), sha256=built.sha256, version=version)
    return commands.deploy(app_of(layout), options)


def zipped(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_backup_skips_links_and_special_files_in_data(layout, tmp_path, victim, no_uwsgi, capsys):
    assert deploy(layout, tmp_path, "1") == 0
    app = app_of(layout)
    uploads = app.shared / "uploads"
    uploads.mkdir(exist_ok=True)
    (uploads / "photo.jpg").write_bytes(b"JPG")
    plant(uploads, victim)
    (app.shared / "databases" / "r").symlink_to("/root")
    name = backups.backup(app)
    content = zipped(Path(layout.backups_dir) / name)
    assert content["notes/uploads/photo.jpg"] == b"JPG"
    assert "notes/controllers/default.py" in content
    assert not any(SECRET in data for data in content.values())
    assert not any(n.endswith(("leak.txt", "blocker", "app.sock", "/r")) for n in content)
    out = capsys.readouterr().out
    assert "uploads/blocker (FIFO)" in out and "uploads/leak.txt (link)" in out
    assert "databases/r (link)" in out
    untouched(victim)


def test_backup_never_follows_a_swapped_data_folder(layout, tmp_path, victim, no_uwsgi):
    assert deploy(layout, tmp_path, "1") == 0
    app = app_of(layout)
    os.rename(app.shared / "databases", app.shared / "databases.real")
    (app.shared / "databases").symlink_to(victim.parent)
    content = zipped(Path(layout.backups_dir) / backups.backup(app))
    assert not any(SECRET in data for data in content.values())


def test_adoption_copies_regular_files_only(layout, victim, capsys):
    legacy = Path(layout.web2py_root) / "applications" / "notes"
    (legacy / "uploads" / "deep").mkdir(parents=True)
    (legacy / "uploads" / "deep" / "a.jpg").write_bytes(b"A")
    (legacy / "private").mkdir()
    (legacy / "private" / "stolen.txt").symlink_to(victim)
    (legacy / "databases").symlink_to(victim.parent)  # a whole data folder as a link
    plant(legacy / "uploads", victim)
    app = App("notes", replace_data(layout), Options())
    copied = shared.adopt_legacy(app)
    assert copied == ["uploads"]  # databases/ is a link: never followed, not copied
    top = app.shared / "uploads"
    assert (top / "deep" / "a.jpg").read_bytes() == b"A"
    walked = [p for p in top.rglob("*")]
    assert all(not p.is_symlink() and (p.is_dir() or p.is_file()) for p in walked)
    assert sorted(p.name for p in top.iterdir()) == ["deep"]
    assert not list(app.shared.glob(".*.copy-*"))
    assert "uploads/ from the app folder" in capsys.readouterr().out
    untouched(victim)


def replace_data(layout: Layout) -> Layout:
    from dataclasses import replace

    return replace(layout, data_dirs=["databases", "uploads"])


# --- the pre-switch check and the audit log ----------------------------------------------
def test_serve_check_socket_and_log_are_in_a_root_only_folder(layout, tmp_path, monkeypatch):
    app = App("notes", layout, Options(checks=Checks(health_path="/notes/default/health")))
    app.base.mkdir(parents=True)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    seen: dict[str, object] = {}

    class Proc:
        def __init__(self, command, stdout, stderr):
            sock = Path(command[command.index("--shared-socket") + 1])
            st = sock.parent.lstat()
            assert command[command.index("--http-socket") + 1] == "=0"
            seen.update(sock=sock, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid)
            seen["log"] = Path(os.readlink(f"/proc/self/fd/{stdout.fileno()}"))

        def poll(self):
            return None

        def kill(self):
            pass

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(checks.subprocess, "Popen", Proc)
    monkeypatch.setattr(uwsgi, "unix_http_get", lambda sock, path, timeout: (200, b"ok"))
    checks.serve_check(app, shadow, "r1")
    sock = seen["sock"]
    assert isinstance(sock, Path) and shadow not in sock.parents
    assert seen["mode"] == 0o700 and seen["uid"] == 0
    assert seen["log"].parent == sock.parent
    assert not sock.parent.exists()  # thrown away with the check


def test_audit_log_is_roots_alone(layout, tmp_path, no_uwsgi):
    app = app_of(layout)
    app.base.mkdir(parents=True)
    log = app.base / "audit.jsonl"
    log.write_text("")
    log.chmod(0o644)  # an older tool's
    assert deploy(layout, tmp_path, "1") == 0
    st = log.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert log.read_text().count("\n") == 1
