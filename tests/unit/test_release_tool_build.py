"""The release tool's zipapp: deterministic, self-contained, runnable."""

import json
import subprocess
import sys
import zipfile

from operations import formats, release_tool


def test_the_zipapp_is_the_same_bytes_wherever_and_whenever_built(tmp_path):
    first, digest = release_tool.build(tmp_path / "a" / "tool.pyz")
    second, again = release_tool.build(tmp_path / "b" / "tool.pyz")
    assert digest == again == formats.sha256_file(first) == formats.sha256_file(second)
    assert first.read_bytes().startswith(b"#!/usr/bin/python3\n")
    assert first.stat().st_mode & 0o777 == 0o755
    with zipfile.ZipFile(first) as zf:
        infos = zf.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert {info.date_time for info in infos} == {release_tool.FIXED_TIME}
    assert "server/cli.py" in names and "__main__.py" in names
    # the contract, and nothing else of the controller's code
    assert [n for n in names if n.startswith("operations/")] == [
        "operations/__init__.py",
        "operations/formats.py",
    ]


def test_the_zipapp_runs_on_its_own(tmp_path):
    tool, _ = release_tool.build(tmp_path / "tool.pyz")
    layout = formats.Layout(apps_dir=str(tmp_path / "apps"), web2py_root=str(tmp_path))
    (tmp_path / "release.json").write_text(layout.to_json())
    result = subprocess.run(
        [sys.executable, "-I", str(tool), "status", "--layout", str(tmp_path / "release.json"),
         "--app", "notes"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["live"] is None
