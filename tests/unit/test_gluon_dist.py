"""The gluon TEST DISTRIBUTION: web2py's real gluon 2.26.1 from PyPI (web2py_standin.gluon_dist).

The zip is built once per module (the locked wheels are downloaded once into build/wheels and
reused), unzipped as a deploy does, and run the ways a server runs web2py: WSGI through
handlers/wsgihandler.py copied to the root, ``web2py.py -S APP -M -R SCRIPT`` (migrations) and
``web2py.py -K APP`` (schedulers).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from operations.local.passwords import web2py_parameters_for
from web2py_standin import FIXED_DATE_TIME
from web2py_standin.driver import StandinProcess, install_zip
from web2py_standin.gluon_dist import (
    GLUON_DIST_VERSION,
    PATCHES,
    Patch,
    build_gluon_zip,
    fetch_wheels,
)

REPO = Path(__file__).resolve().parents[2]
NOTES = REPO / "examples" / "apps" / "notes"
NON_LOCAL = "203.0.113.7"  # TEST-NET-3, never this host
TIMEOUT = 60  # seconds, for every subprocess
DATA_DIRS = ("databases", "sessions", "errors", "cache", "uploads")  # made by the deploys

# An app with web2py's scheduler in its models, as the deploys' web2py-scheduler@<app> runs it.
TASKS_MODEL = """\
from gluon.scheduler import Scheduler

db = DAL('sqlite://storage.sqlite')
db.define_table('done', Field('note'))


def write_row(note):
    db.done.insert(note=note)
    db.commit()
    return 'wrote ' + note


