"""Fleet roll-outs on six sandbox servers: batches, health gate, failure budget, rollback,
summary and webhook — real pyinfra, one run per roll-out, load through nginx on every server."""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from bench.loadgen import LoadRunner

from .sandboxlib import ROOT, http_get, pyinfra, sandbox_down, sandbox_up

PREFIX = "w2pr"
COUNT = 6
APPS_DIR = "/srv/web2py-apps"
FAIL_FLAG = "/etc/w2p-rollout-fail"  # the v3 release answers 500 (but its health) there
FAIL_ALL_FLAG = "/etc/w2p-rollout-fail-all"  # the v4 release answers 500 to everything
# /etc, not /tmp or /var/tmp: uWSGI has a private /tmp (PrivateTmp=yes)
FLAG_MODEL = f"""\
import os
if os.path.exists({FAIL_ALL_FLAG!r}) or (
    os.path.exists({FAIL_FLAG!r}) and request.function != "health"
):
    raise HTTP(500, "failing on purpose")
"""


class Receiver:
    """An incoming webhook on the controller's loopback: records each JSON post."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append({"auth": self.headers.get("Authorization"), **json.loads(body)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/fleet"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, web2py_zip, e2e_ready, admin_password):
    servers = sandbox_up(PREFIX, COUNT)
    try:
        env = {"WEB2PY_ADMIN_PASSWORD": admin_password, "WEB2PY_SRC_ZIP": web2py_zip}
        installed = pyinfra("deploys/install_web2py.py", servers, env=env)
        assert installed.returncode == 0, installed.output[-4000:]
        app_dir = tmp_path_factory.mktemp("fleet") / "notes"
        shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
        (app_dir / "models" / "zz_rollout_flag.py").write_text(FLAG_MODEL)
        work = tmp_path_factory.mktemp("fleet-run")
        fleet = {"servers": servers, "dir": app_dir, "work": work, "receiver": Receiver()}
        first = rollout(fleet, "1.0.0")
        assert first.returncode == 0, first.output[-4000:]
        yield fleet
        fleet["receiver"].close()
    finally:
        sandbox_down([s.name for s in servers])


def set_version(app_dir, version: str) -> None:
    util = app_dir / "modules" / "notes_util.py"
    text = util.read_text()
    start = text.index("VERSION = '") + len("VERSION = '")
    util.write_text(text[:start] + version + text[text.index("'", start) :])


def rollout(fleet, version: str, **data):
    set_version(fleet["dir"], version)
    app = {"path": str(fleet["dir"]), "health_path": "/notes/default/health",
           "health_text": "ok notes", "version": version}  # fmt: skip
    return pyinfra(
        "deploys/app_deploy.py", fleet["servers"],
        data={"deploy_apps": json.dumps({"notes": app}),
              "fleet_summary_file": str(fleet["work"] / "summary.json"),
              **{k: json.dumps(v) for k, v in data.items()}},
        env={"HOOK_TOKEN": "t0k3n-not-in-output"},
    )  # fmt: skip


def summary(fleet) -> dict:
    return json.loads((fleet["work"] / "summary.json").read_text())


def live_version(server) -> str:
    return json.loads(server.run(f"cat {APPS_DIR}/notes/current/REVISION"))["version"]


def releases_of(server, version: str) -> list[str]:
    out = server.run(f"grep -l '\"version\": \"{version}\"' {APPS_DIR}/notes/releases/*/REVISION",
                     check=False)  # fmt: skip
    return out.split()


def audit_versions(server) -> list[str]:
    lines = server.run(f"cat {APPS_DIR}/notes/audit.jsonl").splitlines()
    return [json.loads(line).get("version", "") for line in lines if line.strip()]


def batches_in_inventory_order(fleet) -> list[list[str]]:
    """The batches [1, 2, '100%'] make of the run's hosts (inventory = sandbox state order)."""
    names = [s.name for s in fleet["servers"]]
    state_dir = os.environ.get("W2P_SANDBOX_DIR") or ROOT / ".sandbox"
    state = json.loads((Path(state_dir) / "state.json").read_text())
    order = [s["name"] for s in state["servers"] if s["name"] in names]
    return [order[:1], order[1:3], order[3:]]


def by_name(fleet, name):
    return next(s for s in fleet["servers"] if s.name == name)


def test_a_good_release_goes_through_every_batch_without_a_failed_request(fleet):
    loads = [
        LoadRunner(
            f"http://{s.address}/notes/default/health",
            rate=10,
            duration=60,
            timeout=5,
            expect_body=b"ok notes",
        )  # fmt: skip
        for s in fleet["servers"]
    ]
    for load in loads:
        load.start()
    try:
        run = rollout(fleet, "2.0.0", rollout_batches=[1, 2, "100%"], rollout_soak_seconds=3)
    finally:
        results = [load.result(120) for load in loads]
    assert run.returncode == 0, run.output[-4000:]
    for result in results:
        assert result.sent >= 300 and result.failed == 0, result.summary()
    s = summary(fleet)
    assert s["stopped"] is None and [len(b) for b in s["batches"]] == [1, 2, 3]
    assert s["batches"] == batches_in_inventory_order(fleet)
    assert [h["result"] for h in s["hosts"]] == ["updated"] * COUNT
    assert {h["apps"]["notes"]["version"] for h in s["hosts"]} == {"2.0.0"}
    for server in fleet["servers"]:
        assert live_version(server) == "2.0.0"
    # batch k+1 went live only after batch k's soak: compare the servers' audit times
    times = {h["host"]: by_name(fleet, h["host"]).run(
        f"tail -n 1 {APPS_DIR}/notes/audit.jsonl") for h in s["hosts"]}  # fmt: skip
    stamps = {name: json.loads(line)["when"] for name, line in times.items()}
    first, second, third = s["batches"]
    assert max(stamps[n] for n in first) < min(stamps[n] for n in second)
    assert max(stamps[n] for n in second) < min(stamps[n] for n in third)
    again = rollout(fleet, "2.0.0", rollout_batches=[1, 2, "100%"], rollout_soak_seconds=3)
    assert again.returncode == 0 and again.totals["changed"] == 0, again.output[-3000:]


