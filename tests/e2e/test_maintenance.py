"""deploys/maintenance.py on a provisioned server: notice, 503 page, allow-list, back up, all
without an nginx reload or a uWSGI restart, and without a failed request."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse

import pytest

from bench.loadgen import LoadRunner, run_load

from .sandboxlib import http_get, pyinfra, wait_for

MDIR = "/etc/web2py/maintenance"
NOTES = "/home/www-data/web2py/applications/notes"
PAGE_TEXT = "Back at 22:30 UTC (maintenance test)."
NOTICE_TEXT = "Maintenance tonight at 22:00 UTC (maintenance test)."
NOTICE_ID = b'id="w2p-maintenance-notice"'
PIDS = (
    'm=$(cat /run/nginx.pid); u=$(systemctl show -p MainPID --value web2py-uwsgi); '
    'echo "nginx $m:" $(pgrep -P "$m" | sort -n); echo "uwsgi $u:" $(pgrep -P "$u" | sort -n)'
)  # fmt: skip
SNAPSHOT = (
    f"{{ find {MDIR} -printf '%p %y %l %m %s\\n' | sort; cat {MDIR}/allow.conf; }} | sha256sum"
)


@pytest.fixture(scope="module")
def server(installed):
    server = installed["hosts"][0]  # the plain install: notes is an app folder there
    yield server
    # whatever happened: notes up, empty allow-list (other tests use this server)
    server.run(
        f"rm -f {MDIR}/notes.down {MDIR}/notes.notify; "
        f"if [ -s {MDIR}/allow.conf ]; then : > {MDIR}/allow.conf; "
        "nginx -t -q && systemctl reload nginx; fi"
    )


def maintenance(server, action: str, **data: object):
    values = {"maintenance_app": "notes", "maintenance_action": action}
    for key, value in data.items():
        values[f"maintenance_{key}"] = value if isinstance(value, str) else json.dumps(value)
    return pyinfra("deploys/maintenance.py", [server], data=values)


def processes(server) -> str:
    """nginx master and worker PIDs, uWSGI master and worker PIDs: a reload changes workers."""
    return server.run(PIDS)


def get(server, path: str, **kwargs) -> tuple[int, dict[str, str], bytes]:
    return http_get(server.address, path, **kwargs)


def sessions(server) -> set[str]:
    return set(server.run(f"ls {NOTES}/sessions").split())


def local_status(server) -> str:
    """The status the server itself gets for notes' index (on loopback, not allow-listed)."""
    return server.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/notes/default/index")


def seen_address(server) -> str:
    """Our address as nginx sees it (the sandbox bridge's): the last access log line's."""
    get(server, "/welcome/default/index")
    return server.run("tail -n 1 /var/log/nginx/access.log").split()[0]


def test_down_answers_the_page_with_retry_after_and_reloads_nothing(server):
    get(server, "/notes/default/index")  # a session of ours, which must survive
    before, had = processes(server), sessions(server)
    run = maintenance(server, "down", message=PAGE_TEXT, retry_after=1800)
    assert run.returncode == 0 and run.totals["changed"] >= 1, run.output[-3000:]

    for https in (False, True):
        status, headers, body = get(server, "/notes/default/index", https=https)
        assert status == 503, body[:300]
        assert PAGE_TEXT.encode() in body and b"notes is down for maintenance" in body
        assert headers["retry-after"] == "1800"
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert "no-store" in headers["cache-control"]
    for path in ("/notes", "/notes/", "/notes/default/feed.rss", "/notes/appadmin/index"):
        assert get(server, path)[0] == 503, path
    form = b"title=x&body=y"
    assert get(server, "/notes/default/index", method="POST", body=form)[0] == 503

    # static files still pass, plain and versioned; other apps are not affected
    status, _, body = get(server, "/notes/static/css/notes.css")
    assert status == 200 and body
    assert get(server, "/notes/static/_1.0.0/css/notes.css")[0] == 200
    status, _, body = get(server, "/welcome/default/index")
    assert status == 200 and b"Welcome" in body
    # not even for the server itself: only the allow-list bypasses
    assert local_status(server) == "503"

    assert processes(server) == before  # no nginx reload, no uWSGI restart or chain reload
    assert had <= sessions(server)  # sessions are kept (the fabfile wiped them)


