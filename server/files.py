"""File access as root in folders the app user can write: no link followed, descriptor-relative.

The app's data folders (and the old layouts' private folders) are written by the web2py user, so
anything root reads, writes or removes there is reached without following a link at any step;
a file planted by the app user can never make root read, write or delete something else.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from server.errors import Failure

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in between the lstat and the open never blocks the open
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def safe_member(name: str, prefix: str) -> bool:
    """An archive entry that stays inside its folder: under ``prefix``, relative, no empty,
    "." or ".." part ("app//tmp/x" would be written to /tmp/x by Path joining)."""
    if not name.startswith(prefix):
        return False
    parts = name[len(prefix) :].rstrip("/").split("/")
    return all(part not in ("", ".", "..") for part in parts) and "\\" not in name


def make_root_dir(path: Path, gid: int) -> None:
    """A folder root owns and the web2py group may read (never a link: refused)."""
    if path.is_symlink():
        raise Failure(f"{path} is a symbolic link: refused")
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, gid)
    os.chmod(path, 0o750)


def _open_below(base: Path, rel: str) -> tuple[int, str]:
    """A descriptor of ``rel``'s folder, reached from ``base`` without following a link at
    any step (base included), and the last name. Raises OSError."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        os.close(fd)
        raise OSError(f"bad path {rel!r}")
    try:
        for part in parts[:-1]:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError:
        os.close(fd)
        raise
    return fd, parts[-1]


def read_regular(base: Path, rel: str, label: str) -> tuple[bytes, str] | None:
    """The bytes of the regular file ``base/rel`` and ``label``, or None: links (at any
    step), folders, FIFOs and devices are never followed or opened for reading, so a file
    planted by the app user cannot make root read something else or block."""
    try:
        dir_fd, name = _open_below(base, rel)
    except OSError:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(), label


def lexists_below(base: Path, rel: str) -> bool:
    """True when ``base/rel`` exists (a link counts, never followed), reached without links."""
    try:
        dir_fd, name = _open_below(base, rel)
    except OSError:
        return False
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False
    finally:
        os.close(dir_fd)


def write_root_file(base: Path, rel: str, data: bytes, gid: int, mode: int = 0o640) -> None:
    """Write ``base/rel`` (root:gid, ``mode``) atomically; missing folders are made root's,
    readable by ``gid`` (0750)."""
    target = base / rel
    for parent in reversed(list(target.relative_to(base).parents)[:-1]):
        make_root_dir(base / parent, gid)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        os.fchown(f.fileno(), 0, gid)
        os.fchmod(f.fileno(), mode)
    os.replace(temp, target)


