"""Faults: a full disk and what a failed or killed run leaves, on one sandbox server running the
real framework. After each, the server must end in one consistent state (one version served by
every worker, ``current``, ``release.log`` and ``audit.jsonl`` agreeing, the lock free) with
nothing left behind: no partial backup zip (it would count toward retention and make ``latest``
refuse), no ``releases/.<id>.tmp`` staging folder (pruning skipped those forever).

The server's app base (``/srv/web2py-apps/notes``: releases, release log, audit log, lock, run
logs) and its backups folder (``/var/backups/web2py``) are small tmpfs mounts made before the
app's first deploy (nspawn containers keep CAP_SYS_ADMIN). Every version of the app carries a
fresh incompressible ``static/big.bin`` of ``BIG`` bytes, and a filler file leaves ``FREE``
(less) free: the unpack (or the backup) runs out of space partway, deterministically.

Kills use the release tool's test-only pause hook (server.detach.pause): ``unpacked`` (the
staging folder is full, not yet published) and ``backup-written`` (the zip is written, not yet
renamed into place); the test kills the tool itself (SIGKILL, by the PID the hook wrote).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import time

import pytest

from bench.loadgen import LoadRunner

from .sandboxlib import ROOT, http_get, installed_server, pyinfra, wait_for
from .test_app_deploy import add_note, apps_data, set_version
from .test_faults import assert_consistent, rerun, served_versions, start

PREFIX = "w2pd"
APP_DIR = "/srv/web2py-apps/notes"
BACKUPS = "/var/backups/web2py"
FLAGS = "/etc/web2py"
BIG = 2 * 1024 * 1024  # static/big.bin: random, so neither a delta nor a zip shrinks it
FREE = 1024 * 1024  # what a filler leaves free: room for the logs, not for big.bin
FILLER = ".filler"


@pytest.fixture(scope="module")
def server(web2py_zip, e2e_ready):
    """One sandbox server with web2py installed, its app base and backups folder on small
    filesystems of their own (W2P_KEEP_SANDBOX=1 keeps it afterwards)."""
    for started in installed_server(PREFIX, web2py_zip):
        for path, size, mode in ((APP_DIR, "64m", "0755"), (BACKUPS, "48m", "0700")):
            started.run(
                f'mountpoint -q {path} || {{ mkdir -p {path} && test -z "$(ls -A {path})" && '
                f"mount -t tmpfs -o size={size},mode={mode} tmpfs {path}; }}"
            )
        yield started


@pytest.fixture(scope="module")
def app(server, tmp_path_factory) -> dict:
    """The example app with big.bin, deployed once (version "d-0")."""
    app_dir = tmp_path_factory.mktemp("disk") / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
    state = {"dir": app_dir}
    new_version(state, "d-0")
    first = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(state))
    assert first.returncode == 0, first.output[-4000:]
    assert_consistent(server, "d-0")
    return state


def new_version(app: dict, version: str) -> None:
    """The app says ``version`` and carries a fresh big.bin (a new one in every delta)."""
    set_version(app["dir"], version)
    (app["dir"] / "static" / "big.bin").write_bytes(secrets.token_bytes(BIG))
    app["version"] = version


def deploy_data(app: dict, **settings: object) -> dict[str, str]:
    return apps_data(app["dir"], version=app["version"], **settings)


def fill(server, path: str) -> None:
    """Leave FREE bytes free on the filesystem of ``path`` (a filler file, root's)."""
    server.run(
        f"rm -f {path}/{FILLER}; avail=$(df -B1 --output=avail {path} | tail -n 1); "
        f"head -c $((avail - {FREE})) /dev/zero > {path}/{FILLER}"
    )
    avail = int(server.run(f"df -B1 --output=avail {path} | tail -n 1").strip())
    assert FREE // 2 <= avail <= FREE * 2, avail


def free(server, path: str) -> None:
    server.run(f"rm -f {path}/{FILLER}")


def live(server) -> dict:
    return json.loads(server.run(f"cat {APP_DIR}/current/REVISION"))


def backups(server) -> list[str]:
    """The app's backups as retention and ``latest`` see them (server.backups._zips)."""
    return server.run(f"cd {BACKUPS} && ls -1 notes.*.zip 2>/dev/null; true").split()


def leftovers(server) -> list[str]:
    """What a failed or killed run may leave: staging folders, partial or unverified backups."""
    out = server.run(
        f"ls -A {APP_DIR}/releases | grep '^[.]'; "
        f"ls -A {BACKUPS} | grep -v '^{FILLER}$' | grep '^[.]'; "
        f'cd {BACKUPS} && for z in notes.*.zip; do test -e "$z" || continue; '
        'sha256sum -c --quiet "$z.sha256" >/dev/null 2>&1 || echo "unverified $z"; done; '
        f'for s in notes.*.zip.sha256; do test -e "$s" || continue; '
        'test -e "${s%.sha256}" || echo "orphan $s"; done; true'
    )
    return out.split("\n")[:-1] if out.strip() else []


def deploy_under_load(server, data: dict[str, str]):
    """The deploy, under open-loop load on the health check; (run, load result)."""
    url = f"http://{server.address}/notes/default/health"
    with LoadRunner(url, rate=40, duration=300, timeout=5, expect_body=b"ok notes") as load:
        time.sleep(1)
        run = pyinfra("deploys/app_deploy.py", [server], data=data)
        load.stop()
    return run, load.result(60)


def assert_failed_cleanly(server, run, result, before: dict, step: str) -> None:
    """A deploy that failed at ``step`` for want of space: one line naming both, non-zero,
    no failed request, the old release still served by every worker, the release log and the
    audit log agreeing on what failed, the lock free, nothing left behind."""
    assert run.returncode != 0, run.output[-3000:]
    assert result.failed == 0 and result.sent >= 40, result.summary()
    lines = [line.strip() for line in run.output.splitlines() if "no space left" in line.lower()]
    assert len(lines) == 1, run.output[-4000:]
    (line,) = lines
    assert f"notes: {step} failed: no space left on device" in line, line
    assert "Traceback" not in run.output
    assert served_versions(server) == {before["version"]}
    assert live(server)["release"] == before["release"]
    log = server.run(f"tail -n 2 {APP_DIR}/release.log").split("\n")
    assert log[0].split()[1:] == [before["release"], "live"], log
    failed = log[1].split()[1]
    assert log[1].split()[2:] == ["failed"] and failed != before["release"], log
    record = json.loads(server.run(f"tail -n 1 {APP_DIR}/audit.jsonl"))
    assert record["action"] == "deploy" and record["release"] == failed, record
    assert record["result"].startswith(f"failed: notes: {step} failed: no space left"), record
    assert server.run(f"test -e {APP_DIR}/lock && echo held; true").strip() == ""
    assert leftovers(server) == []


def test_disk_full_during_unpack(server, app):
    before = live(server)
    new_version(app, f"d-unpack-{int(time.time())}")
    fill(server, APP_DIR)
    try:
        run, result = deploy_under_load(server, deploy_data(app))
        assert_failed_cleanly(server, run, result, before, "unpack")
    finally:
        free(server, APP_DIR)
    again = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app))
    assert again.returncode == 0, again.output[-4000:]
    assert_consistent(server, app["version"])
    rerun(server, app)