def test_second_down_changes_nothing(server):
    before = processes(server)
    run = maintenance(server, "down", message=PAGE_TEXT, retry_after=1800)
    assert run.returncode == 0 and run.totals["changed"] == 0, run.output[-3000:]
    assert processes(server) == before
    assert get(server, "/notes/default/index")[0] == 503


def test_new_text_and_retry_after_apply_without_a_reload(server):
    before = processes(server)
    run = maintenance(server, "down", message="Later than planned.", retry_after=120)
    assert run.returncode == 0 and run.totals["changed"] == 1, run.output[-3000:]
    status, headers, body = get(server, "/notes/default/index")
    assert status == 503 and b"Later than planned." in body and headers["retry-after"] == "120"
    assert processes(server) == before
    assert server.run(f"ls {MDIR}/pages/notes").split() == ["retry-120"]


def test_allow_list_lets_the_operator_through(server):
    me = seen_address(server)
    run = maintenance(server, "down", message=PAGE_TEXT, retry_after=1800, allow=[f"{me}/32"])
    assert run.returncode == 0, run.output[-3000:]
    # the allow-list is nginx config (geo): a graceful reload, done only when it changes
    assert wait_for(lambda: get(server, "/notes/default/index")[0] == 200, timeout=10)
    status, _, body = get(server, "/notes/default/index")
    assert status == 200 and NOTICE_ID not in body and b"notes is down" not in body
    # still down for everybody else (here: the server itself)
    assert local_status(server) == "503"

    run = maintenance(server, "down", message=PAGE_TEXT, retry_after=1800)  # no allow-list
    assert run.returncode == 0 and run.totals["changed"] == 1, run.output[-3000:]
    assert wait_for(lambda: get(server, "/notes/default/index")[0] == 503, timeout=10)
    assert server.run(f"cat {MDIR}/allow.conf") == ""


