import tarfile

import pytest

from operations.formats import DELTA, MANIFEST, manifest_sha256
from operations.local.packaging import PackagingError, build_package, select_files


def make_app(root):
    files = {
        "models/db.py": "db = 1\n",
        "controllers/default.py": "def index(): return 'hi'\n",
        "views/default/index.html": "<p>{{=x}}</p>\n",
        "views/default/deep/er/part.load": "x\n",
        "views/default/api.json": "{}\n",
        "static/css/app.css": "body{}\n",
        "languages/fr.py": "{}\n",
        "modules/util.py": "X = 1\n",
        "cron/crontab": "# none\n",
        "ABOUT": "about\n",
        "LICENSE": "mit\n",
        "routes.example.py": "\n",
        "__init__.py": "",
        "databases/storage.sqlite": "DATA",
        "databases/x.table": "T",
        "sessions/abc": "S",
        "errors/t1": "E",
        "cache/c": "C",
        "uploads/u.png": "U",
        "private/secret.txt": "P",
        ".git/config": "G",
        "controllers/default.py~": "backup",
        "controllers/old.bak": "backup",
        "controllers/#tmp#": "emacs",
        "modules/__pycache__/util.cpython-311.pyc": "pyc",
        "compiled/models.db.pyc": "compiled",
        "notes.txt": "top-level non-code file",
    }
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_code_mode_ships_code_and_private_but_no_data(tmp_path):
    # private/ is code and configuration in web2py apps (appconfig.ini, the examples' content)
    app = make_app(tmp_path / "app")
    assert select_files(app) == [
        "ABOUT",
        "LICENSE",
        "__init__.py",
        "controllers/default.py",
        "cron/crontab",
        "languages/fr.py",
        "models/db.py",
        "modules/util.py",
        "private/secret.txt",
        "routes.example.py",
        "static/css/app.css",
        "views/default/api.json",
        "views/default/deep/er/part.load",
        "views/default/index.html",
    ]


def test_full_mode_keeps_data_but_not_runtime_scratch(tmp_path):
    app = make_app(tmp_path / "app")
    names = select_files(app, mode="full")
    assert {"databases/storage.sqlite", "uploads/u.png", "private/secret.txt", "notes.txt"} <= set(
        names
    )
    assert not [n for n in names if n.startswith(("sessions/", "errors/", "cache/", ".git/"))]
    assert "controllers/default.py~" not in names and "compiled/models.db.pyc" not in names


def test_include_and_exclude_patterns(tmp_path):
    app = make_app(tmp_path / "app")
    names = select_files(app, include=["notes.txt"], exclude=["static/*"])
    assert "notes.txt" in names and "static/css/app.css" not in names


def test_package_is_reproducible_with_manifest(tmp_path):
    app = make_app(tmp_path / "app")
    first = build_package(app, tmp_path / "a.tar.gz")
    (app / "models" / "db.py").touch()  # mtime changes must not matter
    second = build_package(app, tmp_path / "b.tar.gz")
    assert first.sha256 == second.sha256
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        names = tar.getnames()
        manifest = tar.extractfile(MANIFEST).read().decode()
        assert all(m.mtime == tar.getmembers()[0].mtime for m in tar.getmembers())
    assert names == sorted(first.files) + [MANIFEST]
    assert f"{first.files['models/db.py']}  models/db.py\n" in manifest
    (app / "models" / "db.py").write_text("db = 2\n")
    assert build_package(app, tmp_path / "c.tar.gz").sha256 != first.sha256


def test_rejects_non_app_and_bad_mode(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackagingError, match="not a web2py app"):
        build_package(tmp_path / "empty", tmp_path / "x.tar.gz")
    with pytest.raises(PackagingError, match="package_mode"):
        select_files(tmp_path / "empty", mode="everything")


def test_delta_carries_only_what_the_live_release_lacks(tmp_path):
    import json

    from operations.local.packaging import build_delta

    app = make_app(tmp_path / "app")
    old = build_package(app, tmp_path / "old.tar.gz")
    (app / "modules" / "util.py").write_text("X = 2\n")
    (app / "models" / "new.py").write_text("n = 1\n")
    (app / "cron" / "crontab").unlink()
    new = build_package(app, tmp_path / "new.tar.gz")

    delta = build_delta(new, old.files, tmp_path / "delta.tar.gz")
    assert delta.changed == ("models/new.py", "modules/util.py")
    assert delta.removed == ("cron/crontab",)
    with tarfile.open(delta.path) as tar:
        assert sorted(tar.getnames()) == [DELTA, "models/new.py", "modules/util.py"]
        info = json.loads(tar.extractfile(DELTA).read())
        assert tar.extractfile("modules/util.py").read() == b"X = 2\n"
    assert info["base_manifest_sha256"] == manifest_sha256(old.files)
    assert info["manifest_sha256"] == manifest_sha256(new.files)
    assert info["files"] == {n: new.files[n] for n in delta.changed}
    again = build_delta(new, old.files, tmp_path / "again.tar.gz")
    assert again.sha256 == delta.sha256  # reproducible, like packages
    assert delta.path.stat().st_size < new.path.stat().st_size
