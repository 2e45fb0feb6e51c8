#!/usr/bin/env python3
"""Install or upgrade web2py from a source zip: install-source.py ZIP ROOT MARKER USER:GROUP

Shipped to servers by pyinfra-web2py (operations/scripts.py); runs as root. Python 3.9+.

The app user (uWSGI's) is assumed taken over, so nothing here follows a path it controls:

- the zip is extracted by one checked routine: regular files and folders only (no links, no
  special files), no absolute, empty (``//``), ``.`` or ``..`` name parts, everything under
  ``web2py/``; files are created O_EXCL|O_NOFOLLOW in a root-only staging folder;
- the folder ``ROOT`` is in must be root's and not writable by others, and ``ROOT`` itself a
  real folder: the app user cannot swap it for a link;
- the framework (gluon/, handlers, web2py.py, routes.py, site-packages/, applications/ and the
  apps' code) ends up root-owned and not writable by the app user; parameters_*.py root:GROUP
  0640; the app user owns only web2py's scratch (logs/, deposit/) and the data folders of apps
  installed as plain folders. The walk that sets this never follows a link and never enters
  the app user's folders;
- the marker is written O_NOFOLLOW to a temporary file and renamed into place.

An upgrade replaces framework files and adds the apps the zip has and the server lacks; it never
touches existing apps' code or data, parameters_*.py or routes.py.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

TOP = "web2py/"
HANDLER = "handlers/wsgihandler.py"
# web2py writes these at runtime (gluon/fileutils.py create_missing_folders): its scratch
SCRATCH = ("logs", "deposit")
# made by web2py at import if missing (it fails as the app user in a root-owned folder)
MADE_AT_IMPORT = ("applications", "deposit", "logs", "site-packages")
# an app's runtime data: web2py writes here (private/: auth.key, at the first request)
APP_DATA = ("databases", "errors", "sessions", "cache", "uploads", "private")
# gluon/fileutils.py missing_app_folders: web2py makes them on an app's first request if missing
APP_FOLDERS = (
    "models", "views", "controllers", "databases", "modules", "cron", "errors", "sessions",
    "languages", "static", "private", "uploads", "cache",
)  # fmt: skip
KEPT = ("applications",)


class Refused(Exception):
    """One line for the operator; nothing under ROOT has changed."""


def check_member(info: zipfile.ZipInfo) -> str:
    """The member's path below ``web2py/`` ("" for the top folder), or Refused."""
    name = info.filename
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if info.create_system == 3 and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        what = "a link" if kind == stat.S_IFLNK else "a special file"
        raise Refused(f"unsafe entry {name!r} ({what})")
    if "\\" in name or "\x00" in name:
        raise Refused(f"unsafe entry {name!r} (odd characters)")
    if not name.startswith(TOP):
        raise Refused(f"unsafe entry {name!r} (outside web2py/)")
    rel = name[len(TOP) :].rstrip("/") if info.is_dir() else name[len(TOP) :]
    parts = rel.split("/") if rel else []
    if any(part in ("", ".", "..") for part in parts):
        raise Refused(f"unsafe entry {name!r} (empty, '.' or '..' part)")
    return rel


