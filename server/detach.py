"""Runs that outlive the controller's connection: a deploy, rollback or restore runs in a child
process of its own session, writing to a root-only log file in the app's folder, while the
process pyinfra started (over SSH) only follows that log and relays it.

If the controller dies or the link drops, the relaying parent dies or loses its pipe; the child
does not notice (new session: no SIGHUP from the SSH session; stdin /dev/null; no write to the
controller's pipe) and carries the transaction to its consistent end, audit line included.

The run log (``<apps_dir>/<app>/runs/<stamp>-<action>.log``, 0600 in a 0700 folder, the last
``KEEP_LOGS`` kept) tags each line: ``O`` stdout, ``E`` stderr (both relayed as such), ``T``
private detail (tracebacks: kept in the log, never relayed) and ``X <code>`` the child's exit
record, written last.

Test-only: :func:`pause` holds a run at a named step while ``/etc/web2py/test-pause-<step>``
exists (bounded), so fault tests kill the controller at an exact point. No such file exists on
a real server; nothing creates one but the tests.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from operations import formats

DETACHED_COMMANDS = ("deploy", "rollback", "restore")
CHILD_ENV = "W2P_RELEASE_RUN_LOG"  # set in the child: the run log it writes
KEEP_LOGS = 20
PAUSE_DIR = "/etc/web2py"  # test-only pause flags (root-only directory)
PAUSE_LIMIT = 300.0  # a forgotten flag never holds a run longer than this
POLL = 0.1


class TaggedWriter(io.TextIOBase):
    """A text stream writing whole lines ``<tag> <line>`` to file descriptor ``fd`` (one
    write(2) per line, so the child's streams interleave line by line in the log)."""

    def __init__(self, fd: int, tag: str):
        super().__init__()
        self.fd, self.tag, self.pending = fd, tag, ""

    def writable(self) -> bool:
        """Always: it is an output stream."""
        return True

    def write(self, text: str) -> int:
        """Buffer ``text``; write every complete line."""
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        """Lines are written as they complete; a partial line waits for its end."""

    def close_pending(self) -> None:
        """Write a last unterminated line, if any."""
        if self.pending:
            self._emit(self.pending)
            self.pending = ""

    def _emit(self, line: str) -> None:
        os.write(self.fd, f"{self.tag} {line}\n".encode(errors="replace"))


def in_child() -> bool:
    """True in the detached child (it writes the run log)."""
    return bool(os.environ.get(CHILD_ENV))


def log_path() -> str:
    """The run log this child writes ("" outside a detached run)."""
    return os.environ.get(CHILD_ENV, "")


def note(text: str) -> None:
    """Private detail (a traceback) for the run log only: never relayed to the controller."""
    if not in_child():
        return
    writer = TaggedWriter(1, "T")
    writer.write(text if text.endswith("\n") else text + "\n")


def note_exception(error: BaseException) -> None:
    """The traceback of ``error`` in the run log (never shown to the operator)."""
    note("".join(traceback.format_exception(type(error), error, error.__traceback__)))


def child_setup() -> None:
    """In the child: ignore the hangup and broken-pipe signals, and tag its output lines."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sys.stdout = TaggedWriter(1, "O")  # type: ignore[assignment]
    sys.stderr = TaggedWriter(2, "E")  # type: ignore[assignment]


def child_exit(code: int) -> int:
    """The exit record, the child's last line: a reader knows the run ended, and how."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, TaggedWriter):
            stream.close_pending()
    os.write(1, f"X {code}\n".encode())
    return code


def new_log(runs: Path, action: str, keep: int = KEEP_LOGS) -> Path:
    """A fresh run log in ``runs`` (created 0700 root-only if missing), 0600; the oldest logs
    beyond ``keep`` are removed."""
    runs.mkdir(parents=True, exist_ok=True)
    os.chmod(runs, 0o700)
    stamp = formats.utc_stamp()
    for n in range(1000):
        path = runs / f"{stamp}-{action}{'' if n == 0 else f'-{n}'}.log"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        break
    else:  # pragma: no cover - a thousand runs in one second
        raise OSError(f"{runs}: no free run log name")
    logs = sorted(p for p in runs.glob("*.log") if p.is_file())
    for old in logs[: max(0, len(logs) - keep)]:
        if old != path:
            old.unlink(missing_ok=True)
    return path


CHILD_CODE = "import sys; from server.cli import main; sys.exit(main(sys.argv[1:]))"


def spawn(argv: Sequence[str], log_path: Path, code: str = CHILD_CODE) -> subprocess.Popen:
    """Start the child (``code``, by default ``server.cli.main(argv)``) in its own session,
    stdin /dev/null, stdout and stderr appended to ``log_path``."""
    # the zipapp (or the source tree) the tool runs from: the child imports server from it
    root = str(Path(__file__).parent.parent)
    env = {**os.environ, CHILD_ENV: str(log_path)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-c", code, *argv], stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True, env=env, close_fds=True,
        )  # fmt: skip


def _relay(line: bytes, state: dict) -> None:
    """Relay one log line to the parent's stdout or stderr (never a T or X line); a dead
    pipe (the controller is gone) only stops the relaying."""
    tag, _, text = line.partition(b" ")
    if tag == b"X" or tag == b"T":
        return
    if tag not in (b"O", b"E"):  # raw output of a process the child ran
        text = line
    stream = sys.stderr if tag == b"E" else sys.stdout
    if state.get("dead"):
        return
    try:
        stream.buffer.write(text if text.endswith(b"\n") else text + b"\n")
        stream.flush()
    except (BrokenPipeError, OSError, ValueError):
        state["dead"] = True


def follow(child: subprocess.Popen, log_path: Path) -> int:
    """Relay the run log until the child ends; its exit code (a signal: EXIT_FAILED)."""
    state: dict = {}
    with open(log_path, "rb") as log_file:
        pending = b""
        while True:
            ended = child.poll() is not None
            chunk = log_file.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    _relay(line, state)
            elif ended:
                break
            else:
                time.sleep(POLL)
        if pending:
            _relay(pending, state)
    code = child.returncode
    if code < 0:
        _relay(f"E the run was ended by signal {-code}; its log: {log_path}".encode(), state)
        return formats.EXIT_FAILED
    return code


def run_detached(argv: Sequence[str], runs: Path, action: str, code: str = CHILD_CODE) -> int:
    """The parent's side: start the child with a new run log in ``runs``, relay it, and exit
    as the child did. A parent killed meanwhile leaves the child running to its end."""
    log_path = new_log(runs, action)
    child = spawn(argv, log_path, code)
    # the parent must not die of a closed pipe while relaying; the child is not affected
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    return follow(child, log_path)


def pause(step: str) -> None:
    """Test-only: while ``PAUSE_DIR/test-pause-<step>`` exists, wait here (at most
    ``PAUSE_LIMIT`` s), having written ``PAUSE_DIR/test-paused-<step>`` (this pid) so the test
    knows the run reached the step. ``test-pause-<step>.<app>`` holds only the runs for that app
    (two apps deployed at once, held apart). Without a flag (always, outside tests) it returns
    at once."""
    app = Path(log_path()).parent.parent.name if in_child() else ""  # <apps_dir>/<app>/runs/
    names = [f"{step}.{app}", step] if app else [step]
    name = next((n for n in names if (Path(PAUSE_DIR) / f"test-pause-{n}").exists()), None)
    if name is None:
        return
    flag = Path(PAUSE_DIR) / f"test-pause-{name}"
    reached = Path(PAUSE_DIR) / f"test-paused-{name}"
    reached.write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + PAUSE_LIMIT
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(POLL)
    reached.unlink(missing_ok=True)
