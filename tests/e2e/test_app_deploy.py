"""app_deploy and rollback against a provisioned sandbox server (the heart of the project)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
import urllib.parse

import pytest

from bench.loadgen import LoadRunner

from .sandboxlib import ROOT, http_get, pyinfra

APPS_DIR = "/srv/web2py-apps"
SHARED_DATA = (
    f"cd {APPS_DIR}/notes/shared && "
    "find databases uploads files -type f | sort | xargs -r sha256sum"
)


def apps_data(app_dir, **settings) -> dict[str, str]:
    app = {
        "path": str(app_dir),
        "health_path": "/notes/default/health",
        "health_text": "ok notes",
        **settings,
    }
    return {"deploy_apps": json.dumps({"notes": app})}


def set_version(app_dir, version: str) -> None:
    util = app_dir / "modules" / "notes_util.py"
    text = util.read_text()
    start = text.index("VERSION = '") + len("VERSION = '")
    util.write_text(text[:start] + version + text[text.index("'", start) :])


@pytest.fixture(scope="module")
def app(tmp_path_factory, installed):
    """A working copy of the example app, deployed once to the first installed server."""
    app_dir = tmp_path_factory.mktemp("apps") / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
    server = installed["hosts"][1]  # hosts[0] keeps the plain install for install_web2py's tests
    first = pyinfra("deploys/app_deploy.py", [server], data=apps_data(app_dir))
    assert first.returncode == 0, first.output[-4000:]
    return {"dir": app_dir, "server": server, "first": first}


def deploy(app, **settings):
    return pyinfra("deploys/app_deploy.py", [app["server"]], data=apps_data(app["dir"], **settings))


def live(app) -> dict:
    return json.loads(app["server"].run(f"cat {APPS_DIR}/notes/current/REVISION"))


def add_note(server, title: str) -> None:
    status, headers, body = http_get(server.address, "/notes/default/index")
    cookie = headers["set-cookie"].split(";")[0]
    formkey = body.split(b'name="_formkey" value="')[1].split(b'"')[0].decode()
    form = urllib.parse.urlencode({"title": title, "body": "kept", "_formkey": formkey}).encode()
    status, _, _ = http_get(
        server.address, "/notes/default/index", method="POST", body=form,
        headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert status == 303


def test_first_deploy_adopts_the_installed_app(app):
    server = app["server"]
    assert server.run(f"readlink {ROOT_APPS}/notes").strip() == f"{APPS_DIR}/notes/current"
    revision = live(app)
    assert (
        revision["release"]
        == server.run(f"readlink {APPS_DIR}/notes/current").split("/")[-1].strip()
    )
    assert len(revision["sha256"]) == 64
    status, _, body = http_get(server.address, "/notes/default/health")
    assert status == 200 and body.startswith(b"ok notes")


ROOT_APPS = "/home/www-data/web2py/applications"


def test_rerun_unchanged_changes_nothing(app):
    before = app["server"].run(f"ls /var/backups/web2py/ {APPS_DIR}/notes/releases")
    run = deploy(app)
    assert run.returncode == 0 and run.totals["changed"] == 0, run.output[-3000:]
    assert app["server"].run(f"ls /var/backups/web2py/ {APPS_DIR}/notes/releases") == before


def test_dry_run_lists_file_changes_and_diff(app):
    controller = app["dir"] / "controllers" / "default.py"
    original = controller.read_text()
    (app["dir"] / "views" / "default" / "extra.html").write_text("<p>new view</p>\n")
    controller.write_text(original.replace("List the notes;", "List all the notes;"))
    crontab = app["dir"] / "cron" / "crontab"
    crontab_text = crontab.read_text()
    crontab.unlink()
    before = live(app)
    try:
        run = pyinfra(
            "deploys/app_deploy.py", [app["server"]], data=apps_data(app["dir"]),
            extra=["--dry", "--diff"],
        )  # fmt: skip
        assert run.returncode == 0, run.output[-3000:]
        assert "app notes: 1 added, 1 changed, 1 removed" in run.output
        assert "+ views/default/extra.html" in run.output
        assert "~ controllers/default.py" in run.output
        assert "- cron/crontab" in run.output
        assert '+    """List all the notes;' in run.output
        assert live(app) == before  # a dry run changed nothing
    finally:
        controller.write_text(original)
        (app["dir"] / "views" / "default" / "extra.html").unlink()
        crontab.write_text(crontab_text)


