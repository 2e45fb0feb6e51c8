"""The server-side release tool (``server/``), built on the controller as one zipapp and
installed on servers by one function.

The zipapp holds ``server/``, ``operations/__init__.py`` and ``operations/formats.py`` (the
contract both sides share) and, at its top, ``server/__main__.py``, which runs ``server.cli``.
It is built deterministically (entries sorted and stored, fixed timestamps and modes), so its
sha256 is the same in every checkout of the same code and a server that already holds it gets
no upload.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import gevent
from paramiko import SSHException
from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, Host, QuoteString, State, StringCommand, operation
from pyinfra.api.arguments import ConnectorArguments
from pyinfra.connectors.util import CommandOutput
from pyinfra.facts.files import Sha256File

from . import formats
from .scripts import REMOTE_DIR  # root-owned, 0755
from .settings.apps import DeploySettings
from .settings.layout import Layout, maintenance_dir

REPO = Path(__file__).resolve().parents[1]
REMOTE_PATH = f"{REMOTE_DIR}/web2py-release.pyz"
# Where the build lands (build/ is not in git).
LOCAL_PATH = REPO / "build" / "release-tool" / "web2py-release.pyz"
SHEBANG = b"#!/usr/bin/python3\n"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
UWSGI = "/usr/bin/uwsgi-core"  # Debian's uwsgi-core, which install_web2py installs


def sources() -> list[tuple[str, Path]]:
    """(name in the zipapp, file) of everything the tool needs, sorted by name."""
    found = [(f"server/{p.name}", p) for p in (REPO / "server").glob("*.py")]
    found += [
        (f"operations/{name}", REPO / "operations" / name) for name in ("__init__.py", "formats.py")
    ]
    return sorted(found)


def zipapp_bytes() -> bytes:
    """The zipapp's bytes: the same for the same sources, wherever and whenever built."""
    entries = [("__main__.py", REPO / "server" / "__main__.py"), *sources()]
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as zf:
        for name, path in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return SHEBANG + raw.getvalue()


def layout_of(config: Layout) -> formats.Layout:
    """The server's layout as the release tool reads it (``formats.layout_path``), from the
    settings: written there by deploys/install_web2py.py."""
    return formats.Layout(
        apps_dir=config.apps_dir,
        web2py_root=config.web2py_root,
        user=config.user,
        group=config.group,
        data_dirs=formats.DATA_DIRS,
        backups_dir=config.backups_dir,
        # the paths templates/uwsgi-web2py.ini.j2 gives uWSGI's master FIFO and stats socket
        fifo=f"{config.run_dir}/uwsgi.fifo",
        stats=f"{config.run_dir}/stats.sock",
        uwsgi=UWSGI,
        maintenance_dir=maintenance_dir(config.config_dir),
        health_port=config.https_port,
    )


def tool_args(app_name: str, config: DeploySettings) -> list[str]:
    """The app and who asks; the server's layout is in the file install wrote there."""
    layout = formats.layout_path(config.config_dir)
    return ["--layout", layout, "--app", app_name, "--who", config.who]


_built: dict[Path, str] = {}


def build(path: Path | None = None) -> tuple[Path, str]:
    """Build the zipapp at ``path`` (default ``LOCAL_PATH``) once per process, replacing it
    atomically when it differs; returns the path and its sha256."""
    path = Path(path or LOCAL_PATH)
    if path not in _built:
        data = zipapp_bytes()
        digest = formats.sha256_bytes(data)
        if not path.is_file() or formats.sha256_file(path) != digest:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f".{path.name}.{os.getpid()}")
            temp.write_bytes(data)
            os.chmod(temp, 0o755)
            os.replace(temp, path)
        _built[path] = digest
    return path, _built[path]


def ensure_tool() -> Iterator[StringCommand | FileUploadCommand]:
    """Commands that put the release tool on the server when it lacks it or holds another
    build (compared by sha256): root-owned, 0755, in a root-owned 0755 folder."""
    local, digest = build()
    if host.get_fact(Sha256File, path=REMOTE_PATH) == digest:
        return
    # Two runs may install it at once (two apps deployed at once): each uploads through its
    # own temporary files (pyinfra's default one is named after the destination, shared by
    # both, and one run's cleanup removed it under the other's copy) and renames its copy into
    # place, so a tool that is running is never rewritten under it.
    # (pyinfra's temp names are unique per call: a uuid's hash; fixed in fixture tests)
    staged = f"{REMOTE_DIR}/.web2py-release.pyz.{host.get_temp_filename().rsplit('/', 1)[-1]}"
    yield StringCommand("install", "-d", "-o", "root", "-g", "root", "-m", "755", REMOTE_DIR)
    yield FileUploadCommand(str(local), staged, remote_temp_filename=host.get_temp_filename())
    yield StringCommand("chown", "root:root", staged)
    yield StringCommand("chmod", "755", staged)
    yield StringCommand("mv", "-f", staged, REMOTE_PATH)


