"""Watch a live app for a while: health probes through nginx and its 5xx answers.

A rollout's health gate (operations/local/rollout.py) runs this on each host of a batch after
the batch went live, then judges the counts. Requests are counted from nginx's access log
(combined format) from where it ended when the watch began; a rotated log is read from its
start. The log is root's and nginx's, never the app user's.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence

from server.app import App
from server.checks import health_key, judge
from server.errors import Failure
from server.settings import Layout, Options
from server.uwsgi import https_get

ACCESS_LOG = "/var/log/nginx/access.log"
# combined: ... "GET /notes/default/index HTTP/1.1" 200 ...
REQUEST = re.compile(rb'"[A-Z]+ (/[^ "]*)[^"]*" ([0-9]{3}) ')


def count_answers(lines: Iterable[bytes], apps: Sequence[str]) -> tuple[int, int]:
    """Requests for ``apps`` (paths ``/<app>`` and below) and how many were answered 5xx."""
    prefixes = [f"/{app}".encode() for app in apps]
    requests = errors = 0
    for line in lines:
        match = REQUEST.search(line)
        if not match:
            continue
        path = match.group(1)
        if any(path == p or path[len(p) : len(p) + 1] in (b"/", b"?") and path.startswith(p)
               for p in prefixes):  # fmt: skip
            requests += 1
            errors += match.group(2).startswith(b"5")
    return requests, errors


def log_size(path: str) -> int:
    """The access log's size now (0 when it does not exist yet)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def read_from(path: str, offset: int, limit: int = 64 << 20) -> list[bytes]:
    """The log's lines from ``offset`` (from its start if it was rotated), at most ``limit``
    bytes: the newest part of a very busy log is enough to judge a rate."""
    try:
        with open(path, "rb") as log:
            size = os.fstat(log.fileno()).st_size
            start = offset if offset <= size else 0
            start = max(start, size - limit)
            log.seek(start)
            return log.read(size - start).splitlines()
    except FileNotFoundError:
        return []


def watch(
    apps: Sequence[str],
    seconds: float,
    probe: Callable[[], bool],
    interval: float = 1.0,
    access_log: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Run ``probe`` (every app's health checks: True when all pass) every ``interval`` seconds
    for ``seconds``; count the apps' answers meanwhile."""
    access_log = access_log or ACCESS_LOG  # read at call time: tests point it elsewhere
    start_size = log_size(access_log)
    deadline = clock() + seconds
    probes = failed = 0
    while True:
        probes += 1
        failed += not probe()
        left = deadline - clock()
        if left <= 0:
            break
        sleep(min(interval, left))
    requests, errors = count_answers(read_from(access_log, start_size), apps)
    return {"requests": requests, "errors": errors, "probes": probes, "failed_probes": failed}


def watch_apps(layout: Layout, names: Sequence[str], seconds: float, interval: float = 1.0) -> int:
    """``watch``: probe each app's recorded health check through nginx for ``seconds`` and
    count the apps' answers; print the counts as one JSON line."""
    apps = [App(name, layout, Options()) for name in names]

    def probe() -> bool:
        healthy = True
        for app in apps:
            if not app.checks.health_path:
                continue
            try:
                status, body = https_get(
                    layout.health_port, app.checks.health_path, health_key(app)
                )
                judge(app, "health check", status, body)
            except (OSError, Failure):
                healthy = False
        return healthy

    print(json.dumps(watch(names, seconds, probe, interval), sort_keys=True))
    return 0
