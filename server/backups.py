"""An app's backups: a verified zip of code and data (SQLite snapshotted), retention, restore."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from operations import formats
from operations.formats import AuditRecord
from server.app import App
from server.errors import Failure, log
from server.files import chown_tree, safe_member, walk_files


def _zips(app: App) -> list[Path]:
    """The app's backups, oldest first (by mtime)."""
    backups = Path(app.layout.backups_dir)
    return sorted(backups.glob(f"{app.name}.*.zip"), key=lambda p: p.stat().st_mtime)


def backup(app: App) -> str | None:
    """Zip the live app (code and data) to BACKUPS/APP.<stamp>.zip with a .sha256."""
    source = app.web2py_link
    if not source.exists():
        return None
    backups = Path(app.layout.backups_dir)
    backups.mkdir(parents=True, exist_ok=True)
    os.chmod(backups, 0o700)
    stamp = formats.utc_stamp()
    name, n = f"{app.name}.{stamp}.zip", 1
    while True:  # never collide, even for two deploys in one second
        try:
            fd = os.open(backups / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            n += 1
            name = f"{app.name}.{stamp}-{n}.zip"
    with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        root = source.resolve()
        for path in sorted(walk_files(root)):
            rel = path.relative_to(root)
            if rel.parts and rel.parts[0] in ("sessions", "cache"):
                continue  # runtime scratch, not worth restoring
            if path.name.endswith(SQLITE_SIDECARS) and is_sqlite(
                path.with_name(path.name.rsplit("-", 1)[0])
            ):
                continue  # the database's snapshot holds what it committed
            arcname = f"{app.name}/{rel.as_posix()}"
            try:
                if is_sqlite(path):
                    write_sqlite_snapshot(zf, path, arcname, backups)
                else:
                    zf.write(path, arcname)
            except FileNotFoundError:
                continue  # removed by the app while we walked (a temp file, a deleted upload)
    digest = formats.sha256_file(backups / name)
    (backups / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    prune(app)
    return name


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
        zips = _zips(app)
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


def is_sqlite(path: Path) -> bool:
    """True when ``path`` is an SQLite database (by its header)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def write_sqlite_snapshot(zf: zipfile.ZipFile, path: Path, arcname: str, scratch: Path) -> None:
    """Zip a consistent copy of a live SQLite database (web2py's default storage.sqlite).

    Copying the file while the app writes can catch half a transaction; SQLite's online backup
    copies it in one step under a read lock (writers wait, up to the busy timeout), so the
    snapshot is a committed state and its journal is not needed. If SQLite cannot (a database
    in WAL mode without its -shm, an odd file), the plain copy is the fallback."""
    try:
        import sqlite3  # here: only servers with SQLite apps need the module
    except ImportError:
        zf.write(path, arcname)
        return
    fd, temp = tempfile.mkstemp(prefix=".sqlite-snapshot-", dir=scratch)
    os.close(fd)
    try:
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                target = sqlite3.connect(temp)
                try:
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.Error:
            zf.write(path, arcname)
            return
        info = zipfile.ZipInfo.from_file(path, arcname)
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(temp, "rb") as snapshot, zf.open(info, "w") as out:
            shutil.copyfileobj(snapshot, out, 1 << 20)
    finally:
        os.unlink(temp)
