"""Checks of a release: migrations and a throwaway uWSGI before the switch, health through
nginx after it, and the error behind a bad answer (read from web2py's ticket, safely)."""

from __future__ import annotations

import http.client
import io
import os
import pickle
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from server import bounded, uwsgi
from server.app import App
from server.errors import Failure, log
from server.files import chown_tree, read_regular


def precheck(app: App, release_dir: Path) -> None:
    """Before the switch, in a shadow web2py tree whose app is the new release: run the
    migrations if asked, then serve it from a throwaway uWSGI and demand a healthy answer."""
    if not (app.checks.health_path or app.options.migrate):
        return
    shadow = app.base / f".check-{release_dir.name}"
    shutil.rmtree(shadow, ignore_errors=True)
    (shadow / "applications").mkdir(parents=True)
    root = Path(app.layout.web2py_root)
    for entry in root.iterdir():
        if entry.name not in ("applications", "deposit", "logs", "site-packages"):
            os.symlink(entry, shadow / entry.name)
    for name in ("deposit", "logs", "site-packages"):
        (shadow / name).mkdir()
    (shadow / "applications" / "__init__.py").write_text("")
    os.symlink(release_dir, shadow / "applications" / app.name)
    chown_tree(shadow, app.uid, app.gid)
    try:
        if app.options.migrate:
            migrate(app, shadow)
        if app.checks.health_path:
            serve_check(app, shadow, release_dir.name)
    finally:
        shutil.rmtree(shadow, ignore_errors=True)


