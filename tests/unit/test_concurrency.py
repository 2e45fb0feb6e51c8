"""Deploys at the same time (see tests/e2e/test_faults_concurrency.py): one uWSGI reload at a
time per server, a chain reload asked again while uWSGI ignores it, per-app test pause flags,
and the release tool installed by rename from a per-run upload."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import pytest
from pyinfra.api import FileUploadCommand

from operations import release_tool
from server import detach, reload_lock, uwsgi
from server.errors import Failure


def test_a_second_reload_waits_for_the_first_and_gives_up_in_time(tmp_path):
    with reload_lock.held(str(tmp_path), timeout=1):
        started = time.monotonic()
        with (
            pytest.raises(Failure, match="another uWSGI reload did not end within 0.3s"),
            reload_lock.held(str(tmp_path), timeout=0.3),
        ):
            pass  # pragma: no cover
        assert 0.3 <= time.monotonic() - started < 2
    with reload_lock.held(str(tmp_path), timeout=0):  # released on leaving the block
        pass


def test_the_reload_lock_is_never_taken_through_a_link(tmp_path):
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / reload_lock.LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Failure, match="uWSGI reload lock"), reload_lock.held(str(tmp_path), 0):
        pass  # pragma: no cover


def test_the_reload_lock_is_roots_alone(tmp_path, monkeypatch):
    """0600: the app user cannot open it, so cannot hold every deploy's reload; its own
    reload (systemctl reload, as the uWSGI user) goes without it."""
    with reload_lock.held(str(tmp_path), timeout=0):
        assert (tmp_path / reload_lock.LOCK_NAME).stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr(os, "geteuid", lambda: 33)
    with reload_lock.held(str(tmp_path), timeout=0):
        pass  # no lock taken, no wait


def test_a_pause_flag_for_one_app_holds_only_that_apps_run(tmp_path, monkeypatch):
    monkeypatch.setattr(detach, "PAUSE_DIR", str(tmp_path))
    monkeypatch.setattr(detach, "PAUSE_LIMIT", 0.5)
    monkeypatch.setenv(detach.CHILD_ENV, str(tmp_path / "apps" / "notes" / "runs" / "x.log"))
    (tmp_path / "test-pause-after-switch.jotter").touch()
    started = time.monotonic()
    detach.pause("after-switch")  # another app's flag: at once
    assert time.monotonic() - started < 0.3
    (tmp_path / "test-pause-after-switch.notes").touch()
    seen: list[bool] = []
    watcher = threading.Thread(
        target=lambda: seen.append(
            bool(wait_until(lambda: (tmp_path / "test-paused-after-switch.notes").exists()))
        )
    )
    watcher.start()
    detach.pause("after-switch")  # held (bounded), and says so under the app's name
    watcher.join()
    assert seen == [True] and time.monotonic() - started >= 0.5


def wait_until(predicate, timeout: float = 2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


class FakeUwsgi:
    """A master FIFO and a stats socket: the first ``ignore`` chain reloads asked for are
    ignored (one is still ending), the next one replaces every worker."""

    def __init__(self, folder: Path, ignore: int):
        self.fifo, self.stats = folder / "uwsgi.fifo", folder / "stats.sock"
        os.mkfifo(self.fifo)
        self.reader = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.ignore, self.asked, self.pids = ignore, 0, [101, 102]
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.stats))
        self.server.listen(8)
        self.server.settimeout(0.05)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.done.is_set():
            try:
                for _ in os.read(self.reader, 64).decode():
                    self.asked += 1
                    if self.asked > self.ignore:
                        self.pids = [201, 202]
            except BlockingIOError:
                pass
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                workers = [{"pid": p, "status": "idle"} for p in self.pids]
                conn.sendall(json.dumps({"workers": workers}).encode())

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        self.server.close()
        os.close(self.reader)


def test_a_chain_reload_uwsgi_ignored_is_asked_for_again(tmp_path):
    fake = FakeUwsgi(tmp_path, ignore=1)
    try:
        started = time.monotonic()
        uwsgi.chain_reload(str(fake.fifo), str(fake.stats), timeout=10)
        assert fake.asked == 2 and fake.pids == [201, 202]
        assert time.monotonic() - started < uwsgi.ASK_AGAIN_S + 2
    finally:
        fake.close()


def test_a_chain_reload_is_asked_for_once_when_uwsgi_takes_it(tmp_path):
    fake = FakeUwsgi(tmp_path, ignore=0)
    try:
        uwsgi.chain_reload(str(fake.fifo), str(fake.stats), timeout=10)
        assert fake.asked == 1
    finally:
        fake.close()


def test_two_runs_install_the_release_tool_through_their_own_files(monkeypatch):
    fake_host = SimpleNamespace(
        get_fact=lambda *args, **kwargs: None,  # the server lacks this build
        get_temp_filename=lambda: f"/tmp/pyinfra-{uuid4().hex}",
    )
    monkeypatch.setattr(release_tool, "host", fake_host)
    runs = [list(release_tool.ensure_tool()) for _ in range(2)]
    uploads = [next(c for c in run if isinstance(c, FileUploadCommand)) for run in runs]
    assert uploads[0].dest != uploads[1].dest
    assert uploads[0].remote_temp_filename != uploads[1].remote_temp_filename
    for run, upload in zip(runs, uploads, strict=True):
        assert upload.dest != release_tool.REMOTE_PATH
        assert str(run[-1]) == f"mv -f {upload.dest} {release_tool.REMOTE_PATH}"
