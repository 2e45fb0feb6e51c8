"""Tests of the web2py TEST STAND-IN (web2py_standin): the zip and its behaviour."""

from __future__ import annotations

import hashlib
import pickle
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from web2py_standin import FIXED_DATE_TIME, build_zip
from web2py_standin.driver import StandinProcess

REPO = Path(__file__).resolve().parents[2]
NON_LOCAL = "203.0.113.7"  # TEST-NET-3, never this host

PROBE_FILES = {
    "models/db.py": """
        db = DAL('sqlite://storage.sqlite')
        db.define_table('thing', Field('name'))
    """,
    "models/menu.py": """
        response.title = 'Probe'
    """,
    "controllers/default.py": """
        import json as _json
        from probe_mod import VALUE
        import probe_pkg.inner

        def index():
            return dict(items=['a<b', 'c'], html=XML('<b>bold</b>'), empty=[])

        def counter():
            session.counter = (session.counter or 0) + 1
            return 'counter=%s' % session.counter

        def peek():
            return 'counter=%s' % session.counter

        def forgetful():
            session.forget(response)
            session.counter = 99
            return 'forgotten'

        def flashy():
            session.flash = 'saved!'
            redirect(URL('index'))

        def add():
            return 'added %s' % db.thing.insert(name=request.vars.name)

        def count():
            return 'count=%s' % db(db.thing).count()

        def boom():
            db.thing.insert(name='doomed')
            return 1 / 0

        def data():
            return dict(answer=42, when=request.now.replace(microsecond=0))

        def info():
            response.headers['Content-Type'] = 'application/json'
            return _json.dumps(dict(
                vars=request.vars, get_vars=request.get_vars, post_vars=request.post_vars,
                args=list(request.args), extension=request.extension,
                folder=request.folder, is_https=request.is_https,
                is_local=request.is_local, client=request.client,
                application=request.application, controller=request.controller,
                function=request.function, url=URL('info', args=['x y'], vars=dict(q=1)),
                static=URL('static', 'css/p.css')))

        def hello():
            return T('Hello %s', ('world',))

        def modules():
            return '%s %s' % (VALUE, probe_pkg.inner.NAME)

        def teapot():
            raise HTTP(418, 'short and stout', **{'X-Probe': 'yes'})

        def secret(x):
            return 'never exposed'

        def __private():
            return 'never exposed'
    """,
    "modules/probe_mod.py": "VALUE = 'module-value'\n",
    "modules/probe_pkg/__init__.py": "",
    "modules/probe_pkg/inner.py": "NAME = 'inner'\n",
    "languages/default.py": "{'!langcode!': 'en-us'}\n",
    "languages/fr.py": "{'Hello %s': 'Bonjour %s'}\n",
    "views/layout.html": """
        <html><title>{{=response.title}}</title>
        <div class="flash">{{=response.flash or ''}}</div>
        {{include}}
        </html>
    """,
    "views/default/index.html": """
        {{extend 'layout.html'}}
        <ul>{{for item in items:}}{{include 'partials/deep/_item.html'}}{{pass}}</ul>
        {{if empty:}}<p>full</p>{{elif items:}}<p>has items</p>{{else:}}<p>none</p>{{pass}}
        {{=html}}
        {{
        total = 0
        for item in items:
            total += len(item)
        pass
        }}<p>total={{=total}}</p>
    """,
    "views/partials/deep/_item.html": "<li>{{=item}}</li>",
    "views/generic.json": """
        {{
        from gluon.serializers import json
        response.write(json(response._vars), escape=False)
        response.headers['Content-Type'] = 'application/json'
        }}
    """,
    "static/css/p.css": "p { color: red }\n",
}


