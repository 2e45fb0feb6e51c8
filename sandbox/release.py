"""Which Debian release a sandbox server runs: the supported ones, the default, the checks."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sandbox.util import SandboxError

# codename -> Debian version. All three come from Debian's archive (through the sandbox's proxy)
# with the same suites: CODENAME, CODENAME-updates and, on the security mirror, CODENAME-security
# (the "-security" naming exists since bullseye).
RELEASES = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
# What `bin/sandbox up` boots without --release (and without W2P_SANDBOX_RELEASE).
DEFAULT_RELEASE = "bookworm"
# What a server recorded in a state file older than releases runs: it was always bookworm.
LEGACY_RELEASE = "bookworm"


def parse_release(text: str, what: str = "--release") -> str:
    """'trixie', 'Trixie' or '13' -> 'trixie'; anything else is refused with one line."""
    value = text.strip().lower()
    if value in RELEASES:
        return value
    by_version = {version: name for name, version in RELEASES.items()}
    if value in by_version:
        return by_version[value]
    choices = ", ".join(f"{name} ({version})" for name, version in RELEASES.items())
    raise SandboxError(f"{what} {text!r}: not a release the sandbox boots; choose {choices}")


def describe(release: str) -> str:
    """'trixie' -> 'Debian 13 (trixie)'."""
    return f"Debian {RELEASES.get(release, '?')} ({release})"


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of an os-release file, quotes removed."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            fields[key] = value.strip().strip("'\"")
    return fields


def release_of(rootfs: Path) -> str | None:
    """The Debian codename a root filesystem says it is (its os-release), if any. Symlinks are
    followed inside ROOTFS (an absolute target is taken relative to it, as the server sees it)."""
    for relative in ("etc/os-release", "usr/lib/os-release"):
        path = rootfs / relative
        for _ in range(8):
            if not path.is_symlink():
                break
            target = os.readlink(path)
            path = rootfs / target.lstrip("/") if target.startswith("/") else path.parent / target
        if path.is_file() and not path.is_symlink():
            real_root = os.path.realpath(rootfs)
            if os.path.realpath(path).startswith(real_root + os.sep):
                fields = parse_os_release(path.read_text(errors="replace"))
                return fields.get("VERSION_CODENAME") or None
    return None


def check_image_release(rootfs: Path, expected: str, image_name: str) -> None:
    """Refuse to boot servers on an image that is not the release they are recorded as."""
    found = release_of(rootfs)
    if found != expected:
        raise SandboxError(
            f"image {image_name} ({rootfs}) is {found or 'no known Debian release'}, "
            f"not {expected}: remove it and run again"
        )


def choose_release(
    requested: str | None,
    default: str,
    prefix: str,
    running: Iterable[tuple[str, str]],
    image_release: str | None = None,
    image_name: str | None = None,
) -> str:
    """The release `up` boots for PREFIX: the one asked for; else the saved image's; else the one
    PREFIX's running servers already run; else the default. A prefix never mixes releases.

    running: (server name, release) of this prefix's running servers.
    """
    running = sorted(running)
    if image_release is not None:
        if requested is not None and requested != image_release:
            raise SandboxError(
                f"image {image_name} is {image_release}: it cannot boot {requested} "
                f"(leave out --release, or save an image of a {requested} server)"
            )
        release = image_release
    else:
        release = requested or (running[0][1] if running else default)
    other = [(name, rel) for name, rel in running if rel != release]
    if other:
        names = ", ".join(name for name, _ in other)
        raise SandboxError(
            f"prefix {prefix} runs {other[0][1]} ({names}), not {release}: use another --prefix "
            f"or bin/sandbox down {names} first"
        )
    return release
