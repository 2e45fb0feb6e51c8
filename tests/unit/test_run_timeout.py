"""The controller's bound on a deploy, rollback or restore run (deploy_run_timeout_seconds): a
timeout or a broken connection is one "outcome unknown" line, and the operation fails. The
package's upload has the same bound: the deploy did not start."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import gevent
import pytest
from paramiko import SSHException
from pyinfra.api import FileUploadCommand, StringCommand

from operations.release_tool import REMOTE_PATH, BoundedRun, BoundedUpload, run_tool
from operations.settings.apps import deploy_settings
from operations.settings.validators import ConfigError


def test_the_default_bound_is_group_data_alls_and_longer_than_the_lock_wait():
    config = deploy_settings({}, require_apps=False)
    assert config.run_timeout == 3600 and config.run_timeout > config.lock_wait


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"deploy_run_timeout_seconds": "5"}, "deploy_run_timeout_seconds"),
        ({"deploy_run_timeout_seconds": "abc"}, "deploy_run_timeout_seconds"),
        (
            {"deploy_run_timeout_seconds": "100", "deploy_lock_wait_seconds": "100"},
            "must be longer than deploy_lock_wait_seconds (100)",
        ),
    ],
)
def test_a_bad_bound_is_one_clear_line(data, message):
    with pytest.raises(ConfigError) as error:
        deploy_settings(data, require_apps=False)
    assert message in str(error.value) and "\n" not in str(error.value)


def bounded() -> BoundedRun:
    return BoundedRun(REMOTE_PATH, "deploy", app_name="notes", action="deploy", timeout=20)


def test_the_tool_run_carries_the_bound_as_pyinfras_timeout():
    assert bounded().connector_arguments["_timeout"] == 20


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (TimeoutError(), "no end of the run within 20 s"),
        (SSHException("SSH session not active"), "the connection broke (SSHException"),
        (OSError(113, "No route to host"), "the connection broke (OSError"),
    ],
)
def test_a_lost_run_is_one_outcome_unknown_line(monkeypatch, caplog, error, why):
    def lost(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(StringCommand, "execute", lost)
    with caplog.at_level(logging.INFO, logger="pyinfra"):
        status, out = bounded().execute(None, SimpleNamespace(name="web-1"), {})
    assert status is False and out.output_lines == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith("web-1: notes: deploy outcome unknown: " + why), lines
    assert lines[0].endswith("pyinfra INVENTORY deploys/status.py"), lines


def test_a_finished_run_is_passed_through(monkeypatch):
    monkeypatch.setattr(StringCommand, "execute", lambda *_a, **_k: (False, "its output"))
    assert bounded().execute(None, SimpleNamespace(name="web-1"), {}) == (False, "its output")


def test_only_the_detached_runs_are_bounded(monkeypatch):
    monkeypatch.setattr("operations.release_tool.ensure_tool", lambda: iter(()))
    (plain,) = run_tool("cleanup", "--app", "notes")
    (run,) = run_tool("deploy", "--app", "notes", bound=("notes", "deploy", 30))
    assert type(plain) is StringCommand and "_timeout" not in plain.connector_arguments
    assert isinstance(run, BoundedRun) and run.connector_arguments["_timeout"] == 30


def upload(timeout: int = 1) -> BoundedUpload:
    return BoundedUpload("package.tar.gz", "/var/cache/x", app_name="notes", timeout=timeout)


def test_a_stalled_upload_is_one_line_and_the_deploy_does_not_start(monkeypatch, caplog):
    # a stall that an exception raised into it would not end (as a dead link's SFTP close)
    def stalled(*_args, **_kwargs):
        while True:
            try:
                gevent.sleep(60)
            except BaseException:  # noqa: BLE001, S112 - the stall outlives any exception
                continue

    monkeypatch.setattr(FileUploadCommand, "execute", stalled)
    with caplog.at_level(logging.INFO, logger="pyinfra"):
        started = time.monotonic()
        assert upload().execute(None, SimpleNamespace(name="web-1"), {}) is False
    assert time.monotonic() - started < 5
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "web-1: notes: deploy not started: no end of the upload within 1 s (the link is lost, "
        "or slow); the live release is unchanged: run the deploy again"
    ], lines


def test_a_broken_upload_is_one_line(monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise SSHException("SSH session not active")

    monkeypatch.setattr(FileUploadCommand, "execute", broken)
    with caplog.at_level(logging.INFO, logger="pyinfra"):
        assert upload().execute(None, SimpleNamespace(name="web-1"), {}) is False
    (line,) = [r.getMessage() for r in caplog.records]
    assert "deploy not started: the connection broke (SSHException" in line, line


def test_a_finished_upload_is_passed_through(monkeypatch):
    monkeypatch.setattr(FileUploadCommand, "execute", lambda *_a, **_k: True)
    assert upload().execute(None, SimpleNamespace(name="web-1"), {}) is True
