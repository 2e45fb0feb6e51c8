"""Bring an app's backup (or a fresh snapshot) from a server to the controller, verified.

Runs at execution time (``python.call``), because a snapshot's name exists only once it is taken.
Files land in ``<dir>/<host>/<app>/<backup>.zip`` beside their ``.sha256``: downloaded under a
unique ``.part`` name in that folder (never a fixed name in a shared /tmp), checked, then renamed.
A local file of the same name is never overwritten: same sha256 → nothing to do; another → error.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.exceptions import OperationError

from ..formats import sha256_file
from ..release_tool import REMOTE_PATH, tool_args
from ..settings.apps import DeploySettings


def _run(command: StringCommand) -> list[str]:
    ok, output = host.run_shell_command(command, _sudo=True)
    if not ok:
        raise OperationError(f"{host.name}: {' '.join(output.stderr_lines)[-300:]}")
    return output.stdout_lines


def _pick(app: str, config: DeploySettings, which: str) -> str:
    if which == "snapshot":
        lines = _run(
            StringCommand(REMOTE_PATH, "backup", *map(QuoteString, tool_args(app, config)))
        )
        taken = [line.split(" backup ", 1)[1] for line in lines if " backup " in line]
        if not taken:
            raise OperationError(f"{host.name}: {app}: nothing to snapshot")
        return taken[-1].rsplit("/", 1)[-1]
    if which == "latest":
        pattern = StringCommand(QuoteString(f"{config.backups_dir}/{app}."), "*.zip", _separator="")
        names = _run(StringCommand("ls", "-1t", pattern))
        if not names:
            raise OperationError(f"{host.name}: {app}: no backups")
        return names[0].rsplit("/", 1)[-1]
    return which


def _download_private(remote: str, local: str) -> None:
    """Download a root-only file without the world-readable copy pyinfra's sudo download
    makes: root appends it to a 0600 file of the SSH user's, in a 0700 folder of theirs."""
    ok, output = host.run_shell_command(StringCommand("mktemp", "-d"), _sudo=False)
    folder = output.stdout_lines[0].strip() if ok and output.stdout_lines else ""
    if not folder.startswith("/"):
        raise OperationError(f"{host.name}: could not make a private folder to download into")
    staged = f"{folder}/backup.zip"
    try:
        _run_as_user(StringCommand("install", "-m", "600", "/dev/null", QuoteString(staged)))
        _run(
            StringCommand(
                "sh",
                "-c",
                QuoteString('cat "$1" >> "$2"'),
                "copy",
                QuoteString(remote),
                QuoteString(staged),
            )  # fmt: skip
        )
        if not host.get_file(staged, local, _sudo=False):
            raise OperationError(f"{host.name}: could not download {remote}")
    finally:
        host.run_shell_command(StringCommand("rm", "-rf", QuoteString(folder)), _sudo=False)


def _run_as_user(command: StringCommand) -> None:
    ok, output = host.run_shell_command(command, _sudo=False)
    if not ok:
        raise OperationError(f"{host.name}: {' '.join(output.stderr_lines)[-300:]}")


def retrieve_backup(app_name: str, config: DeploySettings, which: str, local_dir: str) -> None:
    """Bring backup ``which`` (a name, ``latest`` or ``snapshot``) of an app from the current
    host to ``local_dir/<host>/<app>/``, checked against its sha256 (``python.call``)."""
    name = _pick(app_name, config, which)
    remote = f"{config.backups_dir}/{name}"
    expected = _run(StringCommand("cat", QuoteString(f"{remote}.sha256")))[0].split()[0]
    folder = Path(local_dir) / host.name / app_name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.exists():
        if sha256_file(target) == expected:
            logger.info(f"{host.name}: {app_name}: {target} is already here and verified")
            return
        raise OperationError(
            f"{target} exists and differs from {host.name}:{remote}: not overwritten"
        )
    fd, part = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    os.close(fd)
    try:
        _download_private(remote, part)
        actual = sha256_file(Path(part))
        if actual != expected:
            raise OperationError(
                f"{host.name}: {name} arrived with sha256 {actual}, not {expected}"
            )
        os.replace(part, target)
    finally:
        Path(part).unlink(missing_ok=True)
    (folder / f"{name}.sha256").write_text(f"{expected}  {name}\n")
    logger.info(f"{host.name}: {app_name}: retrieved {target} (sha256 {expected[:12]} verified)")
