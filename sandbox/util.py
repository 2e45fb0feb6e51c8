"""Progress lines, bounded commands with output to log files, and the one error type."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SandboxError(Exception):
    """A failure reported to the user as one line."""


def say(message: str) -> None:
    print(f"sandbox: {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(
    args: Sequence[str | os.PathLike[str]],
    log: Path | None = None,
    timeout: float = 120,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, bounded in time; its output goes to ``log`` (appended) and is returned."""
    argv = [str(a) for a in args]
    full_env = None if env is None else {**os.environ, **env}
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        _append(log, argv, f"TIMED OUT after {timeout:.0f} s\n{exc.stdout or ''}{exc.stderr or ''}")
        raise SandboxError(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from exc
    except FileNotFoundError as exc:
        raise SandboxError(f"command not found: {argv[0]}") from exc
    _append(log, argv, result.stdout + result.stderr + f"[exit {result.returncode}]\n")
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        where = f" (log: {log})" if log else ""
        last = detail[-1] if detail else ""
        raise SandboxError(f"{' '.join(argv)}: exit {result.returncode}: {last}{where}")
    return result


def _append(log: Path | None, argv: list[str], text: str) -> None:
    if log is None:
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(argv)}\n{text}")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """Poll until predicate() is truthy or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write atomically (replace), never through a symlink left in a container's root."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def in_root(root: Path, relative: str) -> Path:
    """ROOT/relative, refusing a path whose directories lead out of ROOT through a symlink
    (a golden image is made from a server anyone could have changed)."""
    target = root / relative.lstrip("/")
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(target.parent)
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise SandboxError(f"{target.parent} leads out of the server's root: refusing to write")
    return target
