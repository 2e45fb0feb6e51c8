"""The app's shared/ folder: data dirs, shared files, the rendered config, old layouts adopted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from operations.formats import APPCONFIG, MASKED_APPCONFIG
from server.app import App
from server.errors import log
from server.files import (
    copy_tree_fd,
    lexists_below,
    make_root_dir,
    open_dir_below,
    read_regular,
    regular_files,
    skipped_line,
    write_root_file,
)

SHARED_FILES = "files"  # shared/files/<path>: the app's shared files
LEGACY_PRIVATE = "private"  # shared/private: the old layout's private data dir
PROVISIONAL = ".provisional"  # in shared/: made by attempts of an app that never went live


def seed_shared(app: App, staging: Path) -> None:
    """Create missing shared data dirs, seeded from a full package. Dirs a plain app
    folder still holds are left to :func:`adopt_legacy`, which copies them while the app
    is down (the folder is live: copied while it serves, writes made after would be lost)."""
    if provisional(app):
        # Nothing ever served from these: they hold what the checks of releases that never
        # went live wrote (or a copy of a plain folder's data taken then, now stale). Start
        # afresh, so a fixed app, or another package_mode, deploys as a first deploy does.
        # Of the shared files, only the package's seeds go (the fix may be in them): the
        # server's own and those pyinfra pushed (the auth key all hosts share) stay.
        for name in app.data_dirs:
            if (app.shared / name).is_symlink():
                (app.shared / name).unlink()
            elif (app.shared / name).is_dir():
                shutil.rmtree(app.shared / name)
        for rel in package_seeds(app):
            if lexists_below(app.shared / SHARED_FILES, rel):
                (app.shared / SHARED_FILES / rel).unlink()
        (app.shared / PROVISIONAL).write_text("")
        log(f"{app.name}: no release went live yet: shared data of earlier attempts reset")
    app.shared.mkdir(parents=True, exist_ok=True)
    if not app.current.is_symlink():
        (app.shared / PROVISIONAL).touch()
    legacy = app.legacy_folder()
    for data in app.data_dirs:
        shared = app.shared / data
        if shared.exists() or (legacy and (legacy / data).is_dir()):
            continue
        if not copy_data_dir(app, staging, data, "the package"):
            shared.mkdir()
    fix_shared_modes(app)


def package_seeds(app: App) -> list[str]:
    """Shared files seeded from a package while the app had not gone live yet."""
    try:
        text = (app.shared / PROVISIONAL).read_text()
    except OSError:
        return []
    return [line for line in text.splitlines() if line and ".." not in line.split("/")]


def provisional(app: App) -> bool:
    """True when the app never went live but an earlier attempt left shared/ behind."""
    if app.current.is_symlink() or not app.shared.is_dir():
        return False
    if (app.shared / PROVISIONAL).exists():
        return True
    # attempts by tools older than the marker: a release log without a live release
    history = app.history()
    return bool(history) and not any(event == "live" for _, _, event in history)


def link_shared_files(app: App, staging: Path) -> list[str]:
    """Seed the app's shared files where missing, then link every shared file into the
    release (over the package's copy). Returns the linked paths.

    A missing shared file is taken from the old layout (shared/private, or a plain app
    folder's private/) first, as that is the server's own copy, else from a file pyinfra
    staged (--seed), else from the package. When shared/files is new, the old layout's
    private files that the package lacks are kept too: copied and reported, never lost."""
    files_dir = app.shared / SHARED_FILES
    first = not files_dir.is_dir()
    make_root_dir(files_dir, app.gid)
    legacy_dirs = legacy_private_dirs(app)
    seeds = app.options.seeds
    declared = list(app.options.shared_files)
    rendered = {APPCONFIG} if app.options.appconfig else set()
    for rel in declared:
        if rel in rendered or lexists_below(files_dir, rel):
            continue
        found = None
        for label, folder in legacy_dirs if rel.startswith("private/") else ():
            found = found or read_regular(folder, rel.split("/", 1)[1], label)
        if found is None and rel in seeds:
            found = read_regular(Path(seeds[rel]).parent, Path(seeds[rel]).name, "pyinfra")
        if found is None:
            found = read_regular(staging, rel, "the package")
        if found is not None:
            write_root_file(files_dir, rel, found[0], app.gid)
            log(f"{app.name}: shared file {rel}: seeded from {found[1]}")
            if found[1] == "the package" and not app.current.is_symlink():
                with open(app.shared / PROVISIONAL, "a") as marker:
                    marker.write(rel + "\n")  # replaced by the next attempt's, if any
    if first:
        for label, folder in legacy_dirs:
            for sub in regular_files(folder):
                rel = f"private/{sub}"
                if (staging / rel).exists() or lexists_below(files_dir, rel):
                    continue
                found = read_regular(folder, sub, label)
                if found is not None:
                    write_root_file(files_dir, rel, found[0], app.gid)
                    log(
                        f"{app.name}: kept {rel} from {label} (not in the package): now "
                        f"a shared file; declare it in shared_files"
                    )
                    app.kept.append(rel)
    linked = []
    for rel in regular_files(files_dir):
        if rel in rendered:
            log(f"{app.name}: {rel} is rendered from the appconfig setting; shared copy unused")
            continue
        link = staging / rel
        if link.is_dir() and not link.is_symlink():
            log(f"{app.name}: shared file {rel} is a folder in the package: not linked")
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(files_dir / rel, link.parent), link)
        linked.append(rel)
    return linked


def legacy_private_dirs(app: App) -> list[tuple[str, Path]]:
    """Where the old layouts kept private/: shared/private (releases before private/
    shipped with them) and a plain app folder's private/ (fabfile, install time)."""
    found = []
    old = app.shared / LEGACY_PRIVATE
    if old.is_dir() and not old.is_symlink():
        found.append(("shared/private", old))
    plain = app.legacy_folder()
    if plain and (plain / "private").is_dir() and not (plain / "private").is_symlink():
        found.append((f"the app folder {plain}", plain / "private"))
    return found


def place_appconfig(app: App, staging: Path) -> str:
    """The config pyinfra rendered for this host (--appconfig, staged root-only) becomes
    the release's private/appconfig.ini: readable by the web2py group, written by root."""
    data = Path(app.options.appconfig).read_bytes()
    target = staging / APPCONFIG
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chown(target.parent, 0, app.gid)
    os.chmod(target.parent, 0o750)
    if target.is_symlink() or target.exists():
        target.unlink()  # never write through: it may be a link to a shared file
    write_root_file(staging, APPCONFIG, data, app.gid)
    masked = (
        Path(app.options.appconfig_masked).read_bytes() if app.options.appconfig_masked else b""
    )
    write_root_file(staging, MASKED_APPCONFIG, masked, 0, mode=0o600)
    return APPCONFIG


def adopt_legacy(app: App) -> list[str]:
    """Copy a plain app folder's data into shared/ (the app must be down). Existing data
    in shared/ is live and never overwritten."""
    legacy, copied = app.legacy_folder(), []
    for data in app.data_dirs if legacy else ():
        shared = app.shared / data
        if not shared.exists() and copy_data_dir(app, legacy, data, f"the app folder {legacy}"):
            copied.append(data)
    fix_shared_modes(app)
    return copied


def copy_data_dir(app: App, source: Path, data: str, label: str) -> bool:
    """Copy the data folder ``source/data`` into shared/<data> (False when there is none).

    The source may be the app user's (a plain app folder): it is walked by descriptor, regular
    files only; links and special files are skipped and reported, never followed or opened.
    The copy is made in a root-only folder and handed to the app user once complete."""
    try:
        src_fd = open_dir_below(source, data)
    except OSError:
        return False  # none, or a link or a file in its place: never followed
    app.shared.mkdir(parents=True, exist_ok=True)
    temp = app.shared / f".{data}.copy-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    skipped: list[str] = []
    try:
        copy_tree_fd(src_fd, temp, skipped)
    finally:
        os.close(src_fd)
    # the app user gets the folder last: until then it cannot reach what is being handed over
    for path in [*sorted(temp.rglob("*"), reverse=True), temp]:
        os.chown(path, app.uid, app.gid, follow_symlinks=False)
    os.rename(temp, app.shared / data)
    if skipped:
        log(skipped_line(f"{app.name}: copy of {data}/ from {label}", skipped))
    return True


def fix_shared_modes(app: App) -> None:
    """The shared data folders owned by the web2py user (0770), the app's folder 0755."""
    # Existing data is live: the app writes (and deletes) in it right now, so it is never
    # walked here; only the folders themselves are checked.
    for data in app.data_dirs:
        shared = app.shared / data
        if shared.is_dir():
            os.chown(shared, app.uid, app.gid)
            os.chmod(shared, 0o770)
    os.chmod(app.base, 0o755)
