"""The two test distributions side by side: the hand-written stand-in and web2py's real gluon.

Where real gluon cannot run (Python 3.12+) the deploys are tested against the stand-in, which
must answer like web2py at the boundaries the deploys touch. Here both zips are built, installed
as a deploy installs web2py (unzip, handlers/wsgihandler.py copied to the root), given the same
apps (examples/apps/notes and a few small test apps), sent THE SAME requests in the same order,
and made to run the same ``web2py.py -S APP -M -R SCRIPT`` commands; each answer is reduced to
what the deploys, nginx and the release tool rely on, and the two are compared.

Every difference must be listed in EXPECTED_DIFFERENCES with its reason (and the same list is in
web2py_standin/README.md, "Differences from real web2py that remain"): a new difference fails
the test, and so does a listed one that went away.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from operations.local.passwords import web2py_parameters_for
from server import checks
from web2py_standin import build_zip
from web2py_standin.driver import Response, StandinProcess, install_zip
from web2py_standin.gluon_dist import build_gluon_zip

REPO = Path(__file__).resolve().parents[2]
NOTES = REPO / "examples" / "apps" / "notes"
README = REPO / "web2py_standin" / "README.md"
TIMEOUT = 60  # seconds, for every subprocess
DISTS = ("standin", "gluon")
CHECK_CLIENT = "203.0.113.1"  # what the release tool's health checks send as X-Forwarded-For
REMOTE = "198.51.100.20"  # a client on another machine (TEST-NET-2)
ADMIN_PASSWORD = "side by side pw"

# the release tool's own ticket reading (the link in the 500 page, the data-only unpickler)

# A small app of ours, the same in both: who web2py thinks the client is, a session, a crash.
PROBE_CONTROLLER = """\
def index():
    session.forget(response)
    response.headers['Content-Type'] = 'text/plain; charset=utf-8'
    return 'client=%s local=%s https=%s' % (request.client, request.is_local, request.is_https)


def counter():
    session.n = (session.n or 0) + 1
    return 'n=%s' % session.n


def boom():
    return 1 / 0