def test_deploy_under_load_zero_failures_then_rollback(app):
    server = app["server"]
    add_note(server, "written before the deploy")
    data_before = server.run(SHARED_DATA)
    previous = live(app)["release"]
    set_version(app["dir"], "2.0.0")
    (app["dir"] / "static" / "css" / "gone.css").write_text("a{}")
    url = f"http://{server.address}/notes/default/health"
    with LoadRunner(url, rate=120, duration=30, timeout=5, expect_body=b"ok notes") as load:
        time.sleep(2)
        run = deploy(app)
        result = load.result(60)
    assert run.returncode == 0, run.output[-3000:]
    assert result.sent >= 3000 and result.failed == 0, result.summary()
    # every worker serves the new release once the deploy returns
    for _ in range(40):
        assert http_get(server.address, "/notes/default/health")[2] == b"ok notes 2.0.0"
    assert server.run(SHARED_DATA) == data_before
    new = live(app)["release"]
    assert new != previous

    # a file deleted locally is gone from the server
    (app["dir"] / "static" / "css" / "gone.css").unlink()
    run = deploy(app)
    assert run.returncode == 0
    assert (
        server.run(f"test -e {APPS_DIR}/notes/current/static/css/gone.css || echo gone").strip()
        == "gone"
    )
    assert http_get(server.address, "/notes/static/css/gone.css")[0] == 404

    # rollback to the previous release by the release log, under load
    with LoadRunner(url, rate=120, duration=30, timeout=5, expect_body=b"ok notes") as load:
        time.sleep(2)
        rb = pyinfra(
            "deploys/rollback.py", [server], data={"rollback_app": "notes", **apps_data(app["dir"])}
        )
        result = load.result(60)
    assert rb.returncode == 0, rb.output[-3000:]
    assert result.sent >= 3000 and result.failed == 0, result.summary()
    assert live(app)["release"] == new
    assert server.run(SHARED_DATA) == data_before
    status, _, body = http_get(server.address, "/notes/default/index")
    assert b"written before the deploy" in body

    # to a named release
    rb = pyinfra(
        "deploys/rollback.py", [server],
        data={"rollback_app": "notes", "rollback_to": previous, **apps_data(app["dir"])},
    )  # fmt: skip
    assert rb.returncode == 0, rb.output[-3000:]
    assert live(app)["release"] == previous
    assert http_get(server.address, "/notes/default/health")[2].startswith(b"ok notes 1.0.0")


def test_broken_release_never_serves(app):
    server = app["server"]
    before = live(app)["release"]
    model = app["dir"] / "models" / "zz_broken.py"
    model.write_text("raise RuntimeError('broken on purpose')\n")
    url = f"http://{server.address}/notes/default/health"
    try:
        with LoadRunner(url, rate=50, duration=12, timeout=5, expect_body=b"ok notes") as load:
            time.sleep(1)
            run = deploy(app)
            result = load.result(60)
    finally:
        model.unlink()
    assert run.returncode != 0
    assert "pre-switch check" in run.output and "answered 500" in run.output
    assert live(app)["release"] == before
    assert result.failed == 0, result.summary()
    log = server.run(f"tail -n 3 {APPS_DIR}/notes/release.log")
    assert "failed" in log


