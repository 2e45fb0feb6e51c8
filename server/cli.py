"""The release tool's command line: one subparser per subcommand, each with only its own flags.

The server's layout comes from the file install wrote (``--layout``, default
``/etc/web2py/release.json``); the flags carry only what belongs to this call. Typed settings
(server.settings) are built here and handed to server.commands.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from operations.formats import EXIT_FAILED, EXIT_USAGE, layout_path
from server import commands, detach
from server.app import App
from server.errors import Failure, Locked, cause
from server.settings import (
    SCHEDULER_SETTLE,
    Checks,
    CleanupOptions,
    DeployOptions,
    Layout,
    Options,
    RestoreOptions,
)
from server.watch import watch_apps

APP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BOOL = argparse.BooleanOptionalAction
DEFAULT_LAYOUT = layout_path("/etc/web2py")


def _layout_flag() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--layout", default=DEFAULT_LAYOUT)  # the file install wrote
    return p


def _app_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, parents=[_layout_flag()])
    p.add_argument("--app", required=True)
    p.add_argument("--who", default="unknown")
    return p


def _check_flags() -> argparse.ArgumentParser:
    """The recorded settings (None: as the live release's deploy recorded) and timeouts."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--health-path")  # "": no health check
    p.add_argument("--health-status", type=int)
    p.add_argument("--health-text")
    p.add_argument("--hooks")
    p.add_argument("--keep-releases", type=int)
    p.add_argument("--keep-backups", type=int)
    p.add_argument("--check-timeout", type=float, default=30)
    p.add_argument("--reload-timeout", type=float, default=60)
    p.add_argument("--hook-timeout", type=float, default=300)
    p.add_argument("--settle", type=float, default=SCHEDULER_SETTLE)
    # how long to wait for a live run holding the lock (a run whose controller died)
    p.add_argument("--lock-wait", type=float, default=0)  # the controller passes its data's
    return p


def _window_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--down", action=BOOL, default=False)
    p.add_argument("--notice-seconds", type=float, default=0)
    p.add_argument("--notice-file", default="")  # the notice, staged by pyinfra
    p.add_argument("--drain-timeout", type=float, default=10)
    return p


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    p = argparse.ArgumentParser(prog="web2py-release", description="pyinfra-web2py's releases")
    sub = p.add_subparsers(dest="command", required=True)
    app, checks, window = _app_flags(), _check_flags(), _window_flags()
    d = sub.add_parser("deploy", parents=[app, checks, window])
    d.add_argument("--package", required=True)
    d.add_argument("--sha256", required=True)
    d.add_argument("--delta-sha256", default="")  # --package is a delta from the live release
    d.add_argument("--version", default="")
    d.add_argument("--backup", action=BOOL, default=True)
    d.add_argument("--settings", default="")  # JSON: recorded in REVISION for later runs
    d.add_argument("--config-sha256", default="")  # of the rendered appconfig ("": none)
    d.add_argument("--appconfig", default="")  # the rendered appconfig.ini, staged root-only
    d.add_argument("--appconfig-masked", default="")  # the same with its secrets masked
    d.add_argument("--shared-files", default="")  # comma-separated paths in the app
    d.add_argument("--seed", action="append", default=[])  # PATH=STAGED: a shared file's seed
    d.add_argument("--migrate", action=BOOL, default=False)
    r = sub.add_parser("restore", parents=[app, checks, window])
    r.add_argument("--backup-name", default="latest")
    r.add_argument("--restore-data", action=BOOL, default=False)
    sub.add_parser("rollback", parents=[app, checks]).add_argument("--to", default="")
    sub.add_parser("status", parents=[app])
    sub.add_parser("unlock", parents=[app])
    sub.add_parser("backup", parents=[app]).add_argument("--keep-backups", type=int)
    c = sub.add_parser("cleanup", parents=[app])
    c.add_argument("--keep-backups", type=int)
    c.add_argument("--keep-releases", type=int)
    c.add_argument("--days", type=float, default=30)
    c.add_argument("--dry-run", action="store_true")
    reload = sub.add_parser("reload", parents=[_layout_flag()])
    reload.add_argument("--reload-timeout", type=float, default=60)
    stop = sub.add_parser("scheduler-stop", parents=[_layout_flag()])
    stop.add_argument("--app", required=True)
    stop.add_argument("--pid", default="")  # the worker ($MAINPID; "": none)
    stop.add_argument("--stop-timeout", type=float, default=60)  # for its running task
    w = sub.add_parser("watch", parents=[_layout_flag()])
    w.add_argument("--app", action="append", required=True)  # each app to probe and count
    w.add_argument("--seconds", type=float, required=True)
    w.add_argument("--interval", type=float, default=1.0)
    check = sub.add_parser("scheduler-check")
    check.add_argument("--app", required=True)
    check.add_argument("--settle", type=float, default=SCHEDULER_SETTLE)
    return p


def read_layout(path: str) -> Layout:
    """The server's layout, as install wrote it at ``path``; a server without one (installed
    before it existed, or never) is one clear line."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise Failure(
            f"{path} is missing: this server's layout is written at install; run "
            "pyinfra INVENTORY deploys/install_web2py.py first"
        ) from None
    except OSError as error:
        raise Failure(f"{path}: unreadable: {error.strerror}") from None
    try:
        return Layout.from_json(text)
    except (ValueError, TypeError) as error:
        raise Failure(
            f"{path}: not a layout this tool reads ({error}); run "
            "pyinfra INVENTORY deploys/install_web2py.py again"
        ) from None


def _pick(cls: type, args: argparse.Namespace, **extra: object):
    """An instance of dataclass ``cls`` from the flags of the same names that were declared."""
    given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{**given, **extra})


def options_of(args: argparse.Namespace) -> Options:
    """What this call asks of the app, from the command line."""
    seeds = dict(seed.split("=", 1) for seed in getattr(args, "seed", []) if "=" in seed)
    shared = tuple(f for f in getattr(args, "shared_files", "").split(",") if f)
    return _pick(Options, args, checks=_pick(Checks, args), seeds=seeds, shared_files=shared)


def run(args: argparse.Namespace, layout: Layout) -> int:
    """Call the subcommand ``args`` names with the settings built from them."""
    if args.command == "reload":
        return commands.reload(layout, args.reload_timeout)
    if args.command == "scheduler-stop":
        return commands.scheduler_stop(layout, args.app, args.pid, args.stop_timeout)
    if args.command == "watch":
        return watch_apps(layout, args.app, args.seconds, args.interval)
    app = App(args.app, layout, options_of(args))
    if args.command == "deploy":
        settings = json.loads(args.settings or "{}")
        return commands.deploy(app, _pick(DeployOptions, args, settings=settings))
    if args.command == "restore":
        return commands.restore(app, _pick(RestoreOptions, args))
    if args.command == "rollback":
        return commands.rollback(app, args.to)
    if args.command == "cleanup":
        return commands.cleanup(app, _pick(CleanupOptions, args))
    simple = {"status": commands.status, "unlock": commands.unlock, "backup": commands.backup}
    return simple[args.command](app)


def _drop_notice(args: argparse.Namespace, layout: Layout) -> None:
    """The notice a deploy under maintenance put up (or staged) must not outlive it."""
    if args.command in ("deploy", "restore") and args.down:
        (Path(layout.maintenance_dir) / f"{args.app}.notify").unlink(missing_ok=True)
        if args.notice_file:
            Path(args.notice_file).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and turn a failure into its one line and exit code. A deploy, rollback or
    restore runs detached (server.detach): this process relays its run log; in the child,
    the exit code is also written to the log as its last line."""
    if detach.in_child():
        detach.child_setup()
        return detach.child_exit(_main(argv))
    return _main(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as usage:  # argparse printed why
        return EXIT_USAGE if usage.code else 0
    given = getattr(args, "app", None)  # reload has none; watch takes several
    names = given if isinstance(given, list) else ([given] if given else [])
    if not all(APP_NAME.fullmatch(name) for name in names):
        print(f"{args.command}: --app {' '.join(names)!r}: not an app name", file=sys.stderr)
        return EXIT_USAGE
    if args.command.startswith("scheduler-") and not APP_NAME.fullmatch(args.app):
        print(f"{args.command} needs --app, an app name", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "scheduler-check":  # systemd's view only: no layout needed
        return commands.scheduler_check(args.app, args.settle)
    try:
        layout = read_layout(args.layout)
    except Failure as error:
        print(str(error), file=sys.stderr)
        if getattr(args, "down", False) and args.notice_file:
            Path(args.notice_file).unlink(missing_ok=True)  # staged for a run that never began
        return EXIT_FAILED
    if args.command in detach.DETACHED_COMMANDS and not detach.in_child():
        argv = list(sys.argv[1:] if argv is None else argv)
        try:
            runs = Path(layout.apps_dir) / args.app / "runs"
            return detach.run_detached(argv, runs, args.command)
        except OSError as error:
            print(
                f"{args.command} {args.app}: cannot start the run: {cause(error)}", file=sys.stderr
            )
            return EXIT_FAILED
    locked = False
    try:
        return run(args, layout)
    except Locked as error:
        # Another live deploy holds the lock: its notice (and the file it staged, at the same
        # path as ours) is its own, and stays.
        locked = True
        print(str(error), file=sys.stderr)
        return error.exit_code
    except Failure as error:
        print(str(error), file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # a bug or an unforeseen fault: one line, traceback in the log
        detach.note_exception(error)
        where = f" (details in {detach.log_path()})" if detach.in_child() else ""
        print(f"{args.command}: unexpected error: {cause(error)}{where}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if not locked:
            # this run ended (well or not, maybe before going down: a broken package, a
            # refused backup...): a notice it put up or staged goes with it
            _drop_notice(args, layout)
