"""Fleet status lines and records (deploys/status.py), from what the facts report."""

import json

from operations.local.status import app_line, app_record, write_status

UNITS = {
    "nginx.service": {"ActiveState": "active"},
    "web2py-uwsgi.service": {"ActiveState": "failed"},
}
STATUS = {
    "live": "20261202T040000Z-abc", "locked": None, "down": False,
    "revision": {"version": "2.0.0", "when": "20261202T040000Z", "who": "alice@laptop"},
    "drift": {"changed": [], "missing": [], "added": []},
}  # fmt: skip


def test_a_clean_app_in_one_line():
    line = app_line("web1", "notes", app_record(STATUS, UNITS))
    assert line == (
        "web1: notes: release 20261202T040000Z-abc (2.0.0), deployed 20261202T040000Z by "
        "alice@laptop, lock: free, up, no drift, units: nginx.service active, "
        "web2py-uwsgi.service failed"
    )


def test_drift_lock_and_maintenance_are_named():
    drift = {"changed": ["controllers/default.py"], "missing": ["a.py"], "added": []}
    status = {**STATUS, "locked": "bob@ci since x", "down": True, "drift": drift}
    record = app_record(status, {})
    assert record["drift"]["changed"] == ["controllers/default.py"]
    line = app_line("web1", "notes", record)
    assert "lock: bob@ci since x, DOWN for maintenance" in line
    assert "DRIFT: changed controllers/default.py; missing a.py" in line


def test_unknown_and_json_file(tmp_path):
    assert app_line("web1", "notes", app_record(None, {})).endswith(
        "unknown (no release tool or no such app here)"
    )
    path = tmp_path / "status.json"
    write_status(str(path), "web1", "notes", app_record(STATUS, UNITS))
    write_status(str(path), "web2", "notes", app_record(None, {}))
    data = json.loads(path.read_text())
    assert data["web1"]["notes"]["version"] == "2.0.0" and data["web2"]["notes"]["known"] is False