def extract(zip_path: str, dest: str) -> None:
    """Extract ``web2py/`` into ``dest`` (a fresh root-only folder), every member checked."""
    with zipfile.ZipFile(zip_path) as zf:
        members = [(info, check_member(info)) for info in zf.infolist()]
        seen = set()
        for info, rel in members:
            if rel in seen:
                raise Refused(f"unsafe entry {info.filename!r} (twice)")
            seen.add(rel)
        handler = [i for i, rel in members if rel == HANDLER and not i.is_dir()]
        if not handler:
            raise Refused(f"not a web2py source zip: no web2py/{HANDLER}")
        for info, rel in members:
            if not rel:
                continue
            target = os.path.join(dest, rel)
            if info.is_dir():
                os.makedirs(target, 0o755, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                shutil.copyfileobj(src, out, 1 << 20)
        # uWSGI loads the handler from the root (it chdirs where it is)
        fd = os.open(os.path.join(dest, "wsgihandler.py"), os.O_WRONLY | os.O_CREAT | os.O_EXCL
                     | os.O_NOFOLLOW, 0o644)  # fmt: skip
        with os.fdopen(fd, "wb") as out:
            out.write(zf.read(handler[0]))


def check_python(staging: str) -> None:
    """web2py 2.x imports modules Python 3.12 removed: refuse it there, before ROOT changes."""
    try:
        with open(os.path.join(staging, "VERSION")) as f:
            text = f.read()
    except OSError:
        return
    major = text.split("Version ", 1)[-1].split(".", 1)[0] if "Version " in text else ""
    if major.isdigit() and int(major) < 3 and sys.version_info >= (3, 12):
        raise Refused(
            f"web2py {text.strip()} cannot run on Python {sys.version.split()[0]}: use web2py 3.x"
        )


def check_parents(root: str) -> None:
    """Every folder above ROOT is a real folder, root's, not writable by others (or sticky):
    the app user cannot move ROOT nor put a link in its place."""
    path = os.path.dirname(root)
    while True:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise Refused(f"{path} is not a folder (a link?)")
        if st.st_uid != 0 or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
            raise Refused(f"{path} must be root's and writable by root only (it holds {root})")
        if path == "/":
            return
        path = os.path.dirname(path)


def pack_welcome(staging: str) -> None:
    """welcome.w2p, as web2py makes it at start (create_welcome_w2p): made here by root from the
    zip's own files, since the app user cannot write in the root (web2py logs an error else)."""
    welcome = os.path.join(staging, "applications", "welcome")
    if not os.path.isdir(welcome):
        return
    target = os.path.join(staging, "welcome.w2p")
    with tarfile.open(target, "w:gz") as tar:
        for name in sorted(os.listdir(welcome)):
            tar.add(os.path.join(welcome, name), arcname=name)
    os.chmod(target, 0o644)


def remove(path: str) -> None:
    """Remove a file, link or folder; never follows a link (shutil.rmtree works by descriptor)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def install(staging: str, root: str) -> None:
    if not os.path.lexists(root):
        os.rename(staging, root)
        return
    if not stat.S_ISDIR(os.lstat(root).st_mode):
        raise Refused(f"{root} is not a folder (a link?)")
    for name in sorted(os.listdir(staging)):
        if name in KEPT:
            continue
        remove(os.path.join(root, name))
        os.rename(os.path.join(staging, name), os.path.join(root, name))
    apps = os.path.join(root, "applications")
    if os.path.islink(apps) or not os.path.isdir(apps):
        remove(apps)
        os.mkdir(apps, 0o755)
    new_apps = os.path.join(staging, "applications")
    for app in sorted(os.listdir(new_apps)) if os.path.isdir(new_apps) else ():
        if not os.path.lexists(os.path.join(apps, app)):
            os.rename(os.path.join(new_apps, app), os.path.join(apps, app))
    shutil.rmtree(staging)


def owned(fd: int, name: str, uid: int, gid: int, mode: int | None) -> None:
    """chown (and chmod: drop group/other write) one entry of a folder, never through a link."""
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        os.unlink(name, dir_fd=fd)  # a FIFO, socket or device has no business here
        return
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and st.st_uid != 0:
        # a hard link the app user made into the framework (older layouts let it): not ours
        os.unlink(name, dir_fd=fd)
        return
    os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
    new_mode = stat.S_IMODE(st.st_mode) & ~0o022 if mode is None else mode
    if new_mode != stat.S_IMODE(st.st_mode):
        # not a link (checked above), and its folder is root's and not writable by others by
        # now (chowned before it was entered): nothing can swap it in between
        os.chmod(name, new_mode, dir_fd=fd)


def lay_out(root: str, uid: int, gid: int) -> None:
    """Root owns everything under ROOT but web2py's scratch and plain apps' data folders, which
    the app user owns (their content is its data: never entered)."""
    users = {os.path.join(root, name) for name in SCRATCH}
    apps = os.path.join(root, "applications")
    for name in MADE_AT_IMPORT:
        path = os.path.join(root, name)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            os.unlink(path)
        if not os.path.lexists(path):
            os.mkdir(path, 0o755)
    init = os.path.join(apps, "__init__.py")
    if os.path.islink(init):
        os.unlink(init)
    if not os.path.lexists(init):
        os.close(os.open(init, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
    for app in os.listdir(apps):
        app_dir = os.path.join(apps, app)
        if os.path.islink(app_dir) or not os.path.isdir(app_dir):
            continue  # an app deployed as releases: a link, app_deploy's
        for folder in APP_FOLDERS:
            path = os.path.join(app_dir, folder)
            if not os.path.lexists(path):
                os.mkdir(path, 0o755)
        users.update(os.path.join(app_dir, folder) for folder in APP_DATA)
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(top, 0, 0)
        os.fchmod(top, 0o755)
    finally:
        os.close(top)
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        for name in list(dirnames):
            path = os.path.join(dirpath, name)
            if path in users:
                dirnames.remove(name)  # the app user's: its top is chowned, never entered
                os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
                if not os.path.islink(path):  # a folder in a root-owned folder: not swappable
                    os.chmod(name, 0o750, dir_fd=dirfd)
            else:
                owned(dirfd, name, 0, 0, None)
        for name in filenames:
            if dirpath == root and name.startswith("parameters_") and name.endswith(".py"):
                owned(dirfd, name, 0, gid, 0o640)  # the admin password: the group reads it
            else:
                owned(dirfd, name, 0, 0, None)


def take_over_top(root: str) -> None:
    """An existing ROOT (older layouts gave it to the app user) becomes root's before anything
    is moved into it, and so does its applications/: the app user can no longer swap entries."""
    for path in (root, os.path.join(root, "applications")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        except OSError:
            raise Refused(f"{path} is not a folder (a link?)") from None
        try:
            os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)


def compile_framework(root: str) -> None:
    """Byte-compile gluon/ as root (compiling runs none of its code): the app user cannot write
    __pycache__ in the root-owned tree, and every uWSGI worker would compile it at start else.
    gluon/contrib holds files for other Pythons that do not compile: that is expected."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-qq", "-j", "0", os.path.join(root, "gluon")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, check=False,
    )  # fmt: skip