def test_failing_after_switch_rolls_back(app):
    server = app["server"]
    before = live(app)["release"]
    set_version(app["dir"], "3.0.0")
    run = deploy(app, hooks={"after_switch": ["echo boom >&2; exit 7"]})
    assert run.returncode != 0
    assert "after_switch hook" in run.output and "rolled back to" in run.output
    assert live(app)["release"] == before
    assert http_get(server.address, "/notes/default/health")[2] != b"ok notes 3.0.0"
    audit = [
        json.loads(line) for line in server.run(f"cat {APPS_DIR}/notes/audit.jsonl").splitlines()
    ]
    assert audit[-1]["result"].startswith("failed") and "rolled back" in audit[-1]["result"]
    for entry in audit:
        assert {
            "who",
            "when",
            "version",
            "package_sha256",
            "backup",
            "result",
            "duration_s",
        } <= set(entry)


def test_lock_fails_fast_and_unlock_releases(app):
    server = app["server"]
    server.run(
        f"mkdir {APPS_DIR}/notes/lock && echo "
        '\'{"who": "carol@laptop", "since": "20261125T000000Z", "version": "9.9"}\' '
        f"> {APPS_DIR}/notes/lock/info.json"
    )
    set_version(app["dir"], "4.0.0")
    started = time.monotonic()
    run = deploy(app)
    assert run.returncode != 0 and time.monotonic() - started < 60
    assert "locked by carol@laptop" in run.output
    shown = pyinfra("deploys/unlock.py", [server], data={"unlock_app": "notes"}, extra=["--dry"])
    assert "notes locked by carol@laptop" in shown.output
    released = pyinfra("deploys/unlock.py", [server], data={"unlock_app": "notes"})
    assert released.returncode == 0 and released.totals["changed"] == 1
    run = deploy(app)
    assert run.returncode == 0, run.output[-3000:]
    assert http_get(server.address, "/notes/default/health")[2] == b"ok notes 4.0.0"


def test_a_lock_left_by_a_dead_deploy_is_taken_over(app):
    server = app["server"]
    # the lock a killed deploy leaves: its process is gone (same boot, nothing at that start)
    server.run(
        f"mkdir {APPS_DIR}/notes/lock && printf '%s' "
        '"{\\"who\\": \\"dave@laptop\\", \\"since\\": \\"20261125T000000Z\\", '
        '\\"version\\": \\"9.8\\", \\"pid\\": 4194000, \\"started\\": \\"1\\", '
        '\\"boot_id\\": \\"$(cat /proc/sys/kernel/random/boot_id)\\"}" '
        f"> {APPS_DIR}/notes/lock/info.json"
    )
    set_version(app["dir"], "4.1.0")
    run = deploy(app)
    assert run.returncode == 0, run.output[-3000:]
    assert http_get(server.address, "/notes/default/health")[2] == b"ok notes 4.1.0"
    entry = json.loads(server.run(f"tail -n 1 {APPS_DIR}/notes/audit.jsonl"))
    assert entry["took_over_lock_of"]["who"] == "dave@laptop"
    assert server.run(f"test -e {APPS_DIR}/notes/lock && echo held || echo free").strip() == "free"


def test_backups_are_timestamped_verified_and_retained(app):
    server = app["server"]
    listing = server.run("cd /var/backups/web2py && ls").split()
    zips = [n for n in listing if n.endswith(".zip")]
    assert zips and all(n.startswith("notes.") and n[6:22].endswith("Z") for n in zips)
    assert (
        server.run("cd /var/backups/web2py && sha256sum -c --quiet *.sha256 && echo ok").strip()
        == "ok"
    )
    content = server.run(f"cd /var/backups/web2py && unzip -l {sorted(zips)[-1]}")
    assert "notes/databases/storage.sqlite" in content and "notes/controllers/default.py" in content
    assert server.run("stat -c '%U %a' /var/backups/web2py").strip() == "root 700"


