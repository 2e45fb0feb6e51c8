"""Unit tests run the release tool's commands without a uWSGI: its "is uWSGI running" check
passes unless a test asks for the real one (``uwsgi.REAL_REQUIRE_RUNNING``)."""

import pytest

from server import uwsgi


@pytest.fixture(autouse=True)
def _uwsgi_runs(monkeypatch):
    monkeypatch.setattr(uwsgi, "require_running", lambda fifo, stats, user=None: None)
