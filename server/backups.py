"""An app's backups: a verified zip of code and data (SQLite snapshotted), retention, restore."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from operations import formats
from operations.formats import AuditRecord
from server import detach
from server.app import App
from server.errors import Failure, cause, log
from server.files import (
    chown_tree,
    open_dir_below,
    read_regular,
    regular_files,
    regular_files_fd,
    safe_member,
    skipped_line,
)

SHARED_FILES_DIR = "files"  # shared/files: the app's shared files (server.shared)


def _zips(app: App) -> list[Path]:
    """The app's backups, oldest first (by mtime)."""
    backups = Path(app.layout.backups_dir)
    return sorted(backups.glob(f"{app.name}.*.zip"), key=lambda p: p.stat().st_mtime)


def _sources(app: App) -> list[tuple[str, int]]:
    """(prefix in the zip, open folder) of what a backup holds: the live release (root's)
    and the shared data folders the tool linked into it, or a plain app folder. Each is
    opened without following a link: the app user may have replaced any of them."""
    opened: list[tuple[str, int]] = []
    release = app.live_release()
    try:
        if release:
            opened.append(("", open_dir_below(app.releases, release)))
            for data in app.data_dirs:
                if data in SCRATCH:
                    continue
                try:
                    opened.append((f"{data}/", open_dir_below(app.shared, data)))
                except OSError:
                    continue  # no such data folder (or not a folder: never followed)
        elif app.legacy_folder():
            opened.append(("", open_dir_below(app.web2py_link.parent, app.name)))
    except OSError:
        for _, fd in opened:
            os.close(fd)
        return []
    return opened


PARTIAL = ".partial"  # a backup being written: hidden, never matched by _zips' glob


def _reserve(app: App, backups_fd: int) -> tuple[str, int]:
    """A new backup's name (never one that exists, even for two deploys in one second) and
    its partial file, created empty (root's, 0600) in the open backups folder."""
    stamp = formats.utc_stamp()
    name, n = f"{app.name}.{stamp}.zip", 1
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        if not _exists(name, backups_fd):
            try:
                return name, os.open(f".{name}{PARTIAL}", flags, 0o600, dir_fd=backups_fd)
            except FileExistsError:
                pass  # another run's partial: that name is taken too
        n += 1
        name = f"{app.name}.{stamp}-{n}.zip"


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def remove_partials(app: App) -> list[str]:
    """Remove what a backup killed midway left in the backups folder (its partial zip and
    .sha256, or a .sha256 whose zip never came): only ever called with the app's lock held,
    so no backup of this app is being written. Returns the names removed."""
    backups = Path(app.layout.backups_dir)
    try:
        fd = os.open(backups, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []  # no backups folder yet (or not a folder: nothing of ours in it)
    removed = []
    try:
        names = set(os.listdir(fd))
        for name in sorted(names):
            partial = name.startswith(f".{app.name}.") and name.endswith(PARTIAL)
            orphan = (
                name.startswith(f"{app.name}.")
                and name.endswith(".zip.sha256")
                and name[: -len(".sha256")] not in names
            )
            if partial or orphan:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)  # a name in root's own folder: never followed
                    removed.append(name)
    finally:
        os.close(fd)
    if removed:
        log(f"{app.name}: removed what an interrupted backup left: {', '.join(removed)}")
    return removed


