from operations.formats import manifest_text, parse_manifest
from operations.local.manifest import diff_manifests

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_round_trip_with_packaging_format():
    files = {"models/db.py": A, "views/default/my file.html": B}
    assert parse_manifest(manifest_text(files)) == files


def test_garbage_lines_are_ignored():
    assert parse_manifest(f"{A}  ok.py\nnot a line\n\n{B[:10]}  short.py\n") == {"ok.py": A}
    assert parse_manifest(None) == {} and parse_manifest([]) == {}


def test_diff_lists_added_changed_removed_sorted():
    live = {"a.py": A, "b.py": B, "gone.py": C}
    new = {"a.py": A, "b.py": C, "new/z.py": A, "new/a.py": B}
    diff = diff_manifests(live, new)
    assert diff.added == ["new/a.py", "new/z.py"]
    assert diff.changed == ["b.py"]
    assert diff.removed == ["gone.py"]
    assert diff.summary() == "2 added, 1 changed, 1 removed"
    assert diff.lines() == ["+ new/a.py", "+ new/z.py", "~ b.py", "- gone.py"]
    assert diff_manifests(live, live).empty
