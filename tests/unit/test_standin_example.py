"""The example app examples/apps/notes, served by the web2py TEST STAND-IN."""

from __future__ import annotations

import re
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from web2py_standin import build_zip
from web2py_standin.driver import StandinProcess, install_zip

NOTES = Path(__file__).resolve().parents[2] / "examples" / "apps" / "notes"
REMOTE = "203.0.113.50"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("srv")
    root = install_zip(build_zip(dest / "web2py_src.zip"), dest)  # as the deploys do
    shutil.copytree(NOTES, root / "applications" / "notes")
    return root


@pytest.fixture(scope="module")
def server(root):
    with StandinProcess(root) as process:
        yield process


@pytest.fixture
def web(server):
    server.cookies.clear()
    return server


def formkey(page: str) -> str:
    return re.search(r'name="_formkey" value="([^"]+)"', page).group(1)


def titles(root: Path) -> list[str]:
    with sqlite3.connect(root / "applications/notes/databases/storage.sqlite") as con:
        return [row[0] for row in con.execute("SELECT title FROM note ORDER BY id")]


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "----standin-test-boundary"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, (filename, data) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: text/plain\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_app_layout():
    for name in (
        "__init__.py",
        "ABOUT",
        "LICENSE",
        "routes.example.py",
        "cron/crontab",
        "private/README",
        "models/db.py",
        "models/menu.py",
        "models/scheduler.py",
        "controllers/default.py",
        "modules/__init__.py",
        "modules/notes_util.py",
        "views/layout.html",
        "views/default/index.html",
        "views/default/show.html",
        "views/default/feed.rss",
        "views/partials/_note.html",
        "views/generic.json",
        "static/css/notes.css",
        "static/js/notes.js",
        "static/images/notes.png",
        "languages/default.py",
        "languages/fr.py",
    ):
        assert (NOTES / name).is_file(), name
    # runtime folders are created by the deploy (or web2py), never shipped
    for name in ("databases", "sessions", "errors", "cache", "uploads"):
        assert not (NOTES / name).exists(), name
    for path in NOTES.rglob("*.py"):  # valid Python 3 (syntax only: names come from web2py)
        compile(path.read_text(encoding="utf8"), str(path), "exec")


def test_index_and_add_note(web, root):
    r = web.get("/notes/default/index")
    assert r.status == 200
    assert "<title>Notes</title>" in r.text
    assert '<link rel="stylesheet" href="/notes/static/css/notes.css">' in r.text
    assert '<script src="/notes/static/js/notes.js"></script>' in r.text
    assert "No notes yet." in r.text
    key = formkey(r.text)
    sid = web.cookies["session_id_notes"]
    assert (root / "applications/notes/sessions" / sid).is_file()  # formkey stored

    r = web.post(
        "/notes/default/index", {"_formkey": key, "title": "Buy <milk>", "body": "two litres " * 20}
    )
    assert (r.status, r.headers["location"]) == (303, "/notes/default/index")
    page = web.get("/notes/default/index").text
    assert '<div class="flash" id="flash">Note added</div>' in page
    assert '<a href="/notes/default/show/1">Buy &lt;milk&gt;</a>' in page
    assert "two litres two litres" in page and "\u2026" in page  # summarize() from modules/
    assert titles(root) == ["Buy <milk>"]
    databases = root / "applications/notes/databases"
    assert (databases / "storage.sqlite").is_file()
    assert len(list(databases.glob("*_note.table"))) == 1


def test_post_is_protected_and_validated(web, root):
    before = titles(root)
    r = web.post("/notes/default/index", {"_formkey": "forged", "title": "nope"})
    assert r.status == 303
    assert "The form expired" in web.get("/notes/default/index").text
    key = formkey(web.get("/notes/default/index").text)
    r = web.post("/notes/default/index", {"_formkey": key, "title": "   "})
    assert r.status == 200 and "A title is required" in r.text
    assert titles(root) == before