"""
CSS = NOTES / "static" / "css" / "notes.css"
CSS_LAST_MODIFIED = formatdate(int(CSS.stat().st_mtime), usegmt=True)
CLOSED_MTIME = 1577836800  # 2020-01-01 00:00 UTC, the DISABLED app's static file


# ------------------------------------------------------------------------------ observations


def digest(r: Response, root: Path, state: dict) -> str:
    return hashlib.sha256(r.body).hexdigest()[:16] + f" ({len(r.body)} bytes)"


def text(r: Response, root: Path, state: dict) -> str:
    return r.text


def has(*needles: str) -> Callable[[Response, Path, dict], str]:
    def marker(r: Response, root: Path, state: dict) -> str:
        return " ".join(f"{'+' if n in r.text else '-'}{n!r}" for n in needles)

    return marker


def api(r: Response, root: Path, state: dict) -> Any:
    try:
        data = r.json()
    except ValueError:
        return r.text
    return data["app"], data["version"], data["count"], [n["title"] for n in data["notes"]]


def ticket(r: Response, root: Path, state: dict) -> Any:
    """The link the release tool follows, and the ticket file it reads."""
    found = checks.TICKET_LINK.search(r.body)
    if not found:
        return "no ticket link"
    link = found.group(0).decode()
    state["ticket"] = link
    app = link.split("/")[4]
    path = root / "applications" / app / "errors" / found.group(1).decode()
    if not path.is_file():
        return f"no ticket file for {link}"
    data = path.read_bytes()
    try:
        keys = sorted(checks._DataOnlyUnpickler(io.BytesIO(data)).load())
    except Exception as error:  # any class in the pickle: the release tool cannot read it
        keys = f"not data only: {error}"
    trace = checks.ticket_traceback(data).strip().splitlines()
    shape = re.fullmatch(
        rf"/admin/default/ticket/{app}/127\.0\.0\.1\.\d{{4}}-\d\d-\d\d\.\d\d-\d\d-\d\d\."
        r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
        link,
    )
    return {
        "link": f"/admin/default/ticket/{app}/<client>.<date>.<uuid>" if shape else link,
        "keys": keys,
        "traceback ends": trace[-1] if trace else None,
    }


def session_file(r: Response, root: Path, state: dict) -> Any:
    """The session's body, and where web2py keeps its file (relative to the app's sessions/)."""
    jar = SimpleCookie()
    for raw in r.set_cookies:
        jar.load(raw)
    if "session_id_probe" not in jar:
        return r.text, "no session cookie"
    sid = jar["session_id_probe"].value
    found = list((root / "applications/probe/sessions").rglob(sid))
    if len(found) != 1:
        return r.text, f"{len(found)} session files"
    where = found[0].relative_to(root / "applications/probe/sessions").as_posix()
    return r.text, re.sub(r"^[0-9a-f]{3}/[0-9a-f]{3}/", "<3 hex>/<3 hex>/", where).replace(
        sid, "<id>"
    )


@dataclass
class Req:
    name: str
    path: str | Callable[[dict], str]
    marker: Callable[[Response, Path, dict], Any] = text
    method: str = "GET"
    data: dict | None = None  # FORMKEY is replaced by the last page's _formkey
    headers: dict[str, str] = field(default_factory=dict)
    remote_addr: str = "127.0.0.1"
    https: bool = False
    server_port: int | None = None
    use_cookies: bool = True
    clear_cookies: bool = False
    setup: Callable[[Path], None] | None = None  # run on each root before the request


FORMKEY = object()
NOTE_PAGE = has("<title>Notes</title>", "No notes yet.", 'name="_formkey"', ">Note 1<")


def write_admin_password(root: Path) -> None:
    # what deploys/install_web2py.py writes for HTTPS behind nginx (SERVER_PORT 443)
    (root / "parameters_443.py").write_text(web2py_parameters_for(ADMIN_PASSWORD, None))


XFF = {"X-Forwarded-For": CHECK_CLIENT}
REQUESTS = [
    # the default application: no "init" app, so web2py redirects to welcome
    Req("/", "/", has("/welcome/default/index")),
    Req("welcome", "/welcome/default/index", has("Welcome to web2py!")),
    Req("welcome app only", "/welcome", has("Welcome to web2py!")),
    # the health check, as the release tool sends it: through nginx and over uWSGI's unix socket
    Req("health", "/notes/default/health", headers=XFF),
    Req("health unix socket", "/notes/default/health", headers=XFF, remote_addr=""),
    Req("health remote", "/notes/default/health", remote_addr=REMOTE, https=True),
    # the notes app: a page with a form, post/redirect/get, its JSON API
    Req("notes index", "/notes/default/index", NOTE_PAGE),
    Req("notes app only", "/notes", NOTE_PAGE),
    Req(
        "add note",
        "/notes/default/index",
        method="POST",
        data={"_formkey": FORMKEY, "title": "Note 1", "body": "its body"},
    ),
    Req("notes after add", "/notes/default/index", has("Note added", ">Note 1<", "No notes yet.")),
    Req(
        "empty title",
        "/notes/default/index",
        has("A title is required"),
        method="POST",
        data={"_formkey": FORMKEY, "title": "  "},
    ),
    Req(
        "forged formkey",
        "/notes/default/index",
        method="POST",
        data={"_formkey": "forged", "title": "no"},
    ),
    Req("after forged", "/notes/default/index", has("The form expired", ">no<")),
    Req("api.json", "/notes/default/api.json", api),
    Req("api.json remote", "/notes/default/api.json", api, remote_addr=REMOTE, https=True),
    Req("show", "/notes/default/show/1", has("<h1>Note 1</h1>", "its body")),
    Req("show missing", "/notes/default/show/999"),
    Req("HTTP raised", "/notes/default/queue_task.json"),
    # static files (behind nginx, nginx serves them; without it, web2py does)
    Req("static css", "/notes/static/css/notes.css", digest),
    Req("static js", "/notes/static/js/notes.js", digest),
    Req("static png", "/notes/static/images/notes.png", digest),
    Req("static versioned", "/notes/static/_1.2.3/css/notes.css", digest),
    Req(
        "static 304",
        "/notes/static/css/notes.css",
        digest,
        headers={"If-Modified-Since": CSS_LAST_MODIFIED},
    ),
    Req(
        "static versioned 304",
        "/notes/static/_1.2.3/css/notes.css",
        digest,
        headers={"If-Modified-Since": CSS_LAST_MODIFIED},
    ),
    Req(
        "static later If-Modified-Since",
        "/notes/static/css/notes.css",
        digest,
        headers={"If-Modified-Since": "Thu, 31 Dec 2037 23:59:59 GMT"},
    ),
    Req(
        "static older If-Modified-Since",
        "/notes/static/css/notes.css",
        digest,
        headers={"If-Modified-Since": "Wed, 01 Jan 2020 00:00:00 GMT"},
    ),
    Req("static range", "/notes/static/css/notes.css", digest, headers={"Range": "bytes=0-9"}),
    Req("static missing", "/notes/static/css/nope.css"),
    Req("static folder", "/notes/static/css"),
    Req("static escaping", "/notes/static/../models/db.py"),
    Req("static escaping deeper", "/notes/static/css/../../controllers/default.py"),
    # what does not exist
    Req("unknown app", "/nosuchapp/default/index"),
    Req("unknown controller", "/notes/nosuch/index"),
    Req("unknown function", "/notes/default/nosuch"),
    Req("no view", "/notes/default/api"),
    # errors: a 500 page whose ticket link the release tool follows to the ticket file
    Req("exception in controller", "/probe/default/boom", ticket),
    Req("exception in model", "/broken/default/index", ticket),
    # who the client is: local, behind a proxy (X-Forwarded-For), remote
    Req("client local", "/probe/default/index"),
    Req("client X-Forwarded-For", "/probe/default/index", headers=XFF),
    Req("client X-Forwarded-For unix socket", "/probe/default/index", headers=XFF, remote_addr=""),
    Req(
        "client X-Forwarded-For itself",
        "/probe/default/index",
        headers={"X-Forwarded-For": "127.0.0.1"},
    ),
    Req(
        "client X-Forwarded-For list",
        "/probe/default/index",
        headers={"X-Forwarded-For": f"{CHECK_CLIENT}, 10.0.0.1"},
    ),
    Req("client remote", "/probe/default/index", remote_addr=REMOTE),
    Req("client X-Forwarded-Proto", "/probe/default/index", headers={"X-Forwarded-Proto": "https"}),
    # an app with a DISABLED file: 503 for everyone but local clients; static files still served
    Req("DISABLED local", "/closed/default/index"),
    Req("DISABLED X-Forwarded-For", "/closed/default/index", headers=XFF),
    Req("DISABLED remote", "/closed/default/index", remote_addr=REMOTE),
    Req("DISABLED static remote", "/closed/static/note.txt", remote_addr=REMOTE),
    # sessions: a cookie set, honoured, and a new session without it
    Req("session new", "/probe/default/counter", session_file, clear_cookies=True),
    Req("session honoured", "/probe/default/counter", session_file),
    Req("session without cookie", "/probe/default/counter", session_file, use_cookies=False),
    # admin: the password file the deploy writes (parameters_443.py), its access rules
    Req("admin no password file", "/admin/default/index", https=True, server_port=8443),
    Req(
        "admin insecure remote",
        "/admin/default/index",
        remote_addr=REMOTE,
        setup=write_admin_password,
    ),
    Req("admin insecure X-Forwarded-For", "/admin/default/index", headers=XFF),
    Req(
        "admin login page",
        "/admin/default/index",
        has('name="password"'),
        https=True,
        remote_addr=REMOTE,
    ),
    Req(
        "admin wrong password",
        "/admin/default/index",
        has("invalid password."),
        method="POST",
        data={"password": "wrong"},
        https=True,
        remote_addr=REMOTE,
    ),
    Req(
        "admin login",
        "/admin/default/index",
        method="POST",
        data={"password": ADMIN_PASSWORD},
        https=True,
        remote_addr=REMOTE,
    ),
    Req(
        "admin site",
        "/admin/default/site",
        has("Installed applications", "<li>notes</li>"),
        https=True,
        remote_addr=REMOTE,
    ),
    Req(
        "admin ticket",
        lambda state: state.get("ticket", "/admin/default/ticket/none/none"),
        has("Traceback", "RuntimeError: model boom"),
        https=True,
        remote_addr=REMOTE,
    ),
]


def cookies(r: Response) -> list[str]:
    """Each Set-Cookie: the name and the attributes (not the value)."""
    out = []
    for raw in r.set_cookies:
        name, _, attrs = raw.strip().partition(";")
        parts = sorted(a.strip().lower() for a in attrs.split(";") if a.strip())
        out.append("; ".join([name.split("=")[0], *parts]))
    return sorted(out)


def observe(req: Req, r: Response, root: Path, state: dict) -> dict:
    """What the deploys, nginx and the release tool look at in an answer."""
    return {
        "status": r.status,
        "content-type": (r.headers.get("content-type") or "").replace(" ", "").lower() or None,
        "location": r.headers.get("location"),
        "cache-control": r.headers.get("cache-control"),
        "last-modified": r.headers.get("last-modified"),
        "set-cookie": cookies(r),
        "body": req.marker(r, root, state),
    }


def send(web: StandinProcess, req: Req, root: Path, state: dict) -> dict:
    if req.setup:
        req.setup(root)
    if req.clear_cookies:
        web.cookies.clear()
    data = req.data
    if data:
        data = {k: state.get("formkey", "none") if v is FORMKEY else v for k, v in data.items()}
    r = web.request(
        req.path(state) if callable(req.path) else req.path,
        req.method,
        data=data,
        headers=req.headers,
        remote_addr=req.remote_addr,
        https=req.https,
        server_port=req.server_port,
        use_cookies=req.use_cookies,
    )
    found = re.search(r'name="_formkey" value="([^"]+)"', r.text)
    if found:
        state["formkey"] = found.group(1)
    return observe(req, r, root, state)


# --------------------------------------------------------------------- web2py.py -S -M -R


@dataclass
class Script:
    name: str
    app: str
    code: str
    args: tuple[str, ...] = ()
    banner: bool = True  # the release tool's migrations run without --no_banner


SCRIPTS = [
    # exactly the release tool's migrations: the app's models, then a commit
    Script("migrations", "notes", "db.commit() if 'db' in globals() else None\n"),
    Script(
        "script with args",
        "notes",
        "import sys\ndb.note.insert(title='from script ' + sys.argv[1])\n"
        "print('MARK %s notes' % db(db.note).count())\n",
        ("-A", "x"),
        banner=False,
    ),
    Script("models raise", "broken", "print('MARK never')\n"),
    Script("script raises", "notes", "db.note.insert(title='rolled back')\n1 / 0\n"),
    Script("script exits 3", "notes", "import sys\ndb.note.insert(title='exit 3')\nsys.exit(3)\n"),
    Script("script in unknown app", "nosuchapp", "print('MARK never')\n"),
]


ERROR_LINE = re.compile(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b.*$", re.M)


def run_script(root: Path, script: Script) -> dict:
    path = root / f"script_{script.name.replace(' ', '_')}.py"  # absolute, as the release tool
    path.write_text(script.code)
    before = titles(root)
    result = subprocess.run(
        [sys.executable, "web2py.py", *([] if script.banner else ["--no_banner"]),
         "-S", script.app, "-M", "-R", str(path), *script.args],
        cwd=root, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    outputs = {"stdout": result.stdout, "stderr": result.stderr}
    return {
        "exit": result.returncode,
        "traceback on": [name for name, out in outputs.items() if "Traceback" in out],
        "error": [m.group() for out in outputs.values() for m in ERROR_LINE.finditer(out)][-1:],
        "marks": [line for line in result.stdout.splitlines() if line.startswith("MARK")],
        "new notes": [t for t in titles(root) if t not in before],
    }


def titles(root: Path) -> list[str]:
    with sqlite3.connect(root / "applications/notes/databases/storage.sqlite") as con:
        return [row[0] for row in con.execute("SELECT title FROM note ORDER BY id")]


# ---------------------------------------------------------------------------------- running


def install(dist_zip: Path, dest: Path) -> Path:
    """As the deploys install web2py, plus the apps both distributions are given."""
    root = install_zip(dist_zip, dest)  # as the deploys do
    apps = root / "applications"
    shutil.copytree(NOTES, apps / "notes")  # copy2: the same mtimes (Last-Modified) in both
    for app in ("probe", "closed", "broken"):
        (apps / app / "controllers").mkdir(parents=True)
        (apps / app / "controllers" / "default.py").write_text(PROBE_CONTROLLER)
    (apps / "broken" / "models").mkdir()
    (apps / "broken" / "models" / "db.py").write_text("raise RuntimeError('model boom')\n")
    (apps / "closed" / "DISABLED").write_text("")
    (apps / "closed" / "static").mkdir()
    (apps / "closed" / "static" / "note.txt").write_text("down, but static files are served\n")
    os.utime(apps / "closed" / "static" / "note.txt", (CLOSED_MTIME, CLOSED_MTIME))
    # the deploys create the data folders (web2py.py -S never does)
    for app in ("notes", "broken"):
        for data in ("databases", "sessions", "errors", "cache", "uploads"):
            (apps / app / data).mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """{dist: {request or script name: what was observed}}"""
    builders = {"standin": build_zip, "gluon": build_gluon_zip}  # gluon: wheels in build/wheels
    out: dict[str, dict[str, dict]] = {}
    for dist in DISTS:
        dest = tmp_path_factory.mktemp(dist)
        root = install(builders[dist](dest / "web2py_src.zip"), dest)
        state: dict = {}
        with StandinProcess(root) as web:
            out[dist] = {req.name: send(web, req, root, state) for req in REQUESTS}
        out[dist].update({script.name: run_script(root, script) for script in SCRIPTS})
    return out


# ----------------------------------------------------------------------------------- tests

SESSION_LAYOUT = "stand-in: sessions/<id>; gluon: sessions/<3 hex>/<3 hex>/<id> (cleanup recurses)"
# (request or script name, observed field) -> why the stand-in may answer differently. The same
# list is in web2py_standin/README.md ("Differences from real web2py that remain").
EXPECTED_DIFFERENCES = {
    ("static range", "status"): "no Range in the stand-in (200); nginx serves static files anyway",
    ("static range", "body"): "no Range in the stand-in: the whole file, not the 10 bytes asked",
    ("session new", "body"): SESSION_LAYOUT,
    ("session honoured", "body"): SESSION_LAYOUT,
    ("session without cookie", "body"): SESSION_LAYOUT,
    ("admin insecure X-Forwarded-For", "set-cookie"): "stand-in admin admits X-Forwarded-For",
    ("admin insecure X-Forwarded-For", "body"): "gluon 2.26.1's admin: only HTTPS or local",
    ("script in unknown app", "error"): "web2py asks 'create (y/N)?' (EOFError); stand-in refuses",
}


NAMES = [req.name for req in REQUESTS] + [script.name for script in SCRIPTS]


def test_names_are_unique():
    assert len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_same_answer(observed, name):
    mine, real = observed["standin"][name], observed["gluon"][name]
    found = {key for key in mine if mine[key] != real[key]}
    expected = {key for n, key in EXPECTED_DIFFERENCES if n == name}
    new = {key: f"stand-in {mine[key]!r} / gluon {real[key]!r}" for key in found - expected}
    assert not new, f"{name}: new differences, fix the stand-in or list them: {new}"
    assert not expected - found, f"{name}: listed differences that are gone: {expected - found}"


def test_every_listed_difference_is_in_the_readme():
    names = {name for name, _ in EXPECTED_DIFFERENCES}
    assert names <= set(NAMES)
    section = README.read_text().split("## Differences from real web2py that remain")[1]
    section = section.split("\n## ")[0]
    missing = sorted(name for name in names if f"`{name}`" not in section)
    assert not missing, f"not in {README.name}'s list of differences: {missing}"


def test_what_the_deploys_rely_on(observed):
    """Both distributions, not only alike but right, where the deploys depend on it."""
    for dist in DISTS:
        answers = observed[dist]
        health = answers["health unix socket"]
        assert (health["status"], health["body"], health["set-cookie"]) == (
            200,
            "ok notes 1.0.0",
            [],
        ), dist
        assert answers["add note"]["location"] == "/notes/default/index", dist
        assert answers["api.json"]["body"] == ("notes", "1.0.0", 1, ["Note 1"]), dist
        assert answers["static versioned"]["cache-control"] == "max-age=315360000", dist
        assert answers["static 304"]["status"] == 304, dist
        assert [answers[n]["status"] for n in ("DISABLED local", "DISABLED X-Forwarded-For")] == [
            200,
            503,
        ], dist
        for name in ("exception in controller", "exception in model"):
            assert answers[name]["status"] == 500, dist
            assert answers[name]["body"]["link"].endswith("/<client>.<date>.<uuid>"), dist
        assert [answers[n]["body"][0] for n in ("session new", "session honoured")] == [
            "n=1",
            "n=2",
        ], dist
        assert [answers[n]["exit"] for n in ("migrations", "models raise")] == [0, 1], dist
    # the release tool reads both distributions' tickets (web2py's pickle XML objects too)
    for dist in ("standin", "gluon"):
        mine = observed[dist]["exception in model"]["body"]
        assert mine["traceback ends"] == "RuntimeError: model boom", dist