def write_marker(root: str, marker: str) -> None:
    fd, temp = tempfile.mkstemp(prefix=".pyinfra-marker-", dir=root)
    with os.fdopen(fd, "w") as f:
        f.write(marker + "\n")
    os.chmod(temp, 0o644)
    os.replace(temp, os.path.join(root, ".pyinfra-web2py-source"))


def untrusted_site_packages(root: str) -> None:
    """site-packages/ is first on web2py's sys.path: what the app user put there (older layouts
    let it) is moved aside, root-only, never imported again."""
    path = os.path.join(root, "site-packages")
    real = os.path.isdir(path) and not os.path.islink(path)
    if real and os.lstat(path).st_uid != 0 and os.listdir(path):
        aside = f"{path}.untrusted-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        os.rename(path, aside)
        os.chmod(aside, 0o700)
        os.chown(aside, 0, 0)
        print(f"{path}: held files of the app user: moved aside to {aside}", file=sys.stderr)


def main(argv: list[str]) -> int:
    zip_path, root, marker, owner = argv
    user, group = owner.split(":", 1)
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    root = os.path.normpath(root)
    os.umask(0o022)
    try:
        check_parents(root)
        staging_top = tempfile.mkdtemp(prefix=".web2py-staging-", dir=os.path.dirname(root))
        try:
            staging = os.path.join(staging_top, "web2py")
            os.mkdir(staging, 0o755)
            extract(zip_path, staging)
            check_python(staging)
            pack_welcome(staging)
            if os.path.lexists(root):
                take_over_top(root)
                untrusted_site_packages(root)
            install(staging, root)
            os.chmod(root, 0o755)
        finally:
            shutil.rmtree(staging_top, ignore_errors=True)
        lay_out(root, uid, gid)
        compile_framework(root)
        write_marker(root, marker)
    except Refused as error:
        print(f"web2py_source: {zip_path}: {error}: refused", file=sys.stderr)
        return 1
    except zipfile.BadZipFile as error:
        print(f"web2py_source: {zip_path}: not a zip ({error}): refused", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
