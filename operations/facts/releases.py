"""Facts about an app's releases: the live one, its manifest, the lock, shared files, the audit
log, backups and what cleanup would remove (the release tool: server/)."""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from ..formats import MANIFEST, parse_manifest
from ..local.app_files import HostFiles
from ..release_tool import REMOTE_PATH
from .common import parse_json, read_file_command


class LiveRelease(FactBase[dict | None]):
    """
    The live release of an app: its ``REVISION`` (release id, package sha256, version, who,
    when), or None when the app has no release yet.

    .. code:: python

        host.get_fact(LiveRelease, web2py_root="/home/www-data/web2py", app_name="notes")
    """

    def command(self, web2py_root: str, app_name: str) -> StringCommand:
        return read_file_command(f"{web2py_root}/applications/{app_name}/REVISION")

    def process(self, output: list[str]) -> dict | None:
        return parse_json(output)


class LiveManifest(FactBase[dict[str, str]]):
    """
    ``{path: sha256}`` of the files the live app was deployed with ({} when unknown).

    .. code:: python

        host.get_fact(LiveManifest, web2py_root="/home/www-data/web2py", app_name="notes")
    """

    def command(self, web2py_root: str, app_name: str) -> StringCommand:
        return read_file_command(f"{web2py_root}/applications/{app_name}/{MANIFEST}")

    def process(self, output: list[str]) -> dict[str, str]:
        return parse_manifest(output)


class AppLock(FactBase[dict | None]):
    """
    Who holds an app's deploy lock (``lock/info.json``), or None when it is free.

    .. code:: python

        host.get_fact(AppLock, apps_dir="/srv/web2py-apps", app_name="notes")
    """

    def command(self, apps_dir: str, app_name: str) -> StringCommand:
        return read_file_command(f"{apps_dir}/{app_name}/lock/info.json")

    def process(self, output: list[str]) -> dict | None:
        # a lock whose info is unreadable is still a lock
        return parse_json(output, garbage={"who": "?", "since": "?", "version": "?"})


_UNFINISHED_SCRIPT = r"""
cd "$1/$2" 2>/dev/null || exit 0
[ -e lock ] && echo locked
live=$(readlink current 2>/dev/null); live=${live##*/}
last=$(awk '$3 == "live" {r = $2} END {print r}' release.log 2>/dev/null)
[ -n "$live" ] && [ "$live" != "$last" ] && echo unconfirmed
true
"""


class UnfinishedRun(FactBase[list[str]]):
    """
    What a run of the release tool may have left unfinished for the next one: ``locked`` (some
    run holds the app's lock, maybe a dead one) and ``unconfirmed`` (``current`` is not the
    release of the release log's last "live" line: a run switched and never confirmed). [] when
    the app is settled: only then may a deploy of what ``current`` holds be a no-op.

    .. code:: python

        host.get_fact(UnfinishedRun, apps_dir="/srv/web2py-apps", app_name="notes")
    """

    def command(self, apps_dir: str, app_name: str) -> StringCommand:
        return StringCommand(
            "sh", "-c", QuoteString(_UNFINISHED_SCRIPT), "unfinished-run",
            QuoteString(apps_dir), QuoteString(app_name),
        )  # fmt: skip

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip() in ("locked", "unconfirmed")]


# Run as the web2py user: the old layouts' folders are the app's to write, so root never reads
# through them here (a link planted there leads nowhere the app could not read itself).
_SHARED_FILES_SCRIPT = r"""
base=$1/$3 folder=$2/applications/$3
list() { [ -d "$2" ] && [ ! -L "$2" ] && (cd "$2" && find . -type f) | sed "s|^\./|$1 $3|"; }
list shared "$base/shared/files" ""
list legacy "$base/shared/private" private/
[ -L "$folder" ] || list legacy "$folder/private" private/
for key in "$base/shared/files/private/auth.key" "$base/shared/private/auth.key" \
           "$folder/private/auth.key"; do
    if [ -f "$key" ] && [ ! -L "$key" ]; then
        printf 'authkey %s\n' "$(timeout 5 sha256sum < "$key" | cut -c1-64)"; break
    fi
done
true
"""


