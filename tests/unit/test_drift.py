"""Drift of a live release against its manifest: edits, deletions, additions; links skipped."""

import hashlib
import os

from server.drift import drift, hash_tree


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_hash_tree_reads_regular_files_only_and_never_follows_links(tmp_path):
    rel = tmp_path / "release"
    (rel / "controllers").mkdir(parents=True)
    (rel / "controllers" / "default.py").write_bytes(b"def index(): pass\n")
    secret = tmp_path / "secret"
    secret.write_bytes(b"root only")
    (rel / "controllers" / "link.py").symlink_to(secret)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.db").write_bytes(b"db")
    (rel / "databases").symlink_to(tmp_path / "data")
    os.mkfifo(rel / "fifo")  # would block an ordinary open
    assert hash_tree(rel) == {"controllers/default.py": sha(b"def index(): pass\n")}


def test_drift_names_changed_missing_and_added_files():
    manifest = {
        "a.py": sha(b"a"),
        "b.py": sha(b"b"),
        "c.py": sha(b"c"),
        "private/appconfig.ini": "0" * 64,
    }
    actual = {"a.py": sha(b"a"), "b.py": sha(b"B"), "d.py": sha(b"d"), "REVISION": sha(b"{}"),
              "private/appconfig.ini": sha(b"rendered")}  # fmt: skip
    assert drift(manifest, actual, skip={"REVISION", "private/appconfig.ini"}) == {
        "changed": ["b.py"], "missing": ["c.py"], "added": ["d.py"],
    }  # fmt: skip
    assert drift(manifest, dict(manifest), skip=()) == {"changed": [], "missing": [], "added": []}
