import shutil
import subprocess
from pathlib import Path

import pytest

from operations.local import gitsource
from operations.settings.validators import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def git(*args, cwd):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    if args[0] != "commit":
        return None
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture()
def repo(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", repo / "src" / "notes")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    first = git("commit", "-q", "-m", "one", cwd=repo)
    git("tag", "v1", cwd=repo)
    (repo / "src" / "notes" / "ABOUT").write_text("two\n")
    git("add", ".", cwd=repo)
    second = git("commit", "-q", "-m", "two", cwd=repo)
    return repo, first, second


def test_exports_exactly_the_commit_without_git(repo):
    path, first, second = repo
    tagged = gitsource.export_commit("k", str(path), "v1", "src/notes")
    assert tagged.commit == first
    assert not (tagged.path / ".git").exists() and not list(tagged.path.rglob(".git"))
    assert (tagged.path / "ABOUT").read_text() != "two\n"
    branch = gitsource.export_commit("k", str(path), "main", "src/notes")
    assert branch.commit == second and (branch.path / "ABOUT").read_text() == "two\n"
    by_hash = gitsource.export_commit("k", str(path), first[:10], "src/notes")
    assert by_hash.commit == first


def test_bad_ref_and_repo_are_one_line(repo, tmp_path):
    path, _, _ = repo
    with pytest.raises(ConfigError, match=r"k.ref: 'nope' is no branch, tag or commit"):
        gitsource.export_commit("k", str(path), "nope", "src/notes")
    with pytest.raises(ConfigError, match="k.repo: cannot clone"):
        gitsource.export_commit("k", str(tmp_path / "missing"), "main")
    with pytest.raises(ConfigError, match="has no web2py app at src"):
        gitsource.export_commit("k", str(path), "main", "src")