def test_disk_full_during_backup(server, app):
    before, zips = live(server), backups(server)
    new_version(app, f"d-backup-{int(time.time())}")
    fill(server, BACKUPS)
    try:
        run, result = deploy_under_load(server, deploy_data(app))
        assert_failed_cleanly(server, run, result, before, "backup")
        assert backups(server) == zips  # no partial zip counts as a backup
    finally:
        free(server, BACKUPS)
    again = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app))
    assert again.returncode == 0, again.output[-4000:]
    assert_consistent(server, app["version"])
    assert len(set(backups(server)) - set(zips)) == 1
    rerun(server, app)


def kill_tool_at(server, step: str, data: dict[str, str]) -> None:
    """Run the deploy, SIGKILL the release tool itself once it is held at ``step`` (its lock
    stays, naming a dead process), and wait (bounded) until pyinfra has ended."""
    server.run(f"rm -f {FLAGS}/test-paused-{step}; touch {FLAGS}/test-pause-{step}")
    proc = start("deploys/app_deploy.py", server, data)
    try:
        pid = wait_for(
            lambda: server.run(f"cat {FLAGS}/test-paused-{step} 2>/dev/null; true").strip(),
            timeout=180, interval=0.5,
        )  # fmt: skip
        assert pid.isdigit(), f"the tool never reached {step} (pyinfra exited {proc.poll()})"
        server.run(f"kill -KILL {pid}")
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        server.run(f"rm -f {FLAGS}/test-pause-{step} {FLAGS}/test-paused-{step}")
    assert proc.returncode != 0
    assert wait_for(lambda: "busy" not in tool_state(server), timeout=60, interval=1)
    assert "locked" in tool_state(server)  # the dead run's lock: the next run takes it over