def add_note(server, title: str) -> int:
    status, headers, body = get(server, "/notes/default/index")
    cookie = headers["set-cookie"].split(";")[0]
    formkey = body.split(b'name="_formkey" value="')[1].split(b'"')[0].decode()
    form = urllib.parse.urlencode({"title": title, "body": "b", "_formkey": formkey}).encode()
    status, _, _ = get(
        server, "/notes/default/index", method="POST", body=form,
        headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    return status


def test_notify_shows_the_notice_then_up_removes_it(server):
    before = processes(server)
    run = maintenance(server, "notify", message=NOTICE_TEXT)
    assert run.returncode == 0 and run.totals["changed"] == 1, run.output[-3000:]
    for https in (False, True):
        status, _, body = get(server, "/notes/default/index", https=https)
        assert status == 200  # notify lifts the 503
        assert body.count(NOTICE_ID) == 1 and NOTICE_TEXT.encode() in body
        assert body.index(NOTICE_ID) < body.index(b"</body>")
    # the app works as usual, forms included (a POST through the notice location)
    assert add_note(server, "written during the notice") == 303
    assert b"written during the notice" in get(server, "/notes/default/index")[2]
    # only HTML pages, only this app
    status, _, body = get(server, "/notes/default/feed.rss")
    assert status == 200 and NOTICE_ID not in body
    assert NOTICE_ID not in get(server, "/welcome/default/index")[2]
    assert processes(server) == before

    again = maintenance(server, "notify", message=NOTICE_TEXT)
    assert again.returncode == 0 and again.totals["changed"] == 0, again.output[-3000:]

    run = maintenance(server, "up")
    assert run.returncode == 0 and run.totals["changed"] == 1, run.output[-3000:]
    status, _, body = get(server, "/notes/default/index")
    assert status == 200 and NOTICE_ID not in body and NOTICE_TEXT.encode() not in body
    assert processes(server) == before


def sample(server, stop: threading.Event, seen: list[tuple[int, str]]) -> None:
    """Closed-loop probe: what each answer was (the page, the app, or anything else)."""
    while not stop.is_set():
        try:
            status, _, body = get(server, "/notes/default/index", timeout=5)
        except OSError as error:
            seen.append((0, type(error).__name__))
            continue
        if status == 503 and PAGE_TEXT.encode() in body:
            seen.append((status, "page"))
        elif status == 200 and b"/notes/static/css/notes.css" in body:
            seen.append((status, "app"))
        else:
            seen.append((status, body[:80].decode(errors="replace")))
        time.sleep(0.02)


def test_up_under_load_no_request_fails(server):
    run = maintenance(server, "down", message=PAGE_TEXT, retry_after=1800)
    assert run.returncode == 0, run.output[-3000:]
    assert get(server, "/notes/default/index")[0] == 503
    before, had = processes(server), sessions(server)

    url = f"http://{server.address}/notes/default/index"
    stop, seen = threading.Event(), []
    probe = threading.Thread(target=sample, args=(server, stop, seen), daemon=True)
    # "notes" is in both the 503 page and the app's page, never in an nginx error page
    with LoadRunner(
        url, rate=60, duration=15, timeout=5, expect_status=(200, 503), expect_body=b"notes"
    ) as load:
        probe.start()
        time.sleep(2)
        run = maintenance(server, "up")
        time.sleep(2)
        stop.set()
        result = load.result(60)
    probe.join(10)
    assert run.returncode == 0 and run.totals["changed"] == 1, run.output[-3000:]
    assert result.sent >= 800 and result.failed == 0, result.summary()
    # the probe saw the page, then the app, and nothing else: one switch, never back
    kinds = [kind for _, kind in seen]
    assert set(kinds) == {"page", "app"}, seen
    switch = kinds.index("app")
    assert kinds[:switch] == ["page"] * switch and kinds[switch:] == ["app"] * (len(kinds) - switch)

    # once up returned: every request is the app again
    result = run_load(url, rate=60, duration=4, timeout=5, expect_body=b"notes")
    assert result.sent >= 200 and result.failed == 0, result.summary()
    assert processes(server) == before
    assert had <= sessions(server)


def test_second_up_changes_nothing(server):
    before = processes(server)
    run = maintenance(server, "up")
    assert run.returncode == 0 and run.totals["changed"] == 0, run.output[-3000:]
    assert processes(server) == before
    listing = server.run(f"ls {MDIR}").split()
    assert listing == ["allow.conf", "health-key.conf", "notes.page", "pages"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"maintenance_action": "sideways"}, "maintenance_action: expected one of notify"),
        ({"maintenance_app": "no-tes"}, "maintenance_app: expected a web2py app name"),
        ({"maintenance_allow": '["10.213.0.1/8"]'}, "maintenance_allow: '10.213.0.1/8' is not"),
        ({"maintenance_allow": "300.1.2.3"}, "maintenance_allow: '300.1.2.3' is not"),
        ({"maintenance_app": "nosuchapp"}, "no app nosuchapp in /home/www-data/web2py/"),
    ],
    ids=["action", "app-name", "host-bits", "not-an-address", "no-such-app"],
)
def test_bad_data_fails_cleanly_and_changes_nothing(server, data, message):
    before = (server.run(SNAPSHOT), processes(server))
    values = {"maintenance_app": "notes", "maintenance_action": "down", **data}
    run = pyinfra("deploys/maintenance.py", [server], data=values)
    assert run.returncode != 0
    lines = run.output.splitlines()
    errors = [line for line in lines if line.startswith("--> ") and "rror" in line]
    assert len(errors) == 1 and message in errors[0], run.output[-3000:]
    assert "Traceback" not in run.output
    assert (server.run(SNAPSHOT), processes(server)) == before
    assert get(server, "/notes/default/index")[0] == 200
