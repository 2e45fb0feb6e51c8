"""Post a deploy's, rollback's or rollout's summary to a webhook: bounded, never fatal.

The payload is JSON with a ``text`` line (what Slack, Mattermost and Matrix-hookshot style
incoming webhooks display) and the structured ``summary`` next to it (for a small adapter or a
bot). The token comes from the environment variable named by ``notify_webhook_token_env`` and
travels in the ``Authorization`` header, never on a command line or in the output.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

URL = re.compile(r"https?://[^\s/?#]+[^\s]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class NotifyError(ValueError):
    """Bad notification data: the message is one line."""


def check_webhook(url: Any, token_env: Any) -> tuple[str | None, str | None]:
    """Validate ``notify_webhook_url`` (None: no notifications) and ``notify_webhook_token_env``."""
    if url is None:
        return None, None
    if not isinstance(url, str) or not URL.fullmatch(url):
        raise NotifyError(f"notify_webhook_url: expected an http(s) URL, got {url!r}")
    if token_env is not None and not (isinstance(token_env, str) and ENV_NAME.fullmatch(token_env)):
        raise NotifyError(
            f"notify_webhook_token_env: expected an environment variable name, got {token_env!r}"
        )
    return url, token_env


def headline(event: str, summary: Mapping[str, Any]) -> str:
    """The one human line: what ran, how it ended, which host stopped it."""
    hosts = summary.get("hosts", [])
    counts: dict[str, int] = {}
    for row in hosts:
        counts[row["result"]] = counts.get(row["result"], 0) + 1
    tally = ", ".join(f"{n} {result}" for result, n in sorted(counts.items()))
    if summary.get("stopped"):
        return f"pyinfra-web2py {event} STOPPED: {summary['stopped']} ({tally})"
    return f"pyinfra-web2py {event} finished on {len(hosts)} hosts ({tally})"


def started(event: str, batches: list[list[str]], first_host: str) -> dict[str, Any]:
    """The JSON body posted when a run's first host went live (``event`` "deploy started")."""
    hosts = sum(len(batch) for batch in batches)
    return {
        "text": f"pyinfra-web2py {event} started: {first_host} is live; {hosts} hosts in "
        f"{len(batches)} batch{'es' if len(batches) != 1 else ''}",
        "event": f"{event} started",
        "batches": batches,
    }


def payload(event: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body posted to the webhook (shape documented in the README)."""
    return {"text": headline(event, summary), "event": event, "summary": dict(summary)}


def post(
    url: str,
    body: Mapping[str, Any],
    token: str | None = None,
    attempts: int = 3,
    timeout: float = 5.0,
    backoff: float = 1.0,
    opener: Callable[..., Any] = urllib.request.urlopen,
) -> str | None:
    """POST ``body`` as JSON; retry a failed attempt (bounded). Returns None on success, else the
    one line saying why it failed (the caller reports it; it never fails a deploy)."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "pyinfra-web2py"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    why = "not attempted"
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with opener(request, timeout=timeout) as answer:
                if 200 <= answer.status < 300:
                    return None
                why = f"HTTP {answer.status}"
        except urllib.error.HTTPError as error:
            why = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            why = str(getattr(error, "reason", error))
        if attempt < attempts:
            time.sleep(backoff * attempt)
    return f"notification to {redact(url)} failed after {attempts} attempts: {why}"


def redact(url: str) -> str:
    """``url`` without its path and query, which often carry the hook's secret."""
    match = re.match(r"(https?://[^/?#]+)", url)
    return (match.group(1) + "/…") if match else "the webhook"


def notify_started(
    url: str | None, token_env: str | None, event: str, batches: list[list[str]], first: str
) -> str | None:
    """Post that a run started changing hosts, if a webhook is configured."""
    if not url:
        return None
    token = os.environ.get(token_env) if token_env else None
    return post(url, started(event, batches, first), token=token)


def notify(
    url: str | None, token_env: str | None, event: str, summary: Mapping[str, Any]
) -> str | None:
    """Post ``summary`` if a webhook is configured; the failure line, if any."""
    if not url:
        return None
    token = os.environ.get(token_env) if token_env else None
    return post(url, payload(event, summary), token=token)
