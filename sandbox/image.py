"""Base images: a debootstrapped Debian release cached as a zstd tarball, and golden snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import SSH_USER, Settings
from sandbox.mirror import Mirrors, guest_sources
from sandbox.release import DEFAULT_RELEASE, RELEASES, check_image_release, release_of
from sandbox.state import exclusive
from sandbox.util import SandboxError, in_root, run, say, tail, write_file

# Bump when the build steps below change: the cache key changes with it.
RECIPE_VERSION = 1
# minbase + an explicit list: what a minimal cloud image has that deploys rely on (systemd as
# init, sshd, sudo, python3 for tools), without the 'important' set's udev, ifupdown, dhcp
# client and friends that only fail inside a container.
VARIANT = "minbase"
PACKAGES = (
    "systemd-sysv", "dbus", "openssh-server", "sudo", "iproute2", "procps", "curl",
    "ca-certificates", "python3", "netbase", "less", "iputils-ping",
)  # fmt: skip
# Per release, what differs from PACKAGES (the same names exist in bullseye, bookworm, trixie).
RELEASE_PACKAGES: dict[str, tuple[str, ...]] = {}
# Timers that would run apt on their own and hold the dpkg lock in the middle of a deploy.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer")
# The host's apt settings carried into the servers (e.g. a snapshot mirror's old Release files).
CARRIED_APT_OPTIONS = ("Acquire::Check-Valid-Until", "Acquire::Check-Date")
APT_STAMP = "var/lib/apt/periodic/update-success-stamp"
# What debootstrap checks a suite's Release file with (its scripts name it for every release).
HOST_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
STALE_LISTS = 20 * 3600  # refresh an unused image's apt lists when older (deploys use 1 day)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
DEFAULT_BASE = "default"
TAR_FLAGS = ("--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls")


@dataclass(frozen=True)
class Image:
    name: str
    rootfs: Path
    release: str


def host_apt_options() -> dict[str, str]:
    try:
        dump = run(["apt-config", "dump"], timeout=30).stdout
    except SandboxError:
        return {}
    options = {}
    for line in dump.splitlines():
        key, _, value = line.partition(" ")
        if key in CARRIED_APT_OPTIONS:
            options[key] = value.strip().rstrip(";").strip('"')
    return options


def packages(release: str) -> tuple[str, ...]:
    return PACKAGES + RELEASE_PACKAGES.get(release, ())


def recipe(
    mirrors: Mirrors, apt_options: dict[str, str], release: str = DEFAULT_RELEASE
) -> dict[str, object]:
    """What a base image is made of; its hash names the image (suite included: one per release)."""
    if release not in RELEASES:
        raise SandboxError(f"no base image recipe for {release!r}")
    return {
        "version": RECIPE_VERSION,
        "suite": release,
        "variant": VARIANT,
        "packages": sorted(packages(release)),
        "mirrors": mirrors.as_dict(),
        "apt_options": dict(sorted(apt_options.items())),
        "user": SSH_USER,
        "masked": sorted(MASKED_UNITS),
    }


def recipe_key(data: dict[str, object]) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def apt_proxy_conf(proxy_url: str) -> str:
    return (
        f'Acquire::http::Proxy "{proxy_url}";\n'
        'Acquire::http::Timeout "30";\nAcquire::Retries "3";\n'
    )


# --- the base ----------------------------------------------------------------------------------


def base_paths(settings: Settings, key: str) -> tuple[Path, Path, Path]:
    """home (recipe.json, .ready, rootfs/), rootfs, tarball of the base image KEY."""
    bases = settings.cache_dir / "bases"
    return bases / key, bases / key / "rootfs", bases / f"{key}.tar.zst"


def ensure_base(settings: Settings, mirrors: Mirrors, release: str = DEFAULT_RELEASE) -> Image:
    apt_options = host_apt_options()
    data = recipe(mirrors, apt_options, release)
    key = recipe_key(data)
    home, rootfs, _ = base_paths(settings, key)
    if not (home / ".ready").exists():
        # The cache is shared by every sandbox on the machine (other state dirs, a test's own):
        # one builds a given image, the others wait for it and use it.
        home.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(home.parent / f"{key}.lock", timeout=3600):
            if not (home / ".ready").exists():
                _make_base(settings, mirrors, apt_options, release, data, key)
    check_image_release(rootfs, release, f"{DEFAULT_BASE} ({key})")
    return Image(DEFAULT_BASE, rootfs, release)


def _make_base(
    settings: Settings,
    mirrors: Mirrors,
    apt_options: dict[str, str],
    release: str,
    data: dict[str, object],
    key: str,
) -> None:
    home, rootfs, tarball = base_paths(settings, key)
    bases = home.parent
    log = settings.logs_dir / f"base-build-{release}.log"
    home.mkdir(parents=True, exist_ok=True)
    write_file(home / "recipe.json", json.dumps(data, indent=2) + "\n")
    if not tarball.exists():
        build = bases / f"{key}.build"
        _build(settings, mirrors, apt_options, build, log, release)
        check_image_release(build, release, f"just built in {build}")
        say(f"packing the base image ({tarball.name})")
        started = time.monotonic()
        tmp = tarball.with_name(tarball.name + ".tmp")
        run(["tar", "--zstd", "-cpf", tmp, *TAR_FLAGS, "-C", build, "."], log=log, timeout=900)
        os.replace(tmp, tarball)
        say(f"packed in {time.monotonic() - started:.0f} s")
        _replace_dir(build, rootfs)
    else:
        say(f"extracting the cached base image {tarball.name}")
        tmp_dir = home / "rootfs.tmp"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir()
        run(["tar", "--zstd", "-xpf", tarball, *TAR_FLAGS, "-C", tmp_dir], log=log, timeout=900)
        _replace_dir(tmp_dir, rootfs)
    (home / ".ready").touch()


def _replace_dir(src: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(src, dest)


def _build(
    settings: Settings,
    mirrors: Mirrors,
    apt_options: dict[str, str],
    root: Path,
    log: Path,
    release: str,
) -> None:
    shutil.rmtree(root, ignore_errors=True)
    proxy = f"http://127.0.0.1:{settings.proxy_port}"
    say(f"building the base image: debootstrap {release} ({VARIANT}) via the apt proxy")
    started = time.monotonic()
    try:
        run(
            # --force-check-gpg: never an unchecked Release file (the mirror is plain http, and
            # without a keyring debootstrap would only warn and go on)
            ["debootstrap", "--force-check-gpg", f"--variant={VARIANT}",
             f"--include={','.join(packages(release))}", "--components=main", release, root,
             mirrors.main],
            log=log, timeout=1800, env={"http_proxy": proxy, "DEBIAN_FRONTEND": "noninteractive"},
        )  # fmt: skip
    except SandboxError as exc:
        if unknown_key(tail(log, 30)):
            raise SandboxError(
                f"debootstrap {release}: the host's {HOST_KEYRING} cannot check its Release "
                "file (missing, or without this release's key): install or upgrade "
                "debian-archive-keyring (bookworm's 2023.3+deb12u2 has the keys of bullseye, "
                f"bookworm and trixie) (log: {log})"
            ) from exc
        raise
    say(f"debootstrap done in {time.monotonic() - started:.0f} s; configuring")
    etc = root / "etc"
    (etc / "apt" / "sources.list").unlink(missing_ok=True)
    write_file(etc / "apt/sources.list.d/debian.sources", guest_sources(mirrors, release))
    write_file(etc / "apt/apt.conf.d/90sandbox-proxy", apt_proxy_conf(settings.proxy_url))
    if apt_options:
        lines = "".join(f'{k} "{v}";\n' for k, v in sorted(apt_options.items()))
        write_file(etc / "apt/apt.conf.d/91sandbox-host-options", lines)
    chroot = ["chroot", str(root)]
    run([*chroot, "useradd", "-m", "-u", "1000", "-U", "-s", "/bin/bash", SSH_USER], log=log)
    write_file(etc / f"sudoers.d/{SSH_USER}", f"{SSH_USER} ALL=(ALL) NOPASSWD:ALL\n", mode=0o440)
    write_file(
        etc / "ssh/sshd_config.d/50-sandbox.conf",
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
    )
    for unit in MASKED_UNITS:
        link = etc / "systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    say("apt-get update in the base image (once, so servers need not)")
    run(
        [*chroot, "apt-get", "-o", f"Acquire::http::Proxy={proxy}", "update"],
        log=log, timeout=600, env={"DEBIAN_FRONTEND": "noninteractive"},
    )  # fmt: skip
    run([*chroot, "apt-get", "clean"], log=log)
    stamp = root / APT_STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    clean_identity(root)


def unknown_key(debootstrap_output: str) -> bool:
    """debootstrap failed because the host's keyring cannot check the suite's Release file."""
    return any(
        sign in debootstrap_output
        for sign in ("signed by unknown key", "NO_PUBKEY", "keyring file not available")
    )


def clean_identity(root: Path) -> None:
    """Remove what makes a root filesystem one particular host; each server gets its own."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    write_file(in_root(root, "etc/machine-id"), "", mode=0o444)
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.is_file() and not dbus_id.is_symlink():
        dbus_id.unlink()
    write_file(in_root(root, "etc/hostname"), "localhost\n")
    (root / "var/lib/systemd/random-seed").unlink(missing_ok=True)
    (root / f"home/{SSH_USER}/.ssh/authorized_keys").unlink(missing_ok=True)
    journal = root / "var/log/journal"
    if journal.is_dir() and not journal.is_symlink():
        for entry in journal.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


