"""Failures as types, the tool's exit codes, and its one-line output."""

from __future__ import annotations

from operations.formats import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE
from server import detach

__all__ = [
    "EXIT_FAILED", "EXIT_LOCKED", "EXIT_OK", "EXIT_USAGE",
    "Failure", "Locked", "as_failure", "cause", "log",
]  # fmt: skip


class Failure(Exception):
    """A step failed: the message is the one line the operator sees."""

    exit_code = EXIT_FAILED


class Locked(Failure):
    """Another live run holds the app's lock: nothing was done (its notice, if any, stays)."""

    exit_code = EXIT_LOCKED


def log(message: str) -> None:
    """Print one line of progress (stdout, flushed: pyinfra shows it as it comes)."""
    print(message, flush=True)


def cause(error: BaseException) -> str:
    """An unexpected exception as the operator's words (no repr): what failed, on what."""
    if isinstance(error, Failure):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = error.filename or ""
        return f"{error.strerror.lower()}" + (f": {where}" if where else "")
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    return f"{text} ({name})" if text else name


def as_failure(error: Exception, what: str) -> Failure:
    """``error`` as the operator's one line, "WHAT failed: <cause>"; an unexpected error's
    traceback goes to the run log (a Failure already is the operator's line)."""
    if isinstance(error, Failure):
        return error
    detach.note_exception(error)
    return Failure(f"{what} failed: {cause(error)}")