def test_api_json(web, root):
    key = formkey(web.get("/notes/default/index").text)
    web.post("/notes/default/index", {"_formkey": key, "title": "For the API", "body": "b"})
    r = web.get("/notes/default/api.json", https=True, remote_addr=REMOTE)
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert "set-cookie" not in r.headers  # session.forget()
    data = r.json()
    assert (data["app"], data["version"]) == ("notes", "1.0.0")
    assert data["count"] == len(titles(root))
    note = data["notes"][-1]
    assert note["title"] == "For the API" and note["body"] == "b"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", note["created_on"])
    # only *.json may use a generic view
    assert "invalid view (default/api.html)" in web.get("/notes/default/api").text


def test_health(web):
    r = web.get("/notes/default/health", remote_addr=REMOTE)
    version = re.search(r"VERSION = '([^']+)'", (NOTES / "modules/notes_util.py").read_text())
    assert (r.status, r.text) == (200, f"ok notes {version.group(1)}")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "set-cookie" not in r.headers


def test_the_stand_ins_scheduler_takes_tasks(web):
    """The stand-in has a scheduler of its own (gluon/scheduler.py): tasks can be queued."""
    data = web.get("/notes/default/tasks.json").json()
    assert data["scheduler"] is True and data["log"] == [] and data["queue"] == []
    queued = web.post("/notes/default/queue_task.json", {"label": "x"})
    assert queued.status == 200 and "x" in queued.text
    assert [t["label"] for t in web.get("/notes/default/tasks.json").json()["queue"]] == ["x"]
    assert web.get("/notes/default/queue_task.json").status == 405


def test_feed_and_show(web, root):
    key = formkey(web.get("/notes/default/index").text)
    web.post("/notes/default/index", {"_formkey": key, "title": "Feed me", "body": "rss body"})
    r = web.get("/notes/default/feed.rss")
    assert r.headers["content-type"] == "application/rss+xml"
    channel = ET.fromstring(r.body).find("channel")
    assert channel.findtext("link") == "http://localhost/notes/default/index"
    item = channel.find("item")
    assert item.findtext("title") == "Feed me"
    link = item.findtext("link")
    assert re.fullmatch(r"http://localhost/notes/default/show/\d+", link)
    page = web.get(link.removeprefix("http://localhost"))
    assert page.status == 200 and "<h1>Feed me</h1>" in page.text and "rss body" in page.text
    assert web.get("/notes/default/show/abc").status == 404
    assert web.get("/notes/default/show/99999").status == 303


def test_upload_and_download(web, root):
    key = formkey(web.get("/notes/default/index").text)
    body, ctype = multipart(
        {"_formkey": key, "title": "With file", "body": ""},
        {"attachment": ("hello.txt", b"attached bytes\n")},
    )
    r = web.post("/notes/default/index", body, content_type=ctype)
    assert r.status == 303
    uploads = list((root / "applications/notes/uploads").glob("note.attachment.*.txt"))
    assert len(uploads) == 1 and uploads[0].read_bytes() == b"attached bytes\n"
    note_id = re.search(
        r'/notes/default/show/(\d+)">With file<', web.get("/notes/default/index").text
    ).group(1)
    show = web.get(f"/notes/default/show/{note_id}").text
    link = re.search(r'href="(/notes/default/download/[^"]+)"', show).group(1)
    r = web.get(link)
    assert r.status == 200 and r.body == b"attached bytes\n"
    assert r.headers["content-disposition"] == 'attachment; filename="hello.txt"'


def test_static_and_translation(web):
    css = web.get("/notes/static/css/notes.css")
    assert css.status == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    js = web.get("/notes/static/js/notes.js")
    assert js.status == 200 and js.headers["content-type"] == "application/javascript"
    png = web.get("/notes/static/images/notes.png")
    assert png.headers["content-type"] == "image/png" and png.body.startswith(b"\x89PNG\r\n")
    fr = web.get("/notes/default/index", headers={"Accept-Language": "fr-FR,fr;q=0.8"})
    assert '<html lang="fr">' in fr.text
    assert "Ajouter la note" in fr.text and "Pièce jointe" in fr.text