# use_spawn: tasks run in a fresh interpreter, not a fork of the worker, which holds SQLite
# connections (a fork inherits their lock state and "database is locked" follows, sometimes)
scheduler = Scheduler(db, tasks=dict(write_row=write_row), heartbeat=1, use_spawn=True)
"""


@pytest.fixture(scope="module")
def dist_zip(tmp_path_factory) -> Path:
    return build_gluon_zip(tmp_path_factory.mktemp("dist") / "web2py_src.zip")


@pytest.fixture(scope="module")
def root(dist_zip, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("srv")
    root = install_zip(dist_zip, dest)  # as the deploys do
    shutil.copytree(NOTES, root / "applications" / "notes")
    tasks = root / "applications" / "tasks"
    (tasks / "models").mkdir(parents=True)
    (tasks / "models" / "db.py").write_text(TASKS_MODEL)
    # web2py.py -S/-K never create an app's folders (only a web request does); the deploys
    # create the data folders (or link them to shared/), so here too
    for app, data in itertools.product((tasks, root / "applications" / "notes"), DATA_DIRS):
        (app / data).mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def server(root):
    with StandinProcess(root) as process:
        yield process


@pytest.fixture
def web(server):
    server.cookies.clear()
    return server


def web2py(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``python3 web2py.py ARGS`` in the web2py root, as the release tool and systemd run it."""
    return subprocess.run(
        [sys.executable, "web2py.py", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def run_script(root: Path, app: str, code: str, *args: str) -> subprocess.CompletedProcess:
    script = root / f"script_{hashlib.sha256(code.encode()).hexdigest()[:8]}.py"
    script.write_text(textwrap.dedent(code))
    return web2py(root, "--no_banner", "-S", app, "-M", "-R", script.name, *args)


def formkey(page: str) -> str:
    return re.search(r'name="_formkey" value="([^"]+)"', page).group(1)


def titles(root: Path) -> list[str]:
    with sqlite3.connect(root / "applications/notes/databases/storage.sqlite") as con:
        return [row[0] for row in con.execute("SELECT title FROM note ORDER BY id")]


def multipart(fields: dict[str, str], name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "----gluon-dist-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"'
        "\r\nContent-Type: text/plain\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


# ------------------------------------------------------------------------------ the zip


def test_zip_is_reproducible(dist_zip, tmp_path):
    out = tmp_path / "cli.zip"
    result = subprocess.run(
        [sys.executable, "-m", "web2py_standin", "build", "--framework", "gluon", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    )
    digest = hashlib.sha256(dist_zip.read_bytes()).hexdigest()
    assert result.stdout.strip() == f"{out} sha256={digest}"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_zip_layout(dist_zip):
    with zipfile.ZipFile(dist_zip) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        version = zf.read("web2py/VERSION").decode()
        readme = zf.read("web2py/README.md").decode()
        handler = zf.read("web2py/handlers/wsgihandler.py").decode()
    assert names == sorted(names)
    assert all(n.startswith("web2py/") for n in names)
    for required in (
        "web2py/web2py.py",
        "web2py/handlers/wsgihandler.py",
        "web2py/gluon/main.py",
        "web2py/gluon/scheduler.py",
        "web2py/gluon/contrib/appconfig.py",
        "web2py/gluon/packages/dal/pydal/__init__.py",
        "web2py/gluon/packages/yatl/yatl/__init__.py",
        "web2py/applications/__init__.py",
        "web2py/applications/welcome/private/appconfig.ini",
        "web2py/applications/welcome/databases/",
        "web2py/applications/admin/models/access.py",
        "web2py/ABOUT",
        "web2py/LICENSE",
        "web2py/routes.example.py",
    ):
        assert required in names, required
    assert "web2py/wsgihandler.py" not in names  # installers copy it, as with web2py
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or ".dist-info" in n]
    # gluon.main takes the last word of VERSION as web2py_version: the label must come first
    assert version == GLUON_DIST_VERSION + "\n"
    assert version.split()[-1] == "2.26.1-stable+timestamp.2020.01.01.00.00.00"
    assert "TEST DISTRIBUTION" in version and "TEST DISTRIBUTION" in readme
    assert "application = gluon.main.wsgibase" in handler  # web2py's own handler
    for info in infos:
        assert info.date_time == FIXED_DATE_TIME
        assert info.external_attr >> 16 == (0o040755 if info.is_dir() else 0o100644), info


def test_framework_is_the_wheels_bytes_but_the_patched_files(dist_zip):
    wheels = fetch_wheels()  # cached by the build: no download here
    patched = {f"web2py/{p.path}" for p in PATCHES}
    places = {
        "web2py-gluon": lambda n: None if n.startswith(("applications/", "web2py_gluon-")) else n,
        "pydal": lambda n: f"gluon/packages/dal/{n}" if n.startswith("pydal/") else None,
        "yatl": lambda n: f"gluon/packages/yatl/{n}" if n.startswith("yatl/") else None,
    }
    compared = 0
    with zipfile.ZipFile(dist_zip) as dist:
        for project, place in places.items():
            with zipfile.ZipFile(wheels[project]) as wheel:
                for info in wheel.infolist():
                    target = place(info.filename)
                    if target is None or "__pycache__" in target:
                        continue
                    name = f"web2py/{target}"
                    if name in patched:
                        assert "pyinfra-web2py build-time patch" in dist.read(name).decode()
                    else:
                        assert dist.read(name) == wheel.read(info), name
                        compared += 1
    assert compared > 300


def test_patch_refuses_another_file():
    patch = Patch("gluon/x.py", hashlib.sha256(b"a = 1\n").hexdigest(), "why", "a = 1", "a = 2")
    assert patch.apply(b"a = 1\n") == b"a = 2\n"
    with pytest.raises(RuntimeError, match="not the file this patch was written for"):
        patch.apply(b"a = 1\nb = 2\n")


# ------------------------------------------------------------------------- serving


def test_handler_loads_bundled_pydal(server, root):
    meta = server.meta()
    assert meta["cwd"] == str(root)
    assert meta["pydal"] == str(root / "gluon/packages/dal/pydal/__init__.py")
    # web2py's gluon (unlike the stand-in) puts '' first on sys.path once loaded
    assert meta["sys_path0"] in ("", str(root))
    for name in ("deposit", "logs", "site-packages"):  # created by gluon.main at import
        assert (root / name).is_dir()


def test_welcome_page(web, root):
    r = web.get("/welcome/default/index")
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "Welcome to web2py!" in r.text
    assert '<div class="w2p_flash">Hello World</div>' in r.text
    assert "gluon 2.26.1-stable+timestamp" in r.text  # request.env.web2py_version from VERSION
    # its models ran: AppConfig read private/appconfig.ini, Auth defined its tables
    with sqlite3.connect(root / "applications/welcome/databases/storage.sqlite") as con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
    assert {"auth_user", "auth_group", "auth_membership"} <= tables
    login = web.get("/welcome/default/user/login")
    assert login.status == 200 and 'name="password"' in login.text  # gluon.tools Auth form


def test_notes_index_add_and_database(web, root):
    r = web.get("/notes/default/index")
    assert r.status == 200 and "<title>Notes</title>" in r.text
    assert "No notes yet." in r.text
    sid = web.cookies["session_id_notes"]
    # web2py keeps session files in two levels of subfolders: sessions/<3 hex>/<3 hex>/<id>
    (stored,) = (root / "applications/notes/sessions").glob(f"*/*/{sid}")  # formkey saved
    r = web.post(
        "/notes/default/index",
        {"_formkey": formkey(r.text), "title": "Buy <milk>", "body": "two litres " * 20},
    )
    assert (r.status, r.headers["location"]) == (303, "/notes/default/index")
    page = web.get("/notes/default/index").text
    assert '<div class="flash" id="flash">Note added</div>' in page
    assert '<a href="/notes/default/show/1">Buy &lt;milk&gt;</a>' in page
    assert "two litres two litres" in page and "\u2026" in page  # summarize() from modules/
    assert titles(root) == ["Buy <milk>"]
    databases = root / "applications/notes/databases"
    assert len(list(databases.glob("*_note.table"))) == 1
    # a forged form key is refused, an empty title is not stored
    assert web.post("/notes/default/index", {"_formkey": "forged", "title": "x"}).status == 303
    key = formkey(web.get("/notes/default/index").text)
    r = web.post("/notes/default/index", {"_formkey": key, "title": "   "})
    assert r.status == 200 and "A title is required" in r.text
    assert titles(root) == ["Buy <milk>"]


def test_notes_api_feed_health(web, root):
    key = formkey(web.get("/notes/default/index").text)
    web.post("/notes/default/index", {"_formkey": key, "title": "Feed me", "body": "rss body"})
    r = web.get("/notes/default/api.json", https=True, remote_addr=NON_LOCAL)
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    assert "set-cookie" not in r.headers  # session.forget()
    data = r.json()
    assert (data["app"], data["count"]) == ("notes", len(titles(root)))
    assert data["notes"][-1]["title"] == "Feed me"
    assert "invalid view (default/api.html)" in web.get("/notes/default/api").text
    channel = ET.fromstring(web.get("/notes/default/feed.rss").body).find("channel")
    link = channel.find("item").findtext("link")
    page = web.get(link.removeprefix("http://localhost"))
    assert page.status == 200 and "<h1>Feed me</h1>" in page.text
    assert web.get("/notes/default/show/99999").status == 303
    version = re.search(r"VERSION = '([^']+)'", (NOTES / "modules/notes_util.py").read_text())
    r = web.get("/notes/default/health", remote_addr=NON_LOCAL)
    assert (r.status, r.text) == (200, f"ok notes {version.group(1)}")


def test_notes_upload_download_static_translation(web, root):
    key = formkey(web.get("/notes/default/index").text)
    body, ctype = multipart(
        {"_formkey": key, "title": "With file", "body": ""}, "attachment", "hello.txt", b"bytes\n"
    )
    assert web.post("/notes/default/index", body, content_type=ctype).status == 303
    uploads = list((root / "applications/notes/uploads").glob("note.attachment.*.txt"))
    assert len(uploads) == 1 and uploads[0].read_bytes() == b"bytes\n"
    index = web.get("/notes/default/index").text
    note_id = re.search(r'/notes/default/show/(\d+)">With file<', index).group(1)
    show = web.get(f"/notes/default/show/{note_id}").text
    r = web.get(re.search(r'href="(/notes/default/download/[^"]+)"', show).group(1))
    assert r.status == 200 and r.body == b"bytes\n"
    assert 'filename="hello.txt"' in r.headers["content-disposition"]
    css = web.get("/notes/static/css/notes.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    png = web.get("/notes/static/images/notes.png")
    assert png.body.startswith(b"\x89PNG\r\n")
    fr = web.get("/notes/default/index", headers={"Accept-Language": "fr-FR,fr;q=0.8"})
    assert "Ajouter la note" in fr.text


# ---------------------------------------------------------------------------- admin


def test_admin_password_login(web, root):
    r = web.get("/admin/default/index", https=True, server_port=8443)
    assert (r.status, r.text) == (200, "admin disabled because unable to access password file")
    # what deploys/install_web2py.py writes: pbkdf2(100000,64,sha512)$salt$hash
    (root / "parameters_443.py").write_text(web2py_parameters_for("s3cret pw", None))
    assert "pbkdf2(100000,64,sha512)$" in (root / "parameters_443.py").read_text()
    r = web.get("/admin/default/index", remote_addr=NON_LOCAL)
    assert (r.status, r.text) == (200, "Admin is disabled because insecure channel")
    r = web.get("/admin/default/site", https=True, remote_addr=NON_LOCAL)
    assert r.headers["location"] == "/admin/default/index?send=%2Fadmin%2Fdefault%2Fsite"
    r = web.post("/admin/default/index", {"password": "wrong"}, https=True, remote_addr=NON_LOCAL)
    assert r.status == 200 and "invalid password." in r.text
    r = web.post(
        "/admin/default/index", {"password": "s3cret pw"}, https=True, remote_addr=NON_LOCAL
    )
    assert (r.status, r.headers["location"]) == (303, "/admin/default/site")
    r = web.get("/admin/default/site", https=True, remote_addr=NON_LOCAL)
    assert r.status == 200 and "Installed applications" in r.text
    assert "<li>notes</li>" in r.text and "<li>welcome</li>" in r.text


def test_admin_lockout(web, root):
    (root / "parameters_443.py").write_text(web2py_parameters_for("s3cret pw", None))
    attacker = dict(https=True, remote_addr="198.51.100.99")
    texts = [web.post("/admin/default/index", {"password": "no"}, **attacker).text for _ in "12345"]
    assert "one more login attempt" in texts[3]
    assert "too many invalid login attempts" in texts[4]
    assert web.post("/admin/default/index", {"password": "s3cret pw"}, **attacker).status == 403
    assert "198.51.100.99 5 " in (root / "applications/admin/private/hosts.deny").read_text()


# ------------------------------------------------------------------------ web2py.py


def test_web2py_py_version_and_script_with_models(root):
    result = web2py(root, "--version")
    assert " ".join(result.stdout.split()) == GLUON_DIST_VERSION  # argparse wraps it
    result = run_script(
        root,
        "notes",
        """
        import sys
        db.note.insert(title='from-script-' + sys.argv[1])
        print('folder=%s count=%s' % (request.folder, db(db.note).count()))
        """,
        "-A",
        "x",
    )
    assert result.returncode == 0, result.stderr
    assert f"folder={root / 'applications' / 'notes'}" in result.stdout
    assert "from-script-x" in titles(root)  # committed after the script


def test_web2py_py_exit_codes(root):
    # a failing model fails the command (the release tool's migrations rely on it) ...
    broken = root / "applications" / "broken"
    (broken / "models").mkdir(parents=True)
    (broken / "models" / "db.py").write_text("raise RuntimeError('model boom')\n")
    result = run_script(root, "broken", "print('never')")
    assert result.returncode == 1 and "model boom" in result.stderr
    shutil.rmtree(broken)
    # ... but a failing -R script only prints its traceback, on stdout, rolls back, exits 0
    result = run_script(root, "notes", "db.note.insert(title='rolled back'); 1 / 0")
    assert result.returncode == 0 and "ZeroDivisionError" in result.stdout
    assert "rolled back" not in titles(root)
    assert web2py(root, "--no_banner", "-K", "nosuchapp").returncode != 0


def test_gluon_tools_auth_key_and_crypt(root):
    result = run_script(
        root,
        "welcome",
        """
        from gluon.tools import Auth, Mail
        from gluon.validators import CRYPT
        key = Auth.get_or_create_key()
        hashed = str(CRYPT()('pw')[0])
        assert CRYPT()('pw')[0] == hashed and CRYPT()('other')[0] != hashed
        print('key=%s hash=%s' % (key, hashed))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    key = (root / "applications/welcome/private/auth.key").read_text()
    assert re.fullmatch(r"sha512:[0-9a-f-]{36}", key)
    assert f"key={key} hash=pbkdf2(1000,20,sha512)$" in result.stdout


def test_scheduler_runs_a_queued_task(root):
    queued = run_script(
        root,
        "tasks",
        "print(scheduler.queue_task('write_row', pvars=dict(note='from-scheduler'), "
        "immediate=True))",
    )
    assert queued.returncode == 0 and "'errors': {}" in queued.stdout, queued.stdout
    log = root / "scheduler.log"
    with open(log, "wb") as out:
        # exactly what web2py-scheduler@<app>.service runs
        proc = subprocess.Popen(
            [sys.executable, "web2py.py", "--no_gui", "--no_banner", "-K", "tasks"],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 40
        done: list = []
        status: list = []
        while status != [("COMPLETED",)] and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            with sqlite3.connect(root / "applications/tasks/databases/storage.sqlite") as con:
                done = con.execute("SELECT note FROM done").fetchall()
                status = con.execute("SELECT status FROM scheduler_task").fetchall()
    finally:
        proc.terminate()  # only the process started here, by its PID
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with sqlite3.connect(root / "applications/tasks/databases/storage.sqlite") as con:
        runs = con.execute("SELECT status, traceback FROM scheduler_run").fetchall()
    assert done == [("from-scheduler",)], (log.read_text(), runs)
    assert status == [("COMPLETED",)]