def migrate(app: App, shadow: Path) -> None:
    """web2py's own way: run the app's models (DAL migrations) with web2py.py -S -M -R."""
    script = shadow / "migrate.py"
    script.write_text("db.commit() if 'db' in globals() else None\n")
    os.chown(script, app.uid, app.gid)
    try:
        result = bounded.run(
            ["python3", "web2py.py", "-S", app.name, "-M", "-R", str(script)],
            app.options.hook_timeout, cwd=shadow, user=app.uid, group=app.gid, extra_groups=[],
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise Failure(
            f"{app.name}: migrations timed out after {app.options.hook_timeout:g}s "
            "(deploy_hook_timeout_seconds); they were killed"
        ) from None
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise Failure(f"{app.name}: migrations failed: {tail}")
    log(f"{app.name}: migrations ran")


def serve_check(app: App, shadow: Path, release: str) -> None:
    """Serve the release in ``shadow`` from a throwaway uWSGI on a private socket and judge
    its answer to the health path: a release that fails to import never serves a request."""
    # The socket and the log in a root-only folder (mkdtemp: 0700), not in the shadow tree:
    # the app user writes there (its models ran in it with migrate) and could plant a link
    # where root creates or opens a file. --shared-socket: uWSGI binds it before it drops to
    # --uid (an --http-socket is bound after, as the app user, who cannot write here).
    private = Path(tempfile.mkdtemp(prefix=".check-", dir=app.base))
    sock = private / "check.sock"
    command = [
        app.layout.uwsgi, "--plugins", "python3",
        "--shared-socket", str(sock), "--http-socket", "=0",
        "--chdir", str(shadow), "--module", "wsgihandler:application",
        "--processes", "1", "--need-app", "--uid", str(app.uid), "--gid", str(app.gid),
        "--chmod-socket=600", "--disable-logging",
    ]  # fmt: skip
    # One process, no master: it is thrown away with SIGKILL after one request (a graceful
    # uWSGI shutdown takes about a second, a third of a whole deploy's server time).
    log_path = private / "uwsgi.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)

    def log_tail() -> str:
        return " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])

    try:
        deadline = time.monotonic() + app.options.check_timeout
        while True:
            # the socket file exists a moment before uWSGI listens on it: retry, bounded
            try:
                left = max(deadline - time.monotonic(), 0.5)  # the whole check is bounded
                status, body = uwsgi.unix_http_get(sock, app.checks.health_path, left)
                break
            except (FileNotFoundError, ConnectionRefusedError) as error:
                if proc.poll() is not None:
                    raise Failure(
                        f"{app.name}: release {release} does not load: {log_tail()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise Failure(
                        f"{app.name}: release {release} did not answer its pre-switch "
                        f"check within {app.options.check_timeout:.0f}s ({error.strerror})"
                    ) from None
                time.sleep(0.05)
            except socket.timeout:
                raise Failure(
                    f"{app.name}: pre-switch check of {app.checks.health_path} timed out: no "
                    f"answer within {app.options.check_timeout:g}s"
                ) from None
            except (OSError, http.client.HTTPException) as error:
                raise Failure(
                    f"{app.name}: pre-switch check of {app.checks.health_path} failed: "
                    f"{error or type(error).__name__}"
                ) from None
        judge(app, "pre-switch check", status, body)
    finally:
        proc.kill()
        try:
            proc.wait(timeout=30)  # SIGKILL: at once, unless the kernel holds it (D state)
        except subprocess.TimeoutExpired:
            log(f"{app.name}: the pre-switch check's uWSGI (pid {proc.pid}) did not exit")
        shutil.rmtree(private, ignore_errors=True)


def judge(app: App, what: str, status: int, body: bytes) -> None:
    """Refuse an answer that is not the expected status with the expected text."""
    if status != app.checks.health_status:
        why = error_summary(app, body)
        raise Failure(
            f"{app.name}: {what} of {app.checks.health_path} answered {status}, "
            f"expected {app.checks.health_status}" + (f": {why}" if why else "")
        )
    if app.checks.health_text and app.checks.health_text.encode() not in body:
        raise Failure(
            f"{app.name}: {what} of {app.checks.health_path} lacks {app.checks.health_text!r}"
        )


def error_summary(app: App, body: bytes) -> str:
    """The error behind a bad answer, for the operator's one line: the last lines of the
    traceback in web2py's ticket (read without following links, unpickled without running
    anything: tickets sit in a folder the app writes), else the start of the page's text."""
    found = TICKET_LINK.search(body)
    if found:
        ticket = read_regular(app.shared / "errors", found.group(1).decode(), "ticket")
        trace = ticket_traceback(ticket[0]) if ticket else ""
        lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
        if lines:
            return f"{' | '.join(lines[-3:])[-400:]} (ticket {found.group(1).decode()})"
    text = re.sub(rb"(?:<[^>]*>|\s)+", b" ", body[:2000]).decode(errors="replace").strip()
    return text[:200]


def health_through_nginx(app: App) -> None:
    """The health check through nginx (HTTPS), retried until ``check_timeout``: the whole check,
    each request included, ends by then. A failure names the check and its last cause."""
    if not app.checks.health_path:
        return
    timeout = app.options.check_timeout
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            status, body = uwsgi.https_get(
                app.layout.health_port, app.checks.health_path, health_key(app), max(left, 0.5)
            )
            judge(app, "health check", status, body)
            return
        except socket.timeout:
            error: Exception = Failure(
                f"{app.name}: health check of {app.checks.health_path} timed out: no answer "
                f"through nginx within {timeout:g}s"
            )
        except (OSError, http.client.HTTPException) as failed:
            error = Failure(
                f"{app.name}: health check of {app.checks.health_path} failed: "
                f"{failed or type(failed).__name__}"
            )
        except Failure as failed:  # a wrong answer: judge names it
            error = failed
        if time.monotonic() + 0.2 >= deadline:
            raise error
        time.sleep(0.2)


def health_key(app: App) -> str:
    """The server's health-check key (written at install, root-only): with it in a header,
    nginx lets the health check through to an app that is down for maintenance."""
    try:
        text = (Path(app.layout.maintenance_dir) / "health-key.conf").read_text()
    except OSError:
        return ""
    found = re.search(r"[0-9a-f]{64}", text)
    return found.group(0) if found else ""


# web2py's error page links the ticket: /admin/default/ticket/<app>/<ticket id>
TICKET_LINK = re.compile(rb"/admin/default/ticket/[A-Za-z0-9_]+/([A-Za-z0-9_.:-]+)")


class _Inert:
    """What every class or function a ticket's pickle names becomes: constructing or calling
    it does nothing, so nothing in the pickle runs (web2py's real tickets name a few of its own
    classes, gluon.html.XML among them, in their snapshot)."""

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _DataOnlyUnpickler(pickle.Unpickler):
    """Loads dicts, lists, strings and numbers as they are and every class or function a pickle
    names as :class:`_Inert`: a ticket the app user planted cannot run code as root."""

    def find_class(self, module: str, name: str):
        """Whatever the pickle names: inert."""
        return _Inert


def ticket_traceback(data: bytes) -> str:
    """The traceback in a web2py ticket (a pickled dict), or ""."""
    try:
        ticket = _DataOnlyUnpickler(io.BytesIO(data)).load()
    except Exception:  # a truncated, foreign or hostile file: no summary, not a failure
        return ""
    trace = ticket.get("traceback") if isinstance(ticket, dict) else None
    return trace if isinstance(trace, str) else ""
