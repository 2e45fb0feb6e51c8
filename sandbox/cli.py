"""bin/sandbox: argument parsing and the one-line error contract."""

from __future__ import annotations

import argparse
import os
import re
import sys

from sandbox import commands, engine
from sandbox.config import ConfigError, load_settings
from sandbox.image import DEFAULT_BASE
from sandbox.mirror import MirrorError
from sandbox.release import DEFAULT_RELEASE, RELEASES, parse_release
from sandbox.util import SandboxError

PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
NO_ROOT_NEEDED = {"inventory", "images"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bin/sandbox",
        description="Throwaway Debian servers on this machine (systemd-nspawn or Docker, root "
        "only): " + ", ".join(f"{name} ({version})" for name, version in RELEASES.items()) + ".",
    )
    p.add_argument(
        "--engine",
        metavar="ENGINE",
        help=f"what boots the servers: {' or '.join(engine.ENGINES)} (default: "
        "$W2P_SANDBOX_ENGINE, else what this sandbox's servers run on, else nspawn)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="ensure servers PREFIX-1..N run (adds what is missing)")
    up.add_argument("count", type=int, metavar="N")
    up.add_argument("--base", default=DEFAULT_BASE, help="image to boot (default: the base)")
    up.add_argument("--prefix", default="w2p", help="server name prefix (default: w2p)")
    up.add_argument(
        "--release",
        metavar="RELEASE",
        help=f"Debian release: {', '.join(RELEASES)} or its number (default: what PREFIX's "
        f"servers run, else $W2P_SANDBOX_RELEASE, else {DEFAULT_RELEASE})",
    )
    down = sub.add_parser("down", help="stop and remove servers (all, and the bridge and proxy)")
    down.add_argument("names", nargs="*", metavar="NAME")
    sub.add_parser("status", help="servers, addresses, whether sshd answers")
    ssh = sub.add_parser("ssh", help="ssh in as deploy (strict host key checking)")
    ssh.add_argument("name", metavar="NAME")
    ssh.add_argument("remote", nargs=argparse.REMAINDER, metavar="COMMAND")
    save = sub.add_parser("save", help="snapshot a server's root filesystem as image GOLDEN")
    save.add_argument("name", metavar="NAME")
    save.add_argument("golden", metavar="GOLDEN")
    save.add_argument("--force", action="store_true", help="replace an existing image")
    sub.add_parser("images", help="list base and saved images")
    rmi = sub.add_parser("rmi", help="delete a saved image")
    rmi.add_argument("golden", metavar="GOLDEN")
    sub.add_parser("inventory", help="print the state as JSON (inventories/sandbox.py reads it)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command not in NO_ROOT_NEEDED and os.geteuid() != 0:
            raise SandboxError("must run as root (it mounts, makes netns, boots systemd)")
        settings = load_settings()
        return dispatch(args, settings)
    except (SandboxError, ConfigError, MirrorError) as exc:
        print(f"bin/sandbox: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bin/sandbox: interrupted (bin/sandbox down cleans up)", file=sys.stderr)
        return 130


def dispatch(args: argparse.Namespace, settings) -> int:
    requested = getattr(args, "engine", None)
    if requested is not None:
        requested = engine.parse_engine(requested)
    elif settings.engine is not None:
        requested = settings.engine
    if args.command == "ssh":  # the state is all it needs, whatever the engine
        commands.ssh_exec(settings, args.name, args.remote)
        return 0
    chosen = engine.for_command(settings, requested)
    if args.command == "up":
        if not PREFIX_RE.match(args.prefix):
            raise SandboxError(f"--prefix {args.prefix!r}: 1-12 lowercase letters and digits")
        release = None if args.release is None else parse_release(args.release)
        chosen.up(settings, args.count, args.base, args.prefix, release)
    elif args.command == "down":
        chosen.down(settings, args.names)
    elif args.command == "status":
        print("\n".join(chosen.status(settings)))
    elif args.command == "save":
        chosen.save(settings, args.name, args.golden, args.force)
    elif args.command == "images":
        print("\n".join(chosen.images(settings)))
    elif args.command == "rmi":
        chosen.remove_image(settings, args.golden)
    elif args.command == "inventory":
        print(chosen.inventory(settings))
    return 0
