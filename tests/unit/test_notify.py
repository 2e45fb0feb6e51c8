"""Webhook notifications against a receiver on the loopback: shape, token, retries, failure."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from operations.local import notify

SUMMARY = {
    "stopped": "rollout stopped at batch 2: h3 failed the health gate: 5 of 50 requests 5xx",
    "hosts": [{"host": "h1", "result": "rolled back"}, {"host": "h2", "result": "not started"}],
}


class Receiver:
    """An incoming-webhook stand-in: answers the queued statuses in turn, records each post."""

    def __init__(self, statuses: list[int]):
        self.statuses, self.posts = list(statuses), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/s3cr3t-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request):
    r = Receiver(getattr(request, "param", []))
    yield r
    r.close()


def test_posts_text_and_summary_with_the_token_in_a_header(receiver, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "t0ken")
    assert notify.notify(receiver.url, "HOOK_TOKEN", "rollout", SUMMARY) is None
    ((path, headers, body),) = receiver.posts
    assert path == "/hooks/s3cr3t-path" and headers["Authorization"] == "Bearer t0ken"
    assert body["event"] == "rollout" and body["summary"] == SUMMARY
    assert body["text"] == (
        "pyinfra-web2py rollout STOPPED: " + SUMMARY["stopped"] + " (1 not started, 1 rolled back)"
    )


@pytest.mark.parametrize("receiver", [[500, 502]], indirect=True)
def test_a_failed_attempt_is_retried(receiver):
    assert notify.post(receiver.url, {"text": "x"}, backoff=0) is None
    assert len(receiver.posts) == 3


@pytest.mark.parametrize("receiver", [[500, 500, 500, 500]], indirect=True)
def test_failure_is_one_line_bounded_and_hides_the_hook_path(receiver):
    why = notify.post(receiver.url, {"text": "x"}, attempts=3, backoff=0)
    assert len(receiver.posts) == 3
    port = receiver.server.server_port
    assert why == f"notification to http://127.0.0.1:{port}/… failed after 3 attempts: HTTP 500"
    assert "s3cr3t" not in why


def test_unreachable_receiver_fails_without_raising():
    why = notify.post("http://127.0.0.1:9/x", {"text": "x"}, attempts=2, backoff=0, timeout=1)
    assert why.startswith("notification to http://127.0.0.1:9/… failed after 2 attempts: ")


def test_no_url_no_post_and_bad_settings_refused():
    assert notify.notify(None, None, "deploy", SUMMARY) is None
    assert notify.check_webhook(None, "X") == (None, None)
    for url in ("ftp://x", "https://", "not a url", 5):
        with pytest.raises(notify.NotifyError):
            notify.check_webhook(url, None)
    with pytest.raises(notify.NotifyError):
        notify.check_webhook("https://hooks.example/x", "BAD-NAME")


def test_started_is_posted_once_with_the_batches(receiver):
    batches = [["h1"], ["h2", "h3"]]
    assert notify.notify_started(receiver.url, None, "deploy", batches, "h1") is None
    assert notify.notify_started(None, None, "deploy", batches, "h1") is None  # no webhook
    ((_, headers, body),) = receiver.posts
    assert "Authorization" not in headers
    assert body == {
        "text": "pyinfra-web2py deploy started: h1 is live; 3 hosts in 2 batches",
        "event": "deploy started", "batches": batches,
    }  # fmt: skip