def regular_files(root: Path) -> list[str]:
    """Relative paths of the regular files under ``root``, sorted; links are not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") and name.endswith(".tmp"):
                continue  # write_root_file's temporary file, left by a killed run
            if stat.S_ISREG(path.lstat().st_mode):
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _old_entries(
    shared: Path, folders: Iterable[str], cutoff: float
) -> Iterator[tuple[str, Path, str, int, os.stat_result]]:
    """(folder, its top, the folder's path, its descriptor, stat) of every file or link older
    than ``cutoff`` in shared/<folder>, as name-in-folder: walked by descriptor without
    following links (os.fwalk checks each folder it enters is the one it saw). The descriptor
    is valid until the next item."""
    for folder in folders:
        top = shared / folder
        if top.is_symlink() or not top.is_dir():
            continue
        for dirpath, _dirs, files, dirfd in os.fwalk(top, follow_symlinks=False):
            for name in files:
                try:
                    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except OSError:
                    continue
                if st.st_mtime < cutoff and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                    yield folder, top, os.path.join(dirpath, name), dirfd, st


def old_scratch_files(
    shared: Path, folders: Iterable[str], cutoff: float
) -> list[tuple[str, str, int]]:
    """(folder, relative path, size) of the files older than ``cutoff`` in shared/<folder>,
    found without following links."""
    return [
        (folder, os.path.relpath(path, top), st.st_size)
        for folder, top, path, _dirfd, st in _old_entries(shared, folders, cutoff)
    ]


def remove_old_scratch_files(shared: Path, folders: Iterable[str], cutoff: float) -> int:
    """Remove what :func:`old_scratch_files` finds, each by its folder's descriptor (a link is
    removed itself, never followed)."""
    removed = 0
    for _folder, _top, path, dirfd, _st in _old_entries(shared, folders, cutoff):
        try:
            os.unlink(os.path.basename(path), dir_fd=dirfd)
            removed += 1
        except OSError:
            continue
    return removed


def remove_below(base: Path, name: str) -> bool:
    """Remove ``base/name`` (a folder with all below it, a file, or a link: the link itself),
    by descriptor: no link is followed at any step, so nothing the app user planted there
    makes root delete elsewhere. False when there was nothing to remove. Raises OSError."""
    if "/" in name or name in ("", ".", ".."):
        raise OSError(f"bad name {name!r}")
    fd = os.open(base, DIR_FLAGS)
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            _empty_dir(fd, name)
            os.rmdir(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
        return True
    finally:
        os.close(fd)


def _empty_dir(parent_fd: int, name: str) -> None:
    """Remove everything below the folder ``name`` of ``parent_fd`` (opened without
    following a link: a folder swapped for a link meanwhile fails with ELOOP)."""
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        for entry in os.listdir(fd):
            st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _empty_dir(fd, entry)
                os.rmdir(entry, dir_fd=fd)
            else:
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """Give ``top`` and everything below it (links themselves excepted) to ``uid:gid``."""
    for path in [top, *top.rglob("*")]:
        if not path.is_symlink():
            os.chown(path, uid, gid)


def open_dir_below(base: Path, rel: str) -> int:
    """A descriptor of the folder ``base/rel``, reached without following a link at any
    step (``rel`` itself included). Raises OSError (ELOOP/ENOTDIR for a link or a file)."""
    dir_fd, name = _open_below(base, rel)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def kind(mode: int) -> str:
    """What a file that is not a regular file or folder is, as reports name it."""
    for test, name in (
        (stat.S_ISLNK, "link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "device"),
        (stat.S_ISBLK, "device"),
    ):
        if test(mode):
            return name
    return "special file"


def regular_files_fd(
    top_fd: int, skipped: list[str], prefix: str = ""
) -> Iterator[tuple[str, int, os.stat_result]]:
    """(relative path, open descriptor, fstat) of every regular file below the open folder
    ``top_fd``, sorted, walked by descriptor: links are never followed, FIFOs, sockets and
    devices never opened. Each of those is added to ``skipped`` ("path (kind)"). A descriptor
    is valid until the next item; ``top_fd`` stays open (the caller's)."""
    with os.scandir(top_fd) as it:
        entries = sorted(e.name for e in it)
    for name in entries:
        rel = f"{prefix}{name}"
        try:
            st = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
        except OSError:
            continue  # gone while we walked
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, DIR_FLAGS, dir_fd=top_fd)
            except OSError:
                skipped.append(f"{rel} (changed while read)")
                continue
            try:
                yield from regular_files_fd(sub, skipped, f"{rel}/")
            finally:
                os.close(sub)
            continue
        if not stat.S_ISREG(st.st_mode):
            skipped.append(f"{rel} ({kind(st.st_mode)})")
            continue
        try:
            fd = os.open(name, FILE_FLAGS, dir_fd=top_fd)
        except OSError:
            skipped.append(f"{rel} (changed while read)")
            continue
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode):
                skipped.append(f"{rel} ({kind(fst.st_mode)})")
                continue
            yield rel, fd, fst
        finally:
            os.close(fd)


def copy_tree_fd(src_fd: int, dest: Path, skipped: list[str]) -> int:
    """Copy the regular files below the open folder ``src_fd`` into the new folder ``dest``
    (made here, root's, 0700 until the caller hands it over), folders as needed; links and
    special files are skipped and listed in ``skipped``. Returns the number of files copied."""
    dest.mkdir(mode=0o700)
    count = 0
    for rel, fd, st in regular_files_fd(src_fd, skipped):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(out, "wb") as w, os.fdopen(fd, "rb", closefd=False) as r:
            shutil.copyfileobj(r, w, 1 << 20)
            os.fchmod(w.fileno(), stat.S_IMODE(st.st_mode) & 0o770)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        count += 1
    return count


def skipped_line(what: str, skipped: list[str], limit: int = 10) -> str:
    """One line naming what a walk skipped (the first ``limit`` of them)."""
    more = f" and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return (
        f"{what} skipped {len(skipped)} links or special files: "
        + ", ".join(skipped[:limit])
        + more
    )