class SharedFiles(FactBase[HostFiles]):
    """
    What a host holds of an app's shared files: the paths in ``shared/files``, the private
    files of the old layouts (``shared/private``, a plain app folder's ``private/``) and the
    sha256 of its auth key (never the key).

    .. code:: python

        host.get_fact(SharedFiles, apps_dir="/srv/web2py-apps",
                      web2py_root="/home/www-data/web2py", app_name="notes", user="www-data")
    """

    def command(self, apps_dir: str, web2py_root: str, app_name: str, user: str) -> StringCommand:
        script = StringCommand(
            "sh", "-c", QuoteString(_SHARED_FILES_SCRIPT), "shared-files",
            QuoteString(apps_dir), QuoteString(web2py_root), QuoteString(app_name),
        )  # fmt: skip
        return StringCommand(
            "if", "id", "-u", QuoteString(user), ">/dev/null", "2>&1;", "then",
            "runuser", "-u", QuoteString(user), "--", script, ";", "fi",
        )  # fmt: skip

    def process(self, output: list[str]) -> HostFiles:
        shared, legacy, key = set(), set(), None
        for line in output:
            kind, _, value = line.partition(" ")
            if kind == "shared":
                shared.add(value)
            elif kind == "legacy":
                legacy.add(value)
            elif kind == "authkey" and len(value) == 64:
                key = value
        return HostFiles(tuple(sorted(shared)), tuple(sorted(legacy)), key)


class LastAudit(FactBase[dict | None]):
    """
    The last line of an app's audit log (``audit.jsonl``), or None.

    .. code:: python

        host.get_fact(LastAudit, apps_dir="/srv/web2py-apps", app_name="notes")
    """

    def command(self, apps_dir: str, app_name: str) -> StringCommand:
        return read_file_command(f"{apps_dir}/{app_name}/audit.jsonl", last_line=True)

    def process(self, output: list[str]) -> dict | None:
        return parse_json(output)


class Backups(FactBase[list[str]]):
    """
    An app's backup zips, newest first.

    .. code:: python

        host.get_fact(Backups, backups_dir="/var/backups/web2py", app_name="notes")
    """

    def command(self, backups_dir: str, app_name: str) -> StringCommand:
        pattern = StringCommand(QuoteString(f"{backups_dir}/{app_name}."), "*.zip", _separator="")
        return StringCommand("ls", "-1t", pattern, "2>/dev/null", "||", "true")

    def process(self, output: list[str]) -> list[str]:
        return [line.rsplit("/", 1)[-1] for line in output if line.endswith(".zip")]


class CleanupCandidates(FactBase[dict | None]):
    """
    What ``cleanup`` would remove for an app: ``{"files", "releases", "backups", "bytes"}``;
    ``{"unknown": True}`` when the server's release tool cannot tell (missing or older).

    .. code:: python

        host.get_fact(CleanupCandidates, args=["--app", "notes", ...])
    """

    def command(self, args: list[str]) -> StringCommand:
        quoted = [QuoteString(arg) for arg in args]
        return StringCommand(
            REMOTE_PATH, "cleanup", "--dry-run", *quoted,
            "2>/dev/null", "||", "echo", "'{\"unknown\": true}'",
        )  # fmt: skip

    def process(self, output: list[str]) -> dict | None:
        return parse_json(output, garbage={"unknown": True})


class AppServed(FactBase[bool]):
    """
    Whether web2py serves an app: ``applications/<app>`` exists (a release's link or a plain
    folder).

    .. code:: python

        host.get_fact(AppServed, web2py_root="/home/www-data/web2py", app_name="notes")
    """

    def command(self, web2py_root: str, app_name: str) -> StringCommand:
        return StringCommand(
            "test", "-e", QuoteString(f"{web2py_root}/applications/{app_name}"),
            "&&", "echo", "yes", "||", "true",
        )  # fmt: skip

    def process(self, output: list[str]) -> bool:
        return any(line.strip() == "yes" for line in output)


class AppStatus(FactBase[dict | None]):
    """
    An app's state as the release tool reports it (``status``): the live release and its
    REVISION, the lock's holder, the releases, maintenance (``down``) and **drift** — files of
    the live release that differ from its manifest. None when the tool cannot tell (no tool,
    no such app).

    .. code:: python

        host.get_fact(AppStatus, layout="/etc/web2py/release.json", app_name="notes")
    """

    def command(self, layout: str, app_name: str) -> StringCommand:
        return StringCommand(
            REMOTE_PATH, "status", "--layout", QuoteString(layout), "--app", QuoteString(app_name),
            "2>/dev/null", "||", "true",
        )  # fmt: skip

    def process(self, output: list[str]) -> dict | None:
        return parse_json(output)


class AppsOnServer(FactBase[list[str]]):
    """
    The apps with releases on the server: folders of ``apps_dir`` that hold ``releases/``.

    .. code:: python

        host.get_fact(AppsOnServer, apps_dir="/srv/web2py-apps")
    """

    def command(self, apps_dir: str) -> StringCommand:
        return StringCommand(
            "find", QuoteString(apps_dir), "-mindepth", "2", "-maxdepth", "2", "-type", "d",
            "-name", "releases", "2>/dev/null", "||", "true",
        )  # fmt: skip

    def process(self, output: list[str]) -> list[str]:
        return sorted(line.rstrip("/").split("/")[-2] for line in output if line.strip())
