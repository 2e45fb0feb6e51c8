"""Apps from git: export exactly one commit on the controller, without .git, once per run."""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..settings.validators import ConfigError

_exports: dict[tuple[str, str, str], GitExport] = {}
_work: list[Path] = []  # the run's work folder, made on first use (never at import)


def _work_dir() -> Path:
    if not _work:
        _work.append(Path(tempfile.mkdtemp(prefix="pyinfra-web2py-git-")))
    return _work[0]


@dataclass(frozen=True)
class GitExport:
    """A commit's tree, exported."""

    path: Path  # the app folder, as the commit has it
    commit: str


def _git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )  # fmt: skip
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["git failed"])[-1]
        raise ConfigError(f"git {args[0]}: {last}")
    return result.stdout.strip()


def export_commit(key: str, repo: str, ref: str, subdir: str = "") -> GitExport:
    """Clone ``repo``, resolve ``ref`` (branch, tag or commit) and export that commit's tree."""
    cache_key = (repo, ref, subdir)
    if cache_key in _exports:
        return _exports[cache_key]
    work = Path(tempfile.mkdtemp(dir=_work_dir()))
    clone = work / "clone"
    try:
        _git("clone", "--quiet", "--no-checkout", "--", repo, str(clone))
    except ConfigError as error:
        raise ConfigError(f"{key}.repo: cannot clone {repo}: {error}") from None
    commit = None
    for candidate in (f"origin/{ref}", ref):
        try:
            commit = _git("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", cwd=clone)
            break
        except ConfigError:
            continue
    if not commit:
        raise ConfigError(f"{key}.ref: {ref!r} is no branch, tag or commit of {repo}")
    export = work / "export"
    export.mkdir()
    archive = export / ".archive.tar"
    _git("archive", "--format=tar", f"--output={archive}", commit, cwd=clone)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():  # Debian 12's Python 3.11.2 has no extraction filters
            if member.name.startswith("/") or ".." in member.name.split("/"):
                raise ConfigError(f"{key}: unsafe path in commit {commit[:12]}: {member.name}")
        tar.extractall(export)  # noqa: S202 (checked above)
    archive.unlink()
    app_dir = export / subdir if subdir else export
    if not (app_dir / "controllers").is_dir():
        raise ConfigError(
            f"{key}: commit {commit[:12]} of {repo} has no web2py app at {subdir or 'its top'}"
        )
    _exports[cache_key] = GitExport(path=app_dir, commit=commit)
    return _exports[cache_key]
