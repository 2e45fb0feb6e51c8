"""Failures as types, the tool's exit codes, and its one-line output."""

from __future__ import annotations

from operations.formats import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_FAILED", "EXIT_LOCKED", "EXIT_OK", "EXIT_USAGE", "Failure", "Locked", "log"]


class Failure(Exception):
    """A step failed: the message is the one line the operator sees."""

    exit_code = EXIT_FAILED


class Locked(Failure):
    """Another live run holds the app's lock: nothing was done (its notice, if any, stays)."""

    exit_code = EXIT_LOCKED


def log(message: str) -> None:
    """Print one line of progress (stdout, flushed: pyinfra shows it as it comes)."""
    print(message, flush=True)