def write_probe_app(root: Path) -> None:
    app = root / "applications" / "probe"
    for name, text in PROBE_FILES.items():
        path = app / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def install(zip_path: Path, dest: Path) -> Path:
    """Unzip like an installer and copy the handler to the web2py root."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    root = dest / "web2py"
    (root / "wsgihandler.py").write_bytes((root / "handlers" / "wsgihandler.py").read_bytes())
    return root


def crypt(
    password: str, salt: str = "0123456789abcdef", iterations: int = 1000, keylen: int = 20
) -> str:
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt.encode(), iterations, keylen)
    return f"pbkdf2({iterations},{keylen},sha512)${salt}${digest.hex()}"


@pytest.fixture(scope="module")
def standin_zip(tmp_path_factory) -> Path:
    return build_zip(tmp_path_factory.mktemp("dist") / "web2py_src.zip")


@pytest.fixture(scope="module")
def root(standin_zip, tmp_path_factory) -> Path:
    root = install(standin_zip, tmp_path_factory.mktemp("srv"))
    write_probe_app(root)
    return root


@pytest.fixture(scope="module")
def server(root):
    with StandinProcess(root) as process:
        yield process


@pytest.fixture
def web(server):
    server.cookies.clear()
    return server


# --------------------------------------------------------------------- the zip


def test_zip_layout(standin_zip):
    with zipfile.ZipFile(standin_zip) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        version = zf.read("web2py/VERSION").decode()
        readme = zf.read("web2py/README.md").decode()
        license_text = zf.read("web2py/LICENSE").decode()
        handler = zf.read("web2py/handlers/wsgihandler.py").decode()
    assert names == sorted(names)
    assert all(n.startswith("web2py/") for n in names)
    for required in (
        "web2py/handlers/wsgihandler.py",
        "web2py/gluon/__init__.py",
        "web2py/gluon/main.py",
        "web2py/gluon/packages/dal/pydal/__init__.py",
        "web2py/applications/__init__.py",
        "web2py/applications/welcome/controllers/default.py",
        "web2py/applications/admin/models/access.py",
        "web2py/routes.example.py",
        "web2py/LICENSE",
        "web2py/ABOUT",
        "web2py/web2py.py",
        "web2py/applications/welcome/databases/",
    ):
        assert required in names
    assert "web2py/wsgihandler.py" not in names  # installers copy it, as with web2py
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".gitkeep"))]
    assert re.fullmatch(
        r"Version 3\.0\.99-stand-in\+test \(TEST STAND-IN: not web2py; stands for web2py 3\.x\)\n",
        version,
    )
    assert "TEST STAND-IN" in readme and "NOT web2py" in readme
    assert "stand-in" in license_text.lower()
    assert "application = gluon.main.wsgibase" in handler
    for info in infos:
        assert info.date_time == FIXED_DATE_TIME
        mode = info.external_attr >> 16
        if info.is_dir():
            assert stat.S_ISDIR(mode) and stat.S_IMODE(mode) == 0o755, info.filename
        else:
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o644, info.filename


def test_zip_bundles_build_machine_pydal(standin_zip):
    import pydal

    source = Path(pydal.__file__).parent
    with zipfile.ZipFile(standin_zip) as zf:
        bundled = zf.read("web2py/gluon/packages/dal/pydal/base.py")
    assert bundled == (source / "base.py").read_bytes()


def test_zip_is_reproducible(standin_zip, tmp_path):
    again = build_zip(tmp_path / "a" / "again.zip")
    assert again.read_bytes() == standin_zip.read_bytes()
    out = tmp_path / "cli.zip"
    result = subprocess.run(
        [sys.executable, "-m", "web2py_standin", "build", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    digest = hashlib.sha256(standin_zip.read_bytes()).hexdigest()
    assert result.stdout.strip() == f"{out} sha256={digest}"
    assert out.read_bytes() == standin_zip.read_bytes()


# ------------------------------------------------------------ handler loading


def test_handler_works_only_from_the_root(root):
    result = subprocess.run(
        [sys.executable, "-c", "import wsgihandler"],
        cwd=root / "handlers",
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Running from the wrong folder" in result.stderr


def test_bundled_pydal_is_used_without_site_packages(root):
    # python -S: no site-packages, as with a uWSGI python plugin without the venv
    with StandinProcess(root, python_args=("-S",)) as process:
        meta = process.meta()
        page = process.get("/welcome/default/index")
    assert meta["cwd"] == str(root)
    assert meta["sys_path0"] == str(root)
    assert meta["pydal"] == str(root / "gluon/packages/dal/pydal/__init__.py")
    assert page.status == 200
    for name in ("deposit", "logs", "site-packages"):  # created by gluon.main, like web2py
        assert (root / name).is_dir()


# ------------------------------------------------------------------- routing


def test_routes_py_default_application(root):
    routes = root / "routes.py"
    routes.write_text("default_application = 'probe'\n")
    try:
        with StandinProcess(root) as process:
            assert "<title>Probe</title>" in process.get("/").text
        routes.write_text("routers = dict(BASE=dict(default_application='probe'))\n")
        # not implemented: the stand-in refuses to start
        with (
            StandinProcess(root) as process,
            pytest.raises(RuntimeError, match="stand-in process died"),
        ):
            process.get("/")
    finally:
        routes.unlink()


def test_welcome_page(web):
    r = web.get("/welcome/default/index")
    assert r.status == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "Welcome to web2py!" in r.text
    assert '<div class="w2p_flash">Hello World</div>' in r.text  # response.flash
    for short in ("/welcome", "/welcome/", "/welcome/default"):  # default/index
        assert "Welcome to web2py!" in web.get(short).text


def test_root_redirects_to_welcome_when_default_app_missing(web):
    r = web.get("/")
    assert r.status == 303
    assert r.headers["location"] == "/welcome/default/index"


def test_not_found(web):
    r = web.get("/welcome/default/nope")
    assert (r.status, r.text) == (
        404,
        "<html><body><h1>invalid function (default/nope)</h1></body></html>",
    )
    assert web.get("/welcome/nope/index").text.count("invalid controller (nope/index)") == 1
    assert web.get("/welcome/nope/index").status == 404
    r = web.get("/no_such_app/default/index")
    assert (r.status, r.headers["web2py_error"]) == (404, "invalid application")
    assert web.get("/probe/default/secret").status == 404  # takes arguments
    assert web.get("/probe/default/__private").status == 404
    assert web.get("/bad-app!/x").status == 400


def test_disabled_app(web, root):
    disabled = root / "applications" / "probe" / "DISABLED"
    disabled.write_text("")
    try:
        r = web.get("/probe/default/index", remote_addr=NON_LOCAL)
        assert r.status == 503 and "Temporarily down for maintenance" in r.text
        # a proxied request from elsewhere is not local either
        r = web.get("/probe/default/index", headers={"X-Forwarded-For": NON_LOCAL})
        assert r.status == 503
        # web2py ignores DISABLED for local clients
        assert web.get("/probe/default/index").status == 200
        # static files are still served
        assert web.get("/probe/static/css/p.css", remote_addr=NON_LOCAL).status == 200
        page = root / "applications" / "probe" / "static" / "503.html"
        page.write_text("<p>back soon</p>")
        try:
            r = web.get("/probe/default/index", remote_addr=NON_LOCAL)
            assert (r.status, r.text) == (503, "<p>back soon</p>")
        finally:
            page.unlink()
    finally:
        disabled.unlink()
    assert web.get("/probe/default/index", remote_addr=NON_LOCAL).status == 200


def test_static_files(web):
    r = web.get("/probe/static/css/p.css")
    assert r.status == 200
    assert r.text == "p { color: red }\n"
    assert r.headers["content-type"] == "text/css; charset=utf-8"
    assert "set-cookie" not in r.headers
    r304 = web.get(
        "/probe/static/css/p.css", headers={"If-Modified-Since": r.headers["last-modified"]}
    )
    assert r304.status == 304
    versioned = web.get("/probe/static/_1.2.3/css/p.css")
    assert versioned.status == 200 and versioned.headers["cache-control"] == "max-age=315360000"
    assert web.get("/probe/static/css/missing.css").status == 404
    assert web.get("/probe/static/../models/db.py").status == 400
    assert web.get("/probe/static/css/../../models/db.py").status == 400
    assert web.get("/probe/static/%2e%2e/models/db.py").status == 400
    head = web.request("/probe/static/css/p.css", method="HEAD")
    assert head.status == 200 and head.body == b""


# ------------------------------------------------------------ request/response


def test_request_attributes(web, root):
    r = web.post(
        "/probe/default/info.json/a/b?x=1&y=2",
        data={"y": "3", "z": "4"},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"},
    )
    info = r.json()
    assert r.headers["content-type"] == "application/json"
    assert info["args"] == ["a", "b"] and info["extension"] == "json"
    assert info["get_vars"] == {"x": "1", "y": "2"}
    assert info["post_vars"] == {"y": "3", "z": "4"}
    assert info["vars"]["x"] == "1" and info["vars"]["z"] == "4"
    assert sorted(info["vars"]["y"]) == ["2", "3"]
    assert info["folder"] == str(root / "applications" / "probe") + "/"
    assert info["is_https"] is True
    assert info["client"] == "198.51.100.1" and info["is_local"] is False
    assert (info["application"], info["controller"], info["function"]) == (
        "probe",
        "default",
        "info",
    )
    assert info["url"] == "/probe/default/info.json/x%20y?q=1"
    assert info["static"] == "/probe/static/css/p.css"
    plain = web.get("/probe/default/info").json()
    assert plain["is_https"] is False and plain["is_local"] is True
    assert web.get("/probe/default/info", https=True).json()["is_https"] is True


def test_http_exception_passes_status_and_headers(web):
    r = web.get("/probe/default/teapot")
    assert (r.status, r.text, r.headers["x-probe"]) == (418, "short and stout", "yes")


def test_views(web):
    r = web.get("/probe/default/index")
    assert r.status == 200
    text = r.text
    assert "<title>Probe</title>" in text  # extend + layout
    assert "<ul><li>a&lt;b</li><li>c</li></ul>" in text  # for + include at depth + escaping
    assert "<p>has items</p>" in text and "<p>full</p>" not in text and "<p>none</p>" not in text
    assert "<b>bold</b>" in text  # XML is not escaped
    assert "<p>total=4</p>" in text  # multi-line code block


def test_generic_json_view(web):
    r = web.get("/probe/default/data.json")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert data["answer"] == 42 and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", data["when"])
    # no views/generic.xml in the probe app: web2py answers "invalid view"
    r = web.get("/probe/default/data.xml")
    assert "invalid view (default/data.xml)" in r.text
    # welcome only allows generic views to local clients (like web2py's welcome)
    assert web.get("/welcome/default/index.json").json() == {"message": "Welcome to web2py!"}
    remote = web.get("/welcome/default/index.json", remote_addr=NON_LOCAL)
    assert "invalid view" in remote.text


def test_translation(web):
    assert web.get("/probe/default/hello").text == "Hello world"
    fr = web.get("/probe/default/hello", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.8"})
    assert fr.text == "Bonjour world"
    en = web.get("/probe/default/hello", headers={"Accept-Language": "en,fr;q=0.5"})
    assert en.text == "Hello world"  # en matches default.py's en-us
    # like web2py, the header order decides and q values are ignored
    q = web.get("/probe/default/hello", headers={"Accept-Language": "en-GB;q=0.1,fr;q=0.9"})
    assert q.text == "Hello world"
    assert (
        web.get("/probe/default/hello", headers={"Accept-Language": "fr-CA"}).text
        == "Bonjour world"
    )


def test_app_modules_are_importable(web):
    assert web.get("/probe/default/modules").text == "module-value inner"


# -------------------------------------------------------------------- sessions


def test_sessions(web, root):
    sessions = root / "applications" / "probe" / "sessions"
    before = set(sessions.iterdir())
    r = web.get("/probe/default/peek")
    assert r.text == "counter=None"
    cookie = r.headers["set-cookie"]
    assert re.fullmatch(
        r"session_id_probe=127\.0\.0\.1-[0-9a-f-]{36}; HttpOnly; Path=/; "
        r"SameSite=Lax",
        cookie,
    )
    assert set(sessions.iterdir()) == before  # unchanged session: no file
    assert web.get("/probe/default/counter").text == "counter=1"
    sid = web.cookies["session_id_probe"]
    session_file = sessions / sid
    assert session_file.is_file()
    assert pickle.loads(session_file.read_bytes())["counter"] == 1
    mtime = session_file.stat().st_mtime_ns
    assert web.get("/probe/default/counter").text == "counter=2"
    assert web.cookies["session_id_probe"] == sid
    assert web.get("/probe/default/peek").text == "counter=2"
    assert session_file.stat().st_mtime_ns != mtime
    r = web.get("/probe/default/forgetful")
    assert "set-cookie" not in r.headers
    assert web.get("/probe/default/peek").text == "counter=2"
    # HTTPS admin sessions are secure cookies; a new client gets a new session
    assert web.get("/probe/default/peek", use_cookies=False).text == "counter=None"


def test_session_flash_survives_redirect(web):
    r = web.get("/probe/default/flashy")
    assert r.status == 303 and r.headers["location"] == "/probe/default/index"
    assert '<div class="flash">saved!</div>' in web.get("/probe/default/index").text
    assert '<div class="flash"></div>' in web.get("/probe/default/index").text


# ------------------------------------------------------------------ DAL, errors


def test_dal_writes_files_and_commits(web, root):
    databases = root / "applications" / "probe" / "databases"
    assert web.get("/probe/default/add?name=one").text.startswith("added ")
    assert (databases / "storage.sqlite").is_file()
    assert list(databases.glob("*_thing.table"))
    with sqlite3.connect(databases / "storage.sqlite") as con:
        assert ("one",) in con.execute("SELECT name FROM thing").fetchall()


def test_error_ticket_and_rollback(web, root):
    count = web.get("/probe/default/count").text
    r = web.get("/probe/default/boom")
    assert r.status == 500
    match = re.search(r"Ticket issued: <a href=\"/admin/default/ticket/(probe/[^\"]+)\"", r.text)
    assert match and "<h1>Internal error</h1>" in r.text
    ticket = match.group(1)
    assert r.headers["web2py_error"] == f"ticket {ticket}"
    assert re.fullmatch(
        r"probe/127\.0\.0\.1\.\d{4}-\d\d-\d\d\.\d\d-\d\d-\d\d\.[0-9a-f-]{36}", ticket
    )
    data = pickle.loads(
        (root / "applications" / ticket.replace("probe/", "probe/errors/")).read_bytes()
    )
    assert "ZeroDivisionError" in data["traceback"]
    assert data["layer"].endswith("applications/probe/controllers/default.py")
    assert web.get("/probe/default/count").text == count  # the insert was rolled back


# ----------------------------------------------------------------------- admin


def test_admin_needs_password_file(web, root):
    assert not (root / "parameters_8443.py").exists()
    r = web.get("/admin/default/index", https=True, server_port=8443)
    assert (r.status, r.text) == (200, "admin disabled because unable to access password file")


def test_admin_refuses_insecure_channel(web):
    r = web.get("/admin/default/index", remote_addr=NON_LOCAL)
    assert (r.status, r.text) == (200, "Admin is disabled because insecure channel")


def test_admin_login(web, root):
    (root / "parameters_443.py").write_text(f'password="{crypt("s3cret")}"\n')
    (root / "parameters_80.py").write_text(f'password="{crypt("other")}"\n')
    r = web.get("/admin/default/index", https=True)
    assert r.status == 200 and 'name="password"' in r.text
    assert "; Secure" in r.headers["set-cookie"]
    # unauthenticated pages redirect to the login
    r = web.get("/admin/default/site", https=True)
    assert r.status == 303
    assert r.headers["location"] == "/admin/default/index?send=%2Fadmin%2Fdefault%2Fsite"
    # the password of the port the request came in on (443 on HTTPS behind nginx)
    r = web.post("/admin/default/index", {"password": "other"}, https=True)
    assert r.status == 200 and "invalid password" in r.text
    r = web.post("/admin/default/index", {"password": "s3cret"}, https=True)
    assert (r.status, r.headers["location"]) == (303, "/admin/default/site")
    r = web.get("/admin/default/site", https=True)
    assert r.status == 200 and "Installed applications" in r.text
    assert "<li>probe</li>" in r.text and "<li>welcome</li>" in r.text
    assert web.get("/admin/default/index", https=True).headers["location"] == "/admin/default/site"
    web.cookies.clear()
    r = web.post("/admin/default/index", {"password": "other"}, server_port=80)
    assert r.status == 303  # local plain-HTTP access reads parameters_80.py


def test_admin_ticket_view(web, root):
    (root / "parameters_443.py").write_text(f'password="{crypt("s3cret")}"\n')
    ticket = re.search(r"ticket/(probe/[^\"]+)\"", web.get("/probe/default/boom").text).group(1)
    web.post("/admin/default/index", {"password": "s3cret"}, https=True)
    r = web.get(f"/admin/default/ticket/{ticket}", https=True)
    assert r.status == 200 and "ZeroDivisionError" in r.text


def test_admin_lockout_after_failed_logins(web, root):
    (root / "parameters_443.py").write_text(f'password="{crypt("s3cret")}"\n')
    attacker = dict(https=True, remote_addr="198.51.100.99")
    texts = [
        web.post("/admin/default/index", {"password": "nope"}, **attacker).text for _ in range(5)
    ]
    assert "invalid password." in texts[0]
    assert "one more login attempt" in texts[3]
    assert "too many invalid login attempts" in texts[4]
    r = web.post("/admin/default/index", {"password": "s3cret"}, **attacker)
    assert r.status == 403
    assert "198.51.100.99 5 " in (root / "applications/admin/private/hosts.deny").read_text()


def test_save_password_and_web2py_py(root):
    subprocess.run(
        [sys.executable, "-c", "from gluon.main import save_password; save_password('pw!', 8000)"],
        cwd=root,
        check=True,
    )
    line = (root / "parameters_8000.py").read_text()
    match = re.fullmatch(
        r'password="pbkdf2\(1000,20,sha512\)\$([0-9a-f]{16})\$([0-9a-f]{40})"\n', line
    )
    assert match
    assert crypt("pw!", salt=match.group(1)) == line.split('"')[1]

    def web2py(*args):
        return subprocess.run(
            [sys.executable, "web2py.py", *args], cwd=root, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip

    assert web2py("--version").stdout.strip() == (root / "VERSION").read_text().strip()
    (root / "probe_script.py").write_text(
        "import sys\ndb.thing.insert(name='from-script-' + sys.argv[1])\n"
        "print(request.folder, db(db.thing).count())\n"
    )
    result = web2py("-S", "probe", "-M", "-R", "probe_script.py", "-A", "x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(root / "applications" / "probe") + "/ ")
    with sqlite3.connect(root / "applications/probe/databases/storage.sqlite") as con:
        assert con.execute("SELECT count(*) FROM thing WHERE name='from-script-x'").fetchone() == (
            1,
        )
    # as gluon: -K on an app whose models define no Scheduler says so and exits 0 at once
    no_scheduler = web2py("-K", "probe")
    assert no_scheduler.returncode == 0 and "no attribute '_scheduler'" in no_scheduler.stdout
    assert web2py().returncode != 0  # the web server itself is not the stand-in's
