"""The platform subset on every supported Debian release: Debian 13 (trixie), 12 (bookworm)
and 11 (bullseye), one fresh sandbox server each.

On each: install_web2py twice (the second run changes nothing) with a scheduler for the example
app, app_deploy under open-loop load (0 failed requests) with a task queued before it that runs
after it with the new release's code, rollback, maintenance down/up, restore. The web2py is the
real-framework test distribution where gluon 2.26.1 runs (Python 3.9 and 3.11), the stand-in
(web2py 3.x at the deploys' boundaries) on Python 3.13; there, web2py 2.x is refused.
The full suite runs on the default platform (the other e2e files)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from bench.loadgen import LoadRunner

from .sandboxlib import (
    ENGINE,
    ROOT,
    Server,
    http_get,
    pyinfra,
    sandbox_down,
    sandbox_up,
    wait_for,
)
from .test_schedulers import logged, queue, task, tasks

# release -> (server name prefix, test distribution)
PLATFORMS = {
    "trixie": ("p13", "standin"),
    "bookworm": ("p12", "gluon"),
    "bullseye": ("p11", "gluon"),
}
# The same subset runs on either sandbox engine (W2P_SANDBOX_ENGINE): on nspawn, every release;
# on Docker (CI's second pass, bin/test-docker), the default release unless W2P_PLATFORMS says.
DEFAULT_PLATFORMS = {"nspawn": ",".join(PLATFORMS), "docker": "bookworm"}
WANTED = [
    r
    for r in (os.environ.get("W2P_PLATFORMS") or DEFAULT_PLATFORMS.get(ENGINE, "")).split(",")
    if r
]
APPS_DIR = "/srv/web2py-apps"
SCHEDULERS = {"web2py_schedulers": '["notes"]'}
NOTES = {"health_path": "/notes/default/health", "health_text": "ok notes"}


def distribution(framework: str) -> str:
    out = ROOT / "build" / f"web2py_{framework}.zip"
    subprocess.run(
        [sys.executable, "-m", "web2py_standin", "build", "--framework", framework, str(out)],
        check=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    return str(out)


@pytest.fixture(scope="module", params=WANTED, ids=lambda release: f"{ENGINE}-{release}")
def platform(request, tmp_path_factory, e2e_ready):
    release = request.param
    prefix, framework = PLATFORMS[release]
    (server,) = sandbox_up(prefix, 1, release=release)
    app_dir = tmp_path_factory.mktemp(f"platform-{release}") / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
    yield {
        "release": release,
        "server": server,
        "zip": distribution(framework),
        "framework": framework,
        "app_dir": app_dir,
    }
    sandbox_down([server.name])


def apps(app_dir) -> dict[str, str]:
    return {"deploy_apps": json.dumps({"notes": {"path": str(app_dir), **NOTES}})}


def set_version(app_dir, version: str) -> None:
    util = app_dir / "modules" / "notes_util.py"
    text = util.read_text()
    start = text.index("VERSION = '") + len("VERSION = '")
    util.write_text(text[:start] + version + text[text.index("'", start) :])


def os_release(server: Server) -> str:
    return server.run(". /etc/os-release && echo $VERSION_CODENAME").strip()


def live(server: Server) -> str:
    return json.loads(server.run(f"cat {APPS_DIR}/notes/current/REVISION"))["release"]


def test_the_server_runs_that_release(platform):
    assert os_release(platform["server"]) == platform["release"]


def test_the_server_runs_on_the_chosen_engine(platform):
    server = platform["server"]
    inventory = subprocess.run(
        [str(ROOT / "bin" / "sandbox"), "inventory"],
        capture_output=True, text=True, check=True, timeout=60, cwd=ROOT,
    ).stdout  # fmt: skip
    entry = next(s for s in json.loads(inventory)["servers"] if s["name"] == server.name)
    assert entry["engine"] == ENGINE and entry["running"]
    # what systemd itself detects: "docker" or "systemd-nspawn"
    detected = server.run("systemd-detect-virt --container || true").strip()
    assert detected == {"docker": "docker", "nspawn": "systemd-nspawn"}[ENGINE]
    assert server.run("systemctl is-system-running || true").strip() in ("running", "degraded")
    assert server.run("cat /proc/1/comm").strip() == "systemd"


def test_web2py_2_is_refused_where_python_is_3_12_or_newer(platform):
    server = platform["server"]
    python = server.run("python3 -c 'import sys; print(sys.version_info[:2] >= (3, 12))'")
    if python.strip() != "True":
        assert platform["framework"] == "gluon"  # web2py 2.26.1 runs here: the rest proves it
        return
    before = server.run("ls -a /home /etc/nginx/sites-enabled /var/cache 2>&1; dpkg -l | wc -l")
    env = {"WEB2PY_SRC_ZIP": distribution("gluon"), "WEB2PY_ADMIN_PASSWORD": "x-pw-12345"}
    run = pyinfra("deploys/install_web2py.py", [server], env=env)
    assert run.returncode != 0
    errors = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert len(errors) == 1 and "cannot run on Python 3.1" in errors[0], run.output[-2000:]
    assert server.run("ls -a /home /etc/nginx/sites-enabled /var/cache 2>&1; dpkg -l | wc -l") == (
        before
    )


def test_install_twice_the_second_run_changes_nothing(platform):
    server = platform["server"]
    env = {"WEB2PY_SRC_ZIP": platform["zip"], "WEB2PY_ADMIN_PASSWORD": "x-pw-12345"}
    first = pyinfra("deploys/install_web2py.py", [server], data=SCHEDULERS, env=env)
    assert first.returncode == 0, first.output[-5000:]
    second = pyinfra("deploys/install_web2py.py", [server], data=SCHEDULERS, env=env)
    assert second.returncode == 0 and second.totals["changed"] == 0, second.output[-3000:]
    for path in ("/welcome/default/index", "/notes/default/health"):
        status, _, body = http_get(server.address, path)
        assert status == 200, (path, body[:300])
    assert http_get(server.address, "/welcome/default/index", https=True)[0] == 200
    for unit in ("nginx", "web2py-uwsgi", "web2py-scheduler@notes"):
        assert server.run(f"systemctl is-active {unit}").strip() == "active"


def test_deploy_under_load_then_rollback(platform):
    server, app_dir = platform["server"], platform["app_dir"]
    first = pyinfra("deploys/app_deploy.py", [server], data=apps(app_dir))
    assert first.returncode == 0, first.output[-3000:]
    previous = live(server)
    # the worker is busy when the deploy comes, with one more task queued behind
    queue(server, "busy", 8)
    assert wait_for(lambda: task(server, "busy")["status"] == "RUNNING", 60), tasks(server)
    queue(server, "queued-before-the-deploy")
    set_version(app_dir, f"2.0.0-{platform['release']}")
    url = f"http://{server.address}/notes/default/health"
    with LoadRunner(url, rate=60, duration=20, timeout=5, expect_body=b"ok notes") as load:
        time.sleep(2)
        run = pyinfra("deploys/app_deploy.py", [server], data=apps(app_dir))
        result = load.result(60)
    assert run.returncode == 0, run.output[-3000:]
    assert result.sent >= 1000 and result.failed == 0, result.summary()
    expected = f"ok notes 2.0.0-{platform['release']}".encode()
    for _ in range(20):  # every worker serves the new release
        assert http_get(server.address, "/notes/default/health")[2] == expected
    again = pyinfra("deploys/app_deploy.py", [server], data=apps(app_dir))
    assert again.returncode == 0 and again.totals["changed"] == 0, again.output[-3000:]
    # the scheduler followed the deploy: the task queued before it runs the new release's code
    new = f"2.0.0-{platform['release']}"
    assert wait_for(lambda: logged(server, "queued-before-the-deploy"), 60), tasks(server)
    assert logged(server, "queued-before-the-deploy") == [new]
    assert logged(server, "busy") == ["1.0.0"]  # the running task was let finish, old code

    with LoadRunner(url, rate=60, duration=20, timeout=5, expect_body=b"ok notes") as load:
        time.sleep(2)
        back = pyinfra("deploys/rollback.py", [server], data={"rollback_app": "notes"})
        result = load.result(60)
    assert back.returncode == 0, back.output[-3000:]
    assert result.sent >= 1000 and result.failed == 0, result.summary()
    assert live(server) == previous
    assert not http_get(server.address, "/notes/default/health")[2].startswith(expected)


def test_maintenance_down_and_up(platform):
    server = platform["server"]
    data = {"maintenance_app": "notes", "maintenance_action": "down"}
    down = pyinfra("deploys/maintenance.py", [server], data=data)
    assert down.returncode == 0, down.output[-3000:]
    status, headers, _ = http_get(server.address, "/notes/default/index")
    assert status == 503 and headers.get("retry-after") == "600"
    assert http_get(server.address, "/notes/static/css/notes.css")[0] == 200
    up = pyinfra("deploys/maintenance.py", [server], data={**data, "maintenance_action": "up"})
    assert up.returncode == 0, up.output[-3000:]
    assert http_get(server.address, "/notes/default/index")[0] == 200


def test_restore_the_latest_backup(platform):
    server = platform["server"]
    before = live(server)
    run = pyinfra(
        "deploys/restore.py", [server], data={"restore_app": "notes", "restore_backup": "latest"}
    )
    assert run.returncode == 0, run.output[-3000:]
    entry = json.loads(server.run(f"tail -n 1 {APPS_DIR}/notes/audit.jsonl"))
    assert entry["action"] == "restore" and entry["result"] == "ok"
    assert live(server) != before and "restore" in live(server)
    assert http_get(server.address, "/notes/default/health")[2].startswith(b"ok notes")
