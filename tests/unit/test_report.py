"""The per-host report after a deploy, rollback or restore (from its audit line)."""

from operations.local.reports import human_bytes, report_lines, scheduler_lines


def test_deploy_under_maintenance_reports_downtime_backup_and_undo():
    entry = {
        "action": "deploy", "result": "ok", "release": "R2", "duration_s": 4.26, "down_s": 2.04,
        "backup": "notes.20261125T101500Z.zip",
    }  # fmt: skip
    lines = report_lines("web-1", "notes", "/var/backups/web2py", entry)
    assert lines[0] == "web-1: notes: deploy ok, release R2, 4.3 s"
    assert lines[1] == "web-1: notes: down for maintenance (503) for 2.0 s"
    assert lines[2] == "web-1: notes: backup /var/backups/web2py/notes.20261125T101500Z.zip"
    assert lines[3].endswith(
        "--data restore_app=notes --data restore_backup=notes.20261125T101500Z.zip"
    )
    assert lines[4].endswith("deploys/rollback.py --data rollback_app=notes")


def test_zero_downtime_deploy_says_nothing_about_maintenance():
    lines = report_lines("web-1", "notes", "/b", {"action": "deploy", "result": "ok"})
    assert not any("maintenance" in line for line in lines)


def test_restore_with_data_names_its_source_and_how_to_undo_it():
    entry = {
        "action": "restore", "result": "ok", "release": "R3", "restored_from": "notes.A.zip",
        "restore_data": True, "backup": "notes.B.zip", "down_s": 1.5,
    }  # fmt: skip
    lines = report_lines("web-1", "notes", "/b", entry)
    assert lines[0] == "web-1: notes: restore ok, release R3 from notes.A.zip with its data"
    assert lines[3].endswith("--data restore_backup=notes.B.zip --data restore_data=true")


def test_rollback_names_where_it_came_from_and_offers_no_rollback_of_itself():
    entry = {"action": "rollback", "result": "ok", "release": "R1", "from": "R2"}
    lines = report_lines("web-1", "notes", "/b", entry)
    assert lines == ["web-1: notes: rollback ok, release R1 (was R2)"]


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 999, 1000, 2_500_000, 3e12)] == [
        "0 B", "999 B", "1.0 kB", "2.5 MB", "3000.0 GB",
    ]  # fmt: skip


def test_a_restarted_scheduler_is_reported_with_its_state():
    entry = {
        "action": "deploy", "result": "ok", "release": "R2",
        "schedulers": {"web2py-scheduler@notes.service": {
            "ok": True, "state": "active (running), pid 42", "seconds": 7.25,
        }},
    }  # fmt: skip
    lines = report_lines("web-1", "notes", "/b", entry)
    assert lines[1] == (
        "web-1: notes: scheduler web2py-scheduler@notes.service restarted in 7.2 s: "
        "active (running), pid 42"
    )
    assert scheduler_lines("web-1", "notes", entry) == [(True, lines[1])]


def test_a_scheduler_that_did_not_come_back_is_a_warning_not_a_failed_deploy():
    entry = {
        "action": "rollback", "result": "ok", "release": "R1", "from": "R2",
        "schedulers": {"web2py-scheduler@notes.service": {
            "ok": False, "state": "activating (auto-restart), last exit status 0",
            "hint": "the app's models define no Scheduler (web2py.py -K needs one)",
            "journal": "starting single-scheduler for \"notes\"... | AttributeError: _scheduler",
            "seconds": 6.0,
        }},
    }  # fmt: skip
    lines = report_lines("web-1", "notes", "/b", entry)
    assert lines[0] == "web-1: notes: rollback ok, release R1 (was R2)"
    assert lines[1] == (
        "web-1: notes: scheduler web2py-scheduler@notes.service NOT running after its restart "
        "in 6.0 s: activating (auto-restart), last exit status 0 (the app's models define no "
        'Scheduler (web2py.py -K needs one)); journal: starting single-scheduler for "notes"'
        "... | AttributeError: _scheduler; the release is live: fix it, then systemctl restart "
        "web2py-scheduler@notes.service"
    )
    assert scheduler_lines("web-1", "notes", entry) == [(False, lines[1])]


def test_no_scheduler_no_line():
    assert scheduler_lines("web-1", "notes", {"action": "deploy", "result": "ok"}) == []
