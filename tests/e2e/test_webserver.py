"""webserver: status per host, stop/start/restart/reload through systemd."""

from __future__ import annotations

from .sandboxlib import http_get, pyinfra


def action(installed, name: str):
    run = pyinfra("deploys/webserver.py", installed["hosts"], data={"webserver_action": name})
    if run.returncode != 0:
        journals = "\n".join(
            server.run("journalctl -n 25 --no-pager -u nginx -u web2py-uwsgi | cat", check=False)
            for server in installed["hosts"]
        )
        raise AssertionError(f"{run.output[-3000:]}\n--- journals ---\n{journals}")
    return run


def test_status_prints_a_line_per_host(installed):
    run = action(installed, "status")
    for server in installed["hosts"]:
        line = next(
            li for li in run.output.splitlines() if f"{server.name}:" in li and "nginx" in li
        )
        assert "nginx active" in line and "web2py-uwsgi active" in line
    assert run.totals["changed"] == 0


def test_stop_start_restart_reload(installed):
    server = installed["hosts"][0]
    action(installed, "stop")
    assert server.run("systemctl is-active nginx web2py-uwsgi", check=False).split() == [
        "inactive", "inactive",
    ]  # fmt: skip
    action(installed, "start")
    assert server.run("systemctl is-active nginx web2py-uwsgi").split() == ["active", "active"]
    pid_before = server.run("systemctl show -p MainPID --value web2py-uwsgi").strip()
    action(installed, "restart")
    assert server.run("systemctl show -p MainPID --value web2py-uwsgi").strip() != pid_before
    pid_before = server.run("systemctl show -p MainPID --value web2py-uwsgi").strip()
    action(installed, "reload")
    # a chain reload keeps the master: same PID, still serving
    assert server.run("systemctl show -p MainPID --value web2py-uwsgi").strip() == pid_before
    status, _, _ = http_get(server.address, "/welcome/default/index")
    assert status == 200


def test_unknown_action_is_one_line_and_changes_nothing(installed):
    run = pyinfra("deploys/webserver.py", installed["hosts"], data={"webserver_action": "explode"})
    assert run.returncode != 0
    lines = [li for li in run.output.splitlines() if "pyinfra error" in li]
    assert len(lines) == 1 and "webserver_action: expected one of" in lines[0]