def tool_state(server) -> str:
    return server.run(
        "pgrep -f '[w]eb2py-release|[s]erver[.]cli' >/dev/null && echo busy; "
        f"test -e {APP_DIR}/lock && echo locked; true"
    )


def test_a_killed_unpack_leaves_a_staging_folder_the_next_run_removes_first(server, app):
    before = live(server)
    new_version(app, f"d-kill-unpack-{int(time.time())}")
    kill_tool_at(server, "unpacked", deploy_data(app))
    staged = server.run(f"ls -A {APP_DIR}/releases | grep '^[.].*[.]tmp$'; true").split()
    assert len(staged) == 1, staged  # what a kill leaves (nothing can remove it then)
    assert live(server)["release"] == before["release"]
    assert served_versions(server) == {before["version"]}
    # the same deploy again, on a disk that staging folder helped fill: it takes over the dead
    # run's lock and removes the staging folder first, so its own unpack has the room
    fill(server, APP_DIR)
    try:
        again = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app))
        assert again.returncode == 0, again.output[-4000:]
        said = f"grep -h 'removed what an interrupted unpack left' {APP_DIR}/runs/*.log; true"
        assert f"left: {staged[0]}" in server.run(said)  # the run log (stdout is not shown)
        assert_consistent(server, app["version"])
        assert leftovers(server) == []
        rerun(server, app)
    finally:
        free(server, APP_DIR)


def zip_version(server, name: str) -> str:
    """The version the code in backup ``name`` says (its health check would answer it)."""
    text = server.run(f"unzip -p {BACKUPS}/{name} notes/modules/notes_util.py")
    return text.split("VERSION = '", 1)[1].split("'", 1)[0]


def test_a_killed_backup_leaves_nothing_retention_or_latest_sees(server, app):
    zips = backups(server)
    latest = max(zips, key=lambda n: int(server.run(f"stat -c %Y {BACKUPS}/{n}")))
    new_version(app, f"d-kill-backup-{int(time.time())}")
    kill_tool_at(server, "backup-written", deploy_data(app))
    assert backups(server) == zips  # the killed run's zip is not one of the backups
    # latest is the latest whole backup: restored (code only), it serves what it holds
    restore_data = {"restore_app": "notes", "restore_backup": "latest", **deploy_data(app)}
    restored = pyinfra("deploys/restore.py", [server], data=restore_data)
    assert restored.returncode == 0, restored.output[-4000:]
    expected = zip_version(server, latest)
    assert served_versions(server) == {expected}
    record = json.loads(server.run(f"tail -n 1 {APP_DIR}/audit.jsonl"))
    assert record["action"] == "restore" and record["restored_from"] == latest, record
    assert record["result"] == "ok", record
    # the restore held the lock: what the killed backup left is gone
    assert leftovers(server) == []
    again = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app))
    assert again.returncode == 0, again.output[-4000:]
    assert_consistent(server, app["version"])
    rerun(server, app)


def test_restoring_the_oldest_backup_with_data_keeps_it(server, app):
    """keep_backups=2: the restore's own backup first, then retention; the backup restored
    must survive it (its data is read after), and its data must come back."""
    keep = {"keep_backups": 2}
    add_note(server, "in-the-oldest")
    new_version(app, f"d-old-{int(time.time())}")
    first = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app, **keep))
    assert first.returncode == 0, first.output[-4000:]
    add_note(server, "after-the-oldest")
    new_version(app, f"d-new-{int(time.time())}")
    second = pyinfra("deploys/app_deploy.py", [server], data=deploy_data(app, **keep))
    assert second.returncode == 0, second.output[-4000:]
    add_note(server, "after-both")
    zips = sorted(backups(server), key=lambda n: int(server.run(f"stat -c %Y {BACKUPS}/{n}")))
    assert len(zips) == 2, zips
    oldest = zips[0]
    data = {"restore_app": "notes", "restore_backup": oldest, "restore_data": "true"}
    run = pyinfra("deploys/restore.py", [server], data={**data, **deploy_data(app, **keep)})
    assert run.returncode == 0, run.output[-4000:]
    assert oldest in backups(server)
    body = http_get(server.address, "/notes/default/index")[2]
    assert b"in-the-oldest" in body
    assert b"after-the-oldest" not in body and b"after-both" not in body
    record = json.loads(server.run(f"tail -n 1 {APP_DIR}/audit.jsonl"))
    assert record["action"] == "restore" and record["restored_from"] == oldest, record
    assert record["restore_data"] and record["result"] == "ok", record
    assert leftovers(server) == []