def test_a_release_failing_after_the_switch_stops_and_rolls_back(fleet):
    first, second, third = batches_in_inventory_order(fleet)
    bad = by_name(fleet, second[0])
    bad.run(f"touch {FAIL_FLAG} && chmod 644 {FAIL_FLAG}")
    load = LoadRunner(f"http://{bad.address}/notes/default/index", rate=20, duration=90,
                      timeout=5, expect_status=(200, 500))  # fmt: skip
    try:
        with load:
            run = rollout(
                fleet, "3.0.0", rollout_batches=[1, 2, "100%"], rollout_soak_seconds=4,
                rollout_on_failure="rollback", notify_webhook_url=fleet["receiver"].url,
                notify_webhook_token_env="HOOK_TOKEN",
            )  # fmt: skip
    finally:
        bad.run(f"rm -f {FAIL_FLAG}")
    (fleet["work"] / "stopped-rollout.log").write_text(run.output)  # the README's example
    assert run.returncode != 0, run.output[-6000:]
    stop_lines = [line for line in run.output.splitlines() if "rollout stopped at batch 2" in line]
    assert stop_lines and f"{bad.name} failed the health gate" in stop_lines[0], run.output[-4000:]
    assert "t0k3n-not-in-output" not in run.output
    for name in first + second:  # updated in this run, then rolled back
        server = by_name(fleet, name)
        assert live_version(server) == "2.0.0"
        assert audit_versions(server)[-1] == "2.0.0"
    for name in third:  # never received 3.0.0
        server = by_name(fleet, name)
        assert live_version(server) == "2.0.0"
        assert releases_of(server, "3.0.0") == []
        assert "3.0.0" not in audit_versions(server)
    s = summary(fleet)
    results = {h["host"]: h["result"] for h in s["hosts"]}
    assert {results[n] for n in first + second} == {"rolled back"}
    assert {results[n] for n in third} == {"not started"}
    started, post = fleet["receiver"].posts[-2:]  # one "started", then the summary
    assert started["event"] == "deploy started" and started["auth"] == "Bearer t0k3n-not-in-output"
    assert started["text"].startswith(f"pyinfra-web2py deploy started: {first[0]} is live; 6 hosts")
    assert post["auth"] == "Bearer t0k3n-not-in-output"
    assert post["event"] == "deploy" and post["summary"]["stopped"] == s["stopped"]
    assert post["text"].startswith("pyinfra-web2py deploy STOPPED: rollout stopped at batch 2")


def test_the_failure_budget_stops_a_rollout_whose_canary_fails_its_check(fleet):
    first, second, third = batches_in_inventory_order(fleet)
    canary = by_name(fleet, first[0])
    canary.run(f"touch {FAIL_ALL_FLAG} && chmod 644 {FAIL_ALL_FLAG}")
    try:
        run = rollout(fleet, "4.0.0", rollout_batches=[1, 2, "100%"], rollout_max_fail_percent=0)
    finally:
        canary.run(f"rm -f {FAIL_ALL_FLAG}")
    assert run.returncode != 0, run.output[-6000:]
    assert f"rollout stopped after batch 1: {canary.name} failed" in run.output, run.output[-4000:]
    assert "pre-switch check" in run.output
    for server in fleet["servers"]:
        assert live_version(server) == "2.0.0"
        status, _, body = http_get(server.address, "/notes/default/health")
        assert status == 200 and body.startswith(b"ok notes 2.0.0")
    for name in second + third:
        assert releases_of(by_name(fleet, name), "4.0.0") == []
    results = {h["host"]: h["result"] for h in summary(fleet)["hosts"]}
    assert results[canary.name] == "failed"
    assert {results[n] for n in second + third} == {"not started"}


def test_status_reports_drift_only_where_a_live_file_was_edited(fleet):
    edited = fleet["servers"][2]
    edited.run(f"echo '# edited by hand' >> {APPS_DIR}/notes/current/controllers/default.py")
    status_file = fleet["work"] / "status.json"
    run = pyinfra("deploys/status.py", fleet["servers"], data={"status_file": str(status_file)})
    assert run.returncode == 0 and run.totals["changed"] == 0, run.output[-3000:]
    report = json.loads(status_file.read_text())
    assert sorted(report) == sorted(s.name for s in fleet["servers"])
    for server in fleet["servers"]:
        record = report[server.name]["notes"]
        assert record["version"] == live_version(server) and record["lock"] is None
        assert record["units"]["web2py-uwsgi.service"] == "active"
        if server is edited:
            assert record["drift"]["changed"] == ["controllers/default.py"]
        else:
            assert record["drift"] == {}
    lines = [line for line in run.output.splitlines() if ": notes: release " in line]
    assert len(lines) == COUNT
    assert [line for line in lines if "DRIFT: changed controllers/default.py" in line] == [
        next(line for line in lines if edited.name + ":" in line)
    ]