def test_code_is_read_only_to_uwsgi_and_data_writable(app):
    server = app["server"]
    release = f"{APPS_DIR}/notes/current"
    assert server.run(f"stat -c '%U %a' {release}/controllers/default.py").strip() == "root 644"
    as_uwsgi = "runuser -u www-data -- sh -c "
    code = f"'touch {release}/controllers/x 2>/dev/null || echo denied'"
    data = f"'touch {release}/databases/probe && rm {release}/databases/probe && echo ok'"
    assert server.run(as_uwsgi + code).strip() == "denied"
    assert server.run(as_uwsgi + data).strip() == "ok"


def test_git_source_with_migrations_and_two_apps_in_one_run(app, tmp_path):
    server = app["server"]
    repo = tmp_path / "repo"
    shutil.copytree(app["dir"], repo / "apps" / "notes2")
    set_version(repo / "apps" / "notes2", "5.0.0")
    model = repo / "apps" / "notes2" / "models" / "db.py"
    model.write_text(
        model.read_text().replace(
            "Field('body', 'text'),", "Field('body', 'text'),\n    Field('priority', 'integer'),"
        )
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "v5"],
                 ["tag", "v5"]):  # fmt: skip
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True, timeout=60)
    tagged = subprocess.run(
        ["git", "rev-parse", "v5^{commit}"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    (repo / "apps" / "notes2" / "ABOUT").write_text("after the tag\n")
    subprocess.run([*git, "commit", "-qam", "later"], cwd=repo, check=True, capture_output=True)

    apps = {
        "notes": {"path": str(app["dir"]), "health_path": "/notes/default/health"},
        "notes2": {
            "source": "git", "repo": str(repo), "ref": "v5", "subdir": "apps/notes2",
            "health_path": "/notes2/default/health", "health_text": "ok notes 5.0.0",
            "migrate": True,
        },
    }  # fmt: skip
    data = {"deploy_apps": json.dumps(apps)}
    run = pyinfra("deploys/app_deploy.py", [server], data=data)
    assert run.returncode == 0, run.output[-4000:]
    revision = json.loads(server.run(f"cat {APPS_DIR}/notes2/current/REVISION"))
    assert revision["version"] == f"git:{tagged}"
    assert server.run(f"cat {APPS_DIR}/notes2/current/ABOUT").strip() != "after the tag"
    assert server.run(f"find -L {APPS_DIR}/notes2/current -name .git").strip() == ""
    assert http_get(server.address, "/notes2/default/health")[2] == b"ok notes 5.0.0"
    assert http_get(server.address, "/notes/default/health")[2].startswith(b"ok notes")
    database = f"{APPS_DIR}/notes2/shared/databases/storage.sqlite"
    query = (
        f"import sqlite3; db = sqlite3.connect('{database}'); "
        "print(db.execute('pragma table_info(note)').fetchall())"
    )
    columns = server.run(f'python3 -c "{query}"')
    assert "priority" in columns
    again = pyinfra("deploys/app_deploy.py", [server], data=data)
    assert again.returncode == 0 and again.totals["changed"] == 0, again.output[-3000:]


def backups_of(server) -> list[str]:
    return sorted(n for n in server.run("ls /var/backups/web2py").split() if n.endswith(".zip"))


def restore(app, **data):
    base = {"restore_app": "notes", **apps_data(app["dir"])}
    return pyinfra("deploys/restore.py", [app["server"]], data={**base, **data})


def test_restore_code_only_keeps_new_data_and_refuses_corrupt(app):
    server = app["server"]
    old_version = http_get(server.address, "/notes/default/health")[2]
    set_version(app["dir"], "6.0.0")
    before = backups_of(server)
    assert deploy(app).returncode == 0
    taken = [n for n in backups_of(server) if n not in before]
    assert len(taken) == 1  # the deploy's backup holds the previous version
    add_note(server, "written after the backup")

    listing = restore(app)
    assert listing.returncode == 0 and taken[0] in listing.output
    assert listing.totals["changed"] == 0

    # a corrupt copy is refused and nothing changes
    corrupt = "notes.20200101T000000Z.zip"
    server.run(
        f"cd /var/backups/web2py && cp {taken[0]} {corrupt} && "
        f"sha256sum {corrupt} > {corrupt}.sha256 && printf 'X' | "
        f"dd of={corrupt} bs=1 seek=100 conv=notrunc 2>/dev/null"
    )
    live_before, backups_before = live(app), backups_of(server)
    refused = restore(app, restore_backup=corrupt)
    assert refused.returncode != 0 and "corrupt, refused" in refused.output
    assert live(app) == live_before and backups_of(server) == backups_before
    assert (
        server.run(f"test -e {APPS_DIR}/notes/lock && echo locked || echo free").strip() == "free"
    )
    server.run(f"rm /var/backups/web2py/{corrupt}*")
    count = len(backups_of(server))

    run = restore(app, restore_backup=taken[0])
    assert run.returncode == 0, run.output[-3000:]
    assert http_get(server.address, "/notes/default/health")[2] == old_version
    assert len(backups_of(server)) == count + 1  # a fresh backup came first
    body = http_get(server.address, "/notes/default/index")[2]
    assert b"written after the backup" in body  # code-only: data kept
    entry = json.loads(server.run(f"tail -n 1 {APPS_DIR}/notes/audit.jsonl"))
    assert entry["action"] == "restore" and entry["restored_from"] == taken[0]

    run = restore(app, restore_backup=taken[0], restore_data="true")
    assert run.returncode == 0, run.output[-3000:]
    body = http_get(server.address, "/notes/default/index")[2]
    assert b"written after the backup" not in body  # data restored too, by request
    assert b"written before the deploy" in body


def test_retrieve_brings_verified_copies_and_never_overwrites(app, tmp_path):
    server = app["server"]
    target = tmp_path / "retrieved"
    data = {"retrieve_app": "notes", "retrieve_dir": str(target), **apps_data(app["dir"])}
    # The app user watches every file it can read under /tmp for a zip (a backup holds the
    # databases) while the backup travels.
    watch = (
        'for f in /tmp/* /tmp/*/*; do [ -f "$f" ] && head -c 2 "$f" 2>/dev/null '
        '| grep -q PK && echo "$f"; done; sleep 0.02'
    )
    server.run(
        "rm -f /root/tmp-leaks; timeout 120 runuser -u www-data -- sh -c "
        f"'while :; do {watch}; done' </dev/null >/root/tmp-leaks 2>/dev/null & "
        "echo $! >/root/watch.pid"
    )
    snap = pyinfra("deploys/retrieve.py", [server], data={**data, "retrieve_backup": "snapshot"})
    server.run("kill $(cat /root/watch.pid)")  # timeout passes the TERM on to the watcher
    assert snap.returncode == 0, snap.output[-3000:]
    assert server.run("cat /root/tmp-leaks") == "", "a backup was readable by www-data in /tmp"
    folder = target / server.name / "notes"
    (local,) = folder.glob("*.zip")
    remote_sum = server.run(f"sha256sum /var/backups/web2py/{local.name}").split()[0]
    assert hashlib.sha256(local.read_bytes()).hexdigest() == remote_sum
    assert (folder / f"{local.name}.sha256").read_text().split()[0] == remote_sum
    assert not list(folder.glob("*.part"))

    latest = pyinfra("deploys/retrieve.py", [server], data=data)  # the snapshot is the latest
    assert latest.returncode == 0 and "already here and verified" in latest.output
    local.write_bytes(b"tampered")
    again = pyinfra("deploys/retrieve.py", [server], data=data)
    assert again.returncode != 0 and "not overwritten" in again.output
    assert local.read_bytes() == b"tampered"


def test_cleanup_removes_old_runtime_files_and_excess_releases(app):
    server = app["server"]
    shared = f"{APPS_DIR}/notes/shared"
    server.run(
        f"touch -d '40 days ago' {shared}/sessions/old-session {shared}/errors/old-ticket && "
        f"touch {shared}/sessions/fresh-session"
    )
    # the app user plants a link to a root-only folder of old files in its cache
    server.run(
        "mkdir -p /root/victim && echo keep > /root/victim/old-file && "
        "touch -d '400 days ago' /root/victim/old-file && "
        f"runuser -u www-data -- ln -sfn /root/victim {shared}/cache/planted"
    )
    data = {"cleanup_days": "30", **apps_data(app["dir"], keep_releases=2, keep_backups=3)}
    live_before = live(app)["release"]
    run = pyinfra("deploys/cleanup.py", [server], data=data)
    assert run.returncode == 0, run.output[-3000:]
    assert "old files" in run.output or "tool is updated first" in run.output
    left = server.run(f"ls {shared}/sessions {shared}/errors")
    assert "old-session" not in left and "old-ticket" not in left and "fresh-session" in left
    assert server.run("cat /root/victim/old-file") == "keep\n"  # never followed
    releases = server.run(f"ls {APPS_DIR}/notes/releases").split()
    assert live_before in releases and len(releases) <= 3  # kept: 2, plus the last good one
    assert len(backups_of(server)) == 3
    assert http_get(server.address, "/notes/default/health")[0] == 200
    again = pyinfra("deploys/cleanup.py", [server], data=data)
    assert again.returncode == 0 and again.totals["changed"] == 0, again.output[-2000:]


MDIR = "/etc/web2py/maintenance"
NOTICE = "Deploying in a moment (e2e)."
PAGE = "Deploying now, back in two minutes (e2e)."


class Watch:
    """Polls the app's page and a static file from a thread (bounded) and records what each
    answer was: "up", "notice" (the page carries the notice), "down" (503 with the page and
    Retry-After), or anything else as is. Consecutive repeats are collapsed in ``phases``."""

    def __init__(self, server, page: str, retry_after: str, notice: str = NOTICE):
        self.server, self.page, self.retry_after, self.notice = server, page, retry_after, notice
        self.answers: list[str] = []
        self.static: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def classify(self, status: int, headers: dict[str, str], body: bytes) -> str:
        if status == 200:
            return "notice" if self.notice.encode() in body else "up"
        if status == 503 and self.page.encode() in body:
            return "down" if headers.get("retry-after") == self.retry_after else "503 no retry"
        return f"{status}"

    def run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.answers.append(self.classify(*http_get(self.server.address, "/notes/")))
                self.static.append(http_get(self.server.address, "/notes/static/css/notes.css")[0])
            except OSError as error:
                self.answers.append(f"error {error}")
            time.sleep(0.05)

    @property
    def phases(self) -> list[str]:
        return [a for i, a in enumerate(self.answers) if i == 0 or a != self.answers[i - 1]]

    def __enter__(self) -> Watch:
        self.thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        self.stop.set()
        self.thread.join(30)


def test_deploy_under_maintenance_notice_then_503_then_up(app):
    server = app["server"]
    set_version(app["dir"], "8.0.0")
    settings = {
        "maintenance": True, "notice_seconds": 3, "notice_message": NOTICE,
        "down_message": PAGE, "retry_after": 120,
    }  # fmt: skip
    with Watch(server, PAGE, "120") as watch:
        run = deploy(app, **settings)
    assert run.returncode == 0, run.output[-3000:]
    # every answer was the app, the app with its notice, or the 503 page: in that order
    assert watch.phases == ["up", "notice", "down", "up"], watch.phases
    assert set(watch.static) == {200}  # static files pass while the app is down
    assert http_get(server.address, "/notes/default/health")[2].startswith(b"ok notes 8.0.0")
    assert server.run(f"ls {MDIR}").split().count("notes.down") == 0
    assert "notes.notify" not in server.run(f"ls {MDIR}")
    entry = json.loads(server.run(f"tail -n 1 {APPS_DIR}/notes/audit.jsonl"))
    assert entry["result"] == "ok" and 0 < entry["down_s"] < entry["duration_s"]
    assert "notes: down for maintenance (503) for" in run.output

    again = deploy(app, **settings)  # nothing to deploy: no notice, no downtime
    assert again.returncode == 0 and again.totals["changed"] == 0, again.output[-3000:]


def test_a_deploy_that_fails_under_maintenance_comes_back_up(app):
    server = app["server"]
    live_before = live(app)["release"]
    set_version(app["dir"], "8.1.0")
    settings = {"maintenance": True, "notice_seconds": 0, "down_message": PAGE}
    broken = {**settings, "health_text": "never in the page"}
    with Watch(server, PAGE, "600") as watch:
        run = deploy(app, **broken)
    assert run.returncode != 0 and "lacks" in run.output, run.output[-3000:]
    assert watch.phases == ["up", "down", "up"], watch.phases
    assert live(app)["release"] == live_before
    assert "notes.down" not in server.run(f"ls {MDIR}")


def test_the_health_key_passes_a_down_app_and_never_reaches_it(app):
    server = app["server"]
    assert server.run(f"stat -c '%a %U' {MDIR}/health-key.conf").strip() == "600 root"
    key = server.run(f"grep -o '[0-9a-f]\\{{64\\}}' {MDIR}/health-key.conf").strip()
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    server.run(f"touch {MDIR}/notes.down")
    try:
        assert http_get(server.address, "/notes/default/health")[0] == 503
        wrong = {"X-W2p-Health-Key": "0" * 64}
        assert http_get(server.address, "/notes/default/health", headers=wrong)[0] == 503
        status, _, body = http_get(
            server.address, "/notes/default/headers", headers={"X-W2p-Health-Key": key}
        )
        assert status == 200 and b"host" in body, body
        assert b"health" not in body  # nginx kept the key to itself
    finally:
        server.run(f"rm -f {MDIR}/notes.down")


def test_restore_with_data_runs_with_the_app_down(app):
    # The live release came from the maintenance deploy above: the restore follows the settings
    # that deploy recorded on the server (notice for 3 s, its page, Retry-After 120), whatever
    # deploy_apps this run was given.
    server = app["server"]
    with Watch(server, PAGE, "120") as watch:
        run = restore(app, restore_backup="latest", restore_data="true")
    assert run.returncode == 0, run.output[-3000:]
    assert watch.phases == ["up", "notice", "down", "up"], watch.phases
    entry = json.loads(server.run(f"tail -n 1 {APPS_DIR}/notes/audit.jsonl"))
    assert entry["action"] == "restore" and entry["restore_data"] and entry["result"] == "ok"


def test_an_app_the_operator_took_down_is_deployed_and_stays_down(app):
    server = app["server"]
    down = pyinfra(
        "deploys/maintenance.py", [server],
        data={"maintenance_app": "notes", "maintenance_action": "down"},
    )  # fmt: skip
    assert down.returncode == 0, down.output[-3000:]
    try:
        set_version(app["dir"], "9.0.0")
        run = deploy(app, maintenance=True, notice_seconds=30)
        # no notice period (the app is down already), and the health check got through
        assert run.returncode == 0 and "down for maintenance (503)" not in run.output, run.output
        assert live(app)["version"] == live(app)["sha256"][:12]
        assert http_get(server.address, "/notes/default/health")[0] == 503  # still down
        assert "notes.notify" not in server.run(f"ls {MDIR}")
    finally:
        up = pyinfra(
            "deploys/maintenance.py", [server],
            data={"maintenance_app": "notes", "maintenance_action": "up"},
        )  # fmt: skip
    assert up.returncode == 0, up.output[-3000:]
    assert http_get(server.address, "/notes/default/health")[2].startswith(b"ok notes 9.0.0")
