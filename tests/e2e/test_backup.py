"""deploys/backup.py: a backup now (e.g. from cron): timestamped, verified, listed, retained."""

from __future__ import annotations

import re

import pytest

from .sandboxlib import http_get, pyinfra

BACKUPS = "/var/backups/web2py"
NAME = re.compile(r"notes\.[0-9]{8}T[0-9]{6}Z(-[0-9]+)?\.zip")
# ten older backups of notes (retention keeps ten: group_data/all.py's keep_backups default,
# as recorded for an app without releases), dated 2020 so they are the oldest
SEED = (
    f"mkdir -p {BACKUPS} && chmod 700 {BACKUPS} && cd {BACKUPS} && "
    "for i in 0 1 2 3 4 5 6 7 8 9; do "
    'n="notes.2020010${i}T000000Z.zip"; echo old > "$n"; sha256sum "$n" > "$n.sha256"; '
    'touch -d "2020-01-0$((i + 1))" "$n"; done'
)


@pytest.fixture(scope="module")
def server(installed):
    server = installed["hosts"][0]  # the plain install: notes is an app folder there
    status, _, _ = http_get(server.address, "/notes/default/index")  # its database exists
    assert status == 200
    yield server
    server.run(f"rm -f {BACKUPS}/notes.2020*")


def zips(server) -> list[str]:
    """The app's backups (other tests leave other apps' backups in the same folder)."""
    listing = server.run(f"ls -1 {BACKUPS} 2>/dev/null || true").split()
    return sorted(n for n in listing if n.startswith("notes.") and n.endswith(".zip"))


def backup(server, **data: str):
    return pyinfra("deploys/backup.py", [server], data={"backup_app": "notes", **data})


def test_a_backup_is_made_verified_and_listed(server):
    before = set(zips(server))
    run = backup(server)
    assert run.returncode == 0, run.output[-3000:]
    assert run.totals["changed"] >= 1
    (new,) = set(zips(server)) - before
    assert NAME.fullmatch(new)
    assert f"notes: backup {BACKUPS}/{new} (verified;" in run.output
    verified = server.run(f"cd {BACKUPS} && sha256sum -c --quiet {new}.sha256 && echo ok").strip()
    assert verified == "ok"
    content = server.run(f"cd {BACKUPS} && unzip -l {new}")
    assert "notes/controllers/default.py" in content and "notes/databases/storage.sqlite" in content
    assert server.run(f"stat -c '%U %a' {BACKUPS} {BACKUPS}/{new}").split() == [
        "root", "700", "root", "600",
    ]  # fmt: skip
    assert server.run("test -e /srv/web2py-apps/notes/lock && echo held || echo free").strip() == (
        "free"
    )


def test_a_second_run_makes_another_timestamped_backup(server):
    before = set(zips(server))
    run = backup(server)
    assert run.returncode == 0, run.output[-3000:]
    (new,) = set(zips(server)) - before
    assert NAME.fullmatch(new) and new not in before
    assert len(set(zips(server))) == len(before) + 1


def test_backups_beyond_retention_go_oldest_first(server):
    server.run(SEED)
    ours = [n for n in zips(server) if not n.startswith("notes.2020")]
    run = backup(server)
    assert run.returncode == 0, run.output[-3000:]
    after = zips(server)
    assert len(after) == 10
    # the new one and ours stay; the oldest seeded ones made room
    new = set(after) - set(ours) - {f"notes.2020010{i}T000000Z.zip" for i in range(10)}
    assert len(new) == 1 and NAME.fullmatch(new.pop())
    assert set(ours) <= set(after)
    kept = sorted(n for n in after if n.startswith("notes.2020"))
    # ten kept: the new one, ours, and the newest of the seeded ones
    assert kept == [f"notes.2020010{i}T000000Z.zip" for i in range(1 + len(ours), 10)]
    leftover = server.run(f"ls {BACKUPS} | grep -c '^notes\\..*sha256$'").strip()
    assert leftover == "10"


def test_an_app_the_host_does_not_serve_changes_nothing(server):
    before = zips(server)
    run = backup(server, backup_app="ghost")
    assert run.returncode == 0, run.output[-3000:]
    assert run.totals["changed"] == 0
    assert zips(server) == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backup_app": "../notes"}, "backup_app: expected a web2py app name"),
        ({"backup_app": ""}, "backup_app: required"),
        ({"backup_ap": "notes"}, "--data backup_ap: unknown data key; did you mean backup_app?"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(server, data, message):
    before = zips(server)
    run = pyinfra("deploys/backup.py", [server], data=data)
    assert run.returncode != 0
    error_lines = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert len(error_lines) == 1 and message in error_lines[0], run.output[-3000:]
    assert "Traceback" not in run.output
    assert zips(server) == before
