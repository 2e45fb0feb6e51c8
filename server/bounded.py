"""Child processes whose whole run is bounded: a hook or a migration that outlives its timeout
is killed with every process it started (``subprocess.run`` kills only the first one: a hook's
``runuser``, ``sh -c`` children or a background job went on writing while the deploy switched
back), and reading its output never waits on a process that escaped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

REAP = 5.0  # seconds to collect the output of a killed group (then the pipes are dropped)


def run(args: str | Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess:
    """Like ``subprocess.run(args, capture_output=True, text=True, timeout=timeout)``, in a
    session of its own, so that on the timeout its whole process group is killed, not only
    its first process. Raises subprocess.TimeoutExpired then, as subprocess.run does."""
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True, **kwargs,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise subprocess.TimeoutExpired(proc.args, timeout) from None
    except BaseException:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads, then collect it within REAP seconds; a process
    that left the group (its own setsid) and holds the pipes is not waited for."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=REAP)
    except subprocess.TimeoutExpired:
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=REAP)