def backup(app: App) -> str | None:
    """Zip the live app (code and data) to BACKUPS/APP.<stamp>.zip with a .sha256.

    Everything is read by descriptor from folders opened without following links: regular
    files only; links, FIFOs, sockets and devices the app user planted are skipped and
    reported in one line (a FIFO never blocks the backup, a link never brings root's files).

    The zip is written as a hidden partial file, synced, its .sha256 written, and only then
    renamed into place: a backup that fails (a full disk) or is killed never shows as one (in
    retention or as ``latest``); a failed one leaves nothing, a killed one's partial goes the
    next time the app's lock is held (:func:`remove_partials`). The caller holds the lock."""
    sources = _sources(app)
    if not sources:
        return None
    backups = Path(app.layout.backups_dir)
    try:
        backups.mkdir(parents=True, exist_ok=True)
        os.chmod(backups, 0o700)
        remove_partials(app)
        dir_fd = os.open(backups, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        for _, top in sources:
            os.close(top)
        raise Failure(f"{app.name}: backup failed: {cause(error)}") from error
    try:
        name = _write(app, sources, dir_fd)
    except OSError as error:
        detach.note_exception(error)  # the traceback stays in the run log
        raise Failure(f"{app.name}: backup failed: {cause(error)} in {backups}") from None
    finally:
        os.close(dir_fd)
    prune(app)
    return name


def _write(app: App, sources: list[tuple[str, int]], dir_fd: int) -> str:
    """Write the backup as its partial, then its .sha256, then rename it into place; on any
    failure what was written goes (and the error is raised)."""
    try:
        name, fd = _reserve(app, dir_fd)
    except BaseException:
        for _, top in sources:
            os.close(top)
        raise
    partial, sha_partial = f".{name}{PARTIAL}", f".{name}.sha256{PARTIAL}"
    skipped: list[str] = []
    backups = Path(app.layout.backups_dir)
    try:
        try:
            with os.fdopen(fd, "wb") as raw:
                with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
                    for prefix, top in sources:
                        _zip_tree(app, zf, top, prefix, skipped, backups)
                raw.flush()
                os.fsync(raw.fileno())
        finally:
            for _, top in sources:
                os.close(top)
        detach.pause("backup-written")  # test-only (server.detach.pause)
        digest = formats.sha256_file(backups / partial)
        _write_small(sha_partial, f"{digest}  {name}\n".encode(), dir_fd)
        os.rename(sha_partial, f"{name}.sha256", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.rename(partial, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        for leftover in (partial, sha_partial, f"{name}.sha256"):
            with contextlib.suppress(OSError):
                os.unlink(leftover, dir_fd=dir_fd)
        raise
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)  # the renames on disk too (the backup is whole either way)
    if skipped:
        log(skipped_line(f"{app.name}: backup", skipped))
    return name


def _write_small(name: str, data: bytes, dir_fd: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _zip_tree(
    app: App, zf: zipfile.ZipFile, top: int, prefix: str, skipped: list[str], scratch: Path
) -> None:
    """Zip the regular files below the open folder ``top`` as APP/<prefix><path>."""
    shared_links = prefix == "" and app.live_release() is not None
    files = list_shared_links(app, top) if shared_links else {}
    walk_skipped: list[str] = []
    for rel, fd, st in regular_files_fd(top, walk_skipped, prefix):
        if rel.split("/", 1)[0] in SCRATCH:
            continue  # runtime scratch, not worth restoring
        if rel.endswith(SQLITE_SIDECARS):
            continue  # the database's snapshot holds what it committed
        _zip_fd(zf, fd, st, f"{app.name}/{rel}", scratch)
    for entry in walk_skipped:
        rel = entry.rsplit(" (", 1)[0]
        if rel.split("/", 1)[0] in SCRATCH or rel.endswith(SQLITE_SIDECARS):
            continue
        if shared_links and (rel in files or rel.split("/", 1)[0] in app.data_dirs):
            continue  # the tool's own links: their targets are zipped from shared/
        skipped.append(entry)
    for rel in sorted(files):
        found = read_regular(app.shared / SHARED_FILES_DIR, rel, rel)
        if found is not None:
            info = zipfile.ZipInfo(f"{app.name}/{rel}", time.localtime()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, found[0])


def list_shared_links(app: App, release_fd: int) -> dict[str, str]:
    """The release's links into shared/files, as :func:`link_shared_files` made them
    (relative path -> link text); any other link is not the tool's and is not followed."""
    files_dir = app.shared / SHARED_FILES_DIR
    found: dict[str, str] = {}
    release = app.releases / (app.live_release() or "")
    for rel in regular_files(files_dir) if files_dir.is_dir() else []:
        link = release / rel
        try:
            text = os.readlink(rel, dir_fd=release_fd)
        except OSError:
            continue
        if text == os.path.relpath(files_dir / rel, link.parent):
            found[rel] = text
    return found


def _zip_fd(zf: zipfile.ZipFile, fd: int, st: os.stat_result, arcname: str, scratch: Path) -> None:
    """Zip the open regular file ``fd``; an SQLite database as a consistent snapshot."""
    info = zipfile.ZipInfo(arcname, time.localtime(st.st_mtime)[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (st.st_mode & 0xFFFF) << 16
    with os.fdopen(fd, "rb", closefd=False) as f:
        is_db = f.read(16) == SQLITE_MAGIC
        f.seek(0)
        if is_db:
            with sqlite_read_lock(fd):
                _copy(f, zf, info)
        else:
            _copy(f, zf, info)


def _copy(f: BinaryIO, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    with zf.open(info, "w") as out:
        shutil.copyfileobj(f, out, 1 << 20)


def prune(app: App, dry_run: bool = False) -> list[Path]:
    """Remove the app's backups beyond ``keep_backups``, oldest first (never one a restore
    restores); returns what goes (with ``dry_run``, nothing is removed)."""
    keep = app.checks.keep_backups or 0
    zips = _zips(app)
    old = [p for p in (zips[:-keep] if keep > 0 else []) if p.name not in app.keep_backup]
    for path in [] if dry_run else old:
        path.unlink(missing_ok=True)
        Path(f"{path}.sha256").unlink(missing_ok=True)
    return old


def verified(app: App, name: str) -> Path:
    """The backup named (or the latest), refused unless its sha256 and contents check out."""
    backups = Path(app.layout.backups_dir)
    if name in ("", "latest"):
        # the latest whole backup: a zip is renamed into place only after its .sha256 is
        # written, so one without is not one (a copy an operator dropped in, half done)
        zips = [p for p in _zips(app) if Path(f"{p}.sha256").is_file()]
        if not zips:
            raise Failure(f"{app.name}: no backups in {backups}")
        path = zips[-1]
    else:
        path = backups / name
        if "/" in name or not name.startswith(f"{app.name}.") or not path.is_file():
            raise Failure(f"{app.name}: no backup {name!r} of this app in {backups}")
    try:
        digest, listed = Path(f"{path}.sha256").read_text().split()
    except (OSError, ValueError):
        raise Failure(f"{app.name}: {path.name} has no readable .sha256: refused") from None
    if listed != path.name or formats.sha256_file(path) != digest:
        raise Failure(f"{app.name}: {path.name} does not match its sha256: corrupt, refused")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except zipfile.BadZipFile:
        raise Failure(f"{app.name}: {path.name} is not a zip: refused") from None
    if bad or not names or any(not safe_member(n, f"{app.name}/") for n in names):
        raise Failure(f"{app.name}: {path.name} is not a backup of this app: refused")
    if f"{app.name}/controllers/" not in {n[: len(app.name) + 13] for n in names}:
        raise Failure(f"{app.name}: {path.name} holds no controllers/: refused")
    return path


def restore_data(app: App, zip_path: Path) -> None:
    """Replace shared data with the backup's; the current data is kept aside."""
    stamp = formats.utc_stamp()
    with zipfile.ZipFile(zip_path) as zf:
        for data in app.data_dirs:
            members = [i for i in zf.infolist() if i.filename.startswith(f"{app.name}/{data}/")]
            if not members and data in ("sessions", "cache"):
                continue  # scratch: never in backups, the current one stays
            shared = app.shared / data
            if shared.exists():
                os.rename(shared, app.shared / f".{data}.before-restore-{stamp}")
            shared.mkdir()
            for info in members:
                if info.is_dir():
                    continue
                target = app.shared / info.filename[len(app.name) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
            chown_tree(shared, app.uid, app.gid)
            os.chmod(shared, 0o770)
    log(
        f"{app.name}: data restored from {zip_path.name}; "
        f"the data it replaced is kept as shared/.*.before-restore-{stamp}"
    )


def take(app: App, entry: AuditRecord) -> None:
    """Back the app up now and name the backup in ``entry`` and the output."""
    entry.backup = backup(app)
    if entry.backup:
        log(f"{app.name}: backup {app.layout.backups_dir}/{entry.backup}")


SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-journal", "-wal", "-shm")
SCRATCH = ("sessions", "cache")
SQLITE_SHARED_FIRST = 0x40000000 + 2  # SQLite's lock bytes: PENDING_BYTE + 2 ...
SQLITE_SHARED_SIZE = 510  # ... for 510 bytes: a read lock there holds writers off


@contextlib.contextmanager
def sqlite_read_lock(fd: int, timeout: float = 30) -> Iterator[None]:
    """Hold SQLite's own shared lock on the open database ``fd`` while it is copied.

    Copying the file while the app writes can catch half a transaction; with SQLite's
    shared lock held (the byte range its readers lock), no writer commits until the copy is
    done, so the copy is a committed state, taken from the descriptor already checked (never
    reopened by path). A lock not had within ``timeout`` (a long writer) copies as is."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, SQLITE_SHARED_SIZE, SQLITE_SHARED_FIRST)
            break
        except OSError:
            if time.monotonic() > deadline:
                yield
                return
            time.sleep(0.05)
    try:
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, SQLITE_SHARED_SIZE, SQLITE_SHARED_FIRST)
