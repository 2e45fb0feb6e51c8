"""What the facts share: reading a file that may be missing, and JSON from a fact's output."""

from __future__ import annotations

import json

from pyinfra.api import QuoteString, StringCommand


def read_file_command(path: str, last_line: bool = False) -> StringCommand:
    """A file's content (or its last line), and nothing when it is missing."""
    reader = ("tail", "-n", "1") if last_line else ("cat",)
    return StringCommand(*reader, QuoteString(path), "2>/dev/null", "||", "true")


def parse_json(output: list[str] | None, garbage: dict | None = None) -> dict | None:
    """JSON from a fact's output; None when there was none, ``garbage`` when it is not JSON."""
    if not output:
        return None
    try:
        return json.loads("\n".join(output))
    except ValueError:
        return garbage