class BoundedRun(StringCommand):
    """The release tool's run of a deploy, rollback or restore, waited for at most
    ``timeout`` seconds. The run is detached on the server (server/detach.py): if the link
    drops or the run outlasts the bound, it goes on there to its end, and the controller can
    only say so, in one line naming the host, the app and the command that shows the outcome,
    and fail the operation (pyinfra exits non-zero)."""

    def __init__(self, *bits: object, app_name: str, action: str, timeout: int):
        super().__init__(*bits, _timeout=timeout)
        self.app_name, self.action, self.timeout = app_name, action, timeout

    def execute(
        self, state: State, on: Host, connector_arguments: ConnectorArguments
    ) -> tuple[bool, CommandOutput]:
        """Run it; a timeout or a broken connection is reported as "outcome unknown"."""
        try:
            return super().execute(state, on, connector_arguments)
        except (TimeoutError, gevent.Timeout, OSError, SSHException, EOFError) as error:
            why = (
                f"no end of the run within {self.timeout} s (the link is lost, or the run slow)"
                if isinstance(error, (TimeoutError, gevent.Timeout))
                else f"the connection broke ({type(error).__name__}: {error})"
            )
            logger.error(
                f"{on.name}: {self.app_name}: {self.action} outcome unknown: {why}; the server "
                "ends the run on its own: see how with pyinfra INVENTORY deploys/status.py"
            )
            return False, CommandOutput([])


class BoundedUpload(FileUploadCommand):
    """A deploy's package upload, given at most ``timeout`` seconds. The release tool has not
    run yet, so the live release is unchanged; if the link drops, the controller says so in one
    line and fails the operation, rather than wait on TCP's own timeouts."""

    def __init__(self, src: str, dest: str, *, app_name: str, timeout: int):
        super().__init__(src, dest)
        self.app_name, self.timeout = app_name, timeout

    def execute(self, state: State, on: Host, connector_arguments: ConnectorArguments) -> bool:
        """Upload; a timeout or a broken connection is one line, and False."""

        def upload() -> tuple[bool, BaseException | None]:
            try:
                return super(BoundedUpload, self).execute(state, on, connector_arguments), None
            except (OSError, SSHException, EOFError) as error:
                return False, error

        # In a greenlet of its own, left behind on a timeout: an exception raised into a
        # stalled SFTP write only moves the wait to the file's close, which waits for the
        # server's answers on the same dead link.
        worker = gevent.spawn(upload)
        worker.join(timeout=self.timeout)
        if worker.ready():
            status, error = worker.value
            if error is None:
                return status
            why = f"the connection broke ({type(error).__name__}: {error})"
        else:
            worker.kill(block=False)
            why = f"no end of the upload within {self.timeout} s (the link is lost, or slow)"
        logger.error(
            f"{on.name}: {self.app_name}: deploy not started: {why}; the live release is "
            "unchanged: run the deploy again"
        )
        return False


def run_tool(
    *args: str, bound: tuple[str, str, int] | None = None
) -> Iterator[StringCommand | FileUploadCommand]:
    """Commands that ensure the release tool is on the server, then run it with ``args``
    (each quoted). ``bound``: (app, action, seconds) for a detached run (:class:`BoundedRun`)."""
    yield from ensure_tool()
    quoted = (QuoteString(str(arg)) for arg in args)
    if bound is None:
        yield StringCommand(REMOTE_PATH, *quoted)
        return
    app_name, action, timeout = bound
    yield BoundedRun(REMOTE_PATH, *quoted, app_name=app_name, action=action, timeout=timeout)


@operation()
def install():
    """
    Install the release tool (``server/`` as one zipapp) at ``REMOTE_PATH``, when the server
    lacks this build.

    **Example:**

    .. code:: python

        release_tool.install(name="Release tool")
    """
    changed = False
    for command in ensure_tool():
        changed = True
        yield command
    if not changed:
        host.noop("the release tool is up to date")