# --- golden images -----------------------------------------------------------------------------


def golden_dir(settings: Settings, name: str) -> Path:
    return settings.cache_dir / "golden" / name


def check_name(name: str) -> None:
    if not NAME_RE.match(name) or name == DEFAULT_BASE:
        raise SandboxError(
            f"bad image name {name!r}: lowercase letters, digits, . _ - (not {DEFAULT_BASE!r})"
        )


def golden(settings: Settings, name: str) -> Image:
    check_name(name)
    home = golden_dir(settings, name)
    if not (home / ".ready").exists():
        known = list_golden(settings)
        raise SandboxError(
            f"no image {name!r} (saved: {', '.join(known) or 'none'}; "
            "make one with bin/sandbox save SERVER NAME)"
        )
    rootfs = home / "rootfs"
    release = release_of(rootfs)  # what it is, also for an image saved before releases
    if release not in RELEASES:
        raise SandboxError(f"image {name!r} is not a Debian release the sandbox knows ({release})")
    return Image(name, rootfs, release)


def list_golden(settings: Settings) -> list[str]:
    top = settings.cache_dir / "golden"
    if not top.is_dir():
        return []
    return sorted(p.name for p in top.iterdir() if (p / ".ready").exists())


def save_golden(settings: Settings, merged: Path, name: str, meta: dict[str, object]) -> Path:
    """Copy a server's whole root (its overlay as seen on the host) into a new image."""
    home = golden_dir(settings, name)
    tmp = home.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "rootfs").mkdir(parents=True)
    log = settings.logs_dir / f"save-{name}.log"
    os.sync()
    pack = subprocess.Popen(
        ["tar", "-cpf", "-", *TAR_FLAGS, "--one-file-system", "-C", str(merged), "."],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        unpack = subprocess.run(
            ["tar", "-xpf", "-", *TAR_FLAGS, "-C", str(tmp / "rootfs")],
            stdin=pack.stdout, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
    finally:
        if pack.stdout:
            pack.stdout.close()
        pack_rc = pack.wait(timeout=60)
    if unpack.returncode != 0 or pack_rc not in (0, 1):  # 1: a file changed while read
        shutil.rmtree(tmp, ignore_errors=True)
        log.write_text(unpack.stderr)
        raise SandboxError(f"copying {merged} failed (log: {log})")
    clean_identity(tmp / "rootfs")
    write_file(tmp / "meta.json", json.dumps(meta, indent=2) + "\n")
    (tmp / ".ready").touch()
    if home.exists():
        shutil.rmtree(home)
    os.replace(tmp, home)
    return home


def remove_golden(settings: Settings, name: str) -> None:
    check_name(name)
    home = golden_dir(settings, name)
    if not home.exists():
        raise SandboxError(f"no image {name!r}")
    shutil.rmtree(home)


def refresh_if_stale(settings: Settings, image: Image) -> None:
    """Run apt-get update in an image nobody is using, when its lists are older than a day-ish,
    so that 20 servers never run it at once (through one proxy that is where apt hangs)."""
    stamp = image.rootfs / APT_STAMP
    try:
        age = time.time() - stamp.stat().st_mtime
    except FileNotFoundError:
        age = float("inf")
    if age < STALE_LISTS:
        return
    say(f"refreshing apt lists in image {image.name} (last update {age / 3600:.0f} h ago)")
    log = settings.logs_dir / "base-build.log"
    proxy = f"http://127.0.0.1:{settings.proxy_port}"
    run(
        ["chroot", str(image.rootfs), "apt-get", "-o", f"Acquire::http::Proxy={proxy}", "update"],
        log=log, timeout=600, env={"DEBIAN_FRONTEND": "noninteractive"},
    )  # fmt: skip
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
