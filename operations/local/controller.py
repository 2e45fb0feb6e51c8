"""Controller-side work done once per run, whatever the number of hosts.

Deploy files are executed once per host (and pyinfra may evaluate operations twice), so
anything expensive or interactive lives here behind a cache keyed by its inputs.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.host import Host
from pyinfra.context import state

from ..facts.releases import SharedFiles
from ..formats import manifest_sha256, sha256_text
from ..settings.apps import AppSettings, DeploySettings
from ..settings.validators import ConfigError
from .app_files import AUTH_KEY, HostFiles, Secret, auth_key_plan, missing_shared_files
from .gitsource import export_commit
from .packaging import Delta, Package, build_delta, build_package

_packages: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Package] = {}
_deltas: dict[tuple[str, str, tuple[str, ...]], Delta | None] = {}
_host_files: dict[tuple[str, str], HostFiles] = {}
_auth_keys: dict[str, tuple[str, Secret | None]] = {}
_auth_keys_lock = threading.Lock()  # a gevent lock under pyinfra's CLI (it monkey-patches)
_build: list[Path] = []  # the run's build folder, made on first use (never at import)


def _build_dir() -> Path:
    if not _build:
        _build.append(Path(tempfile.mkdtemp(prefix="pyinfra-web2py-")))
    return _build[0]


def app_source(app: AppSettings) -> AppSettings:
    """The app with its folder on the controller: a git source (``source: "git"``) is exported
    here, exactly the commit ``ref`` names, once per run; its version label becomes
    ``git:<commit>`` unless the app sets one. Other sources are returned as they are."""
    if app.source != "git":
        return app
    exported = export_commit(f"deploy_apps[{app.name!r}]", app.repo, app.ref, app.subdir)
    return replace(app, path=exported.path, version=app.version or f"git:{exported.commit}")


def app_package(
    app_dir: Path,
    mode: str = "code",
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> Package:
    """
    The selective package of an app folder on the controller, built once per run whatever the
    number of hosts (``operations.local.packaging.build_package`` does the work).

    + app_dir: the app folder (for a git source: ``app_source(app).path``)
    + mode: ``code`` (models, controllers, modules, views, static, languages, cron, private and
      the top-level code files; never data) or ``full`` (everything but runtime scratch)
    + include: extra glob patterns on paths inside the app
    + exclude: glob patterns left out (they win over ``include``)

    The package is reproducible (same files, same bytes, same sha256) and carries the sha256
    manifest of its files. Deploys compose it with an upload and an install operation.

    **Example:**

    .. code:: python

        package = app_package(Path("apps/shop"), "code", exclude=("static/big/*",))
        files.put(name="Upload shop", src=str(package.path), dest="/var/cache/shop.tar.gz")
        web2py.app_files(
            name="Install shop", app_name="shop", package_path="/var/cache/shop.tar.gz",
            sha256=package.sha256, root="/home/www-data/web2py", user="www-data", group="www-data",
        )
    """
    key = (str(app_dir.resolve()), mode, include, exclude)
    if key not in _packages:
        out = _build_dir() / f"{app_dir.name}-{mode}-{len(_packages)}.tar.gz"
        _packages[key] = build_package(app_dir, out, mode=mode, include=include, exclude=exclude)
    return _packages[key]


def app_delta(
    package: Package, live_files: dict[str, str] | None, always: tuple[str, ...] = ()
) -> Delta | None:
    """The delta from a host's live release to ``package``, built once per distinct live
    release; None when a whole package is as good (no live manifest, or not smaller).
    ``always``: paths that travel even when unchanged (the live release's overlays)."""
    if not live_files:
        return None
    key = (package.sha256, manifest_sha256(live_files), always)
    if key not in _deltas:
        out = _build_dir() / f"{package.path.stem}-delta-{len(_deltas)}.tar.gz"
        delta = build_delta(package, live_files, out, always)
        smaller = delta.path.stat().st_size < package.path.stat().st_size
        _deltas[key] = delta if smaller else None
    return _deltas[key]


def host_files(target: Host, app_name: str, c: DeploySettings) -> HostFiles:
    """The ``SharedFiles`` fact of ``target``, fetched once per run (the auth-key plan needs
    every host's, and each host's own deploy file asks again)."""
    key = (target.name, app_name)
    if key not in _host_files:
        found = target.get_fact(
            SharedFiles,
            apps_dir=c.apps_dir,
            web2py_root=c.web2py_root,
            app_name=app_name,
            user=c.user,
        )
        _host_files[key] = found or HostFiles((), (), None)
    return _host_files[key]


def check_shared_files(app: AppSettings, package: Package, c: DeploySettings) -> None:
    """Refuse, before anything changes anywhere, a declared shared file that nothing provides
    on the current host (Capistrano's deploy:check:linked_files)."""
    if not app.shared_declared:
        return
    held = host_files(host, app.name, c)
    for path in missing_shared_files(app.name, app.shared_files, package.files, held):
        raise ConfigError(
            f"deploy_apps[{app.name!r}].shared_files: {path} is missing on {host.name} and "
            f"nothing provides it: put it at {c.apps_dir}/{app.name}/shared/files/{path}, "
            "ship it in the app, or drop it from shared_files"
        )


def auth_key_for(app: AppSettings, package: Package, c: DeploySettings) -> Secret | None:
    """The auth key to seed on the current host (None: it holds one, or the package seeds it).

    Decided once per run for all of its hosts, so they end up with one and the same key
    (``operations.local.app_files.auth_key_plan``); a key that only some hosts hold is read from one
    of them (as the web2py user, never printed) and pushed to the others."""
    if AUTH_KEY not in app.shared_files:
        return None
    # pyinfra prepares hosts in parallel greenlets, and the facts below yield to the others:
    # without the lock, two hosts would each plan (and generate) a key of their own.
    with _auth_keys_lock:
        if app.name not in _auth_keys:
            hosts = {h.name: h for h in state.inventory.iter_activated_hosts()}
            held = {name: host_files(h, app.name, c) for name, h in hosts.items()}
            source, key = auth_key_plan(
                f"deploy_apps[{app.name!r}].auth_key", package.files, held, app.auth_key
            )
            if source == "hosts" and not all(h.auth_key_sha256 for h in held.values()):
                holder = next(name for name, h in sorted(held.items()) if h.auth_key_sha256)
                key = _read_auth_key(hosts[holder], app.name, c, held[holder].auth_key_sha256)
            _auth_keys[app.name] = (source, key)
    if host_files(host, app.name, c).auth_key_sha256:
        return None
    return _auth_keys[app.name][1]


_READ_KEY = r"""
for key in "$1/$3/shared/files/private/auth.key" "$1/$3/shared/private/auth.key" \
           "$2/applications/$3/private/auth.key"; do
    if [ -f "$key" ] && [ ! -L "$key" ]; then exec timeout 5 cat < "$key"; fi
done
exit 1
"""


def _read_auth_key(holder: Host, app_name: str, c: DeploySettings, digest: str | None) -> Secret:
    command = StringCommand(
        "sh", "-c", QuoteString(_READ_KEY), "read-key",
        QuoteString(c.apps_dir), QuoteString(c.web2py_root), QuoteString(app_name),
    )  # fmt: skip
    ok, output = holder.run_shell_command(
        command, _sudo=True, _sudo_user=c.user, print_output=False, print_input=False
    )
    text = "\n".join(output.stdout_lines) if ok else ""
    # the exact bytes the holder has (output lines lost a final newline, if there was one)
    for candidate in (text, text + "\n"):
        if text.strip() and sha256_text(candidate) == digest:
            return Secret(candidate)
    raise ConfigError(
        f"deploy_apps[{app_name!r}].auth_key: could not read {AUTH_KEY} from {holder.name} "
        "to give the other hosts the same key; set auth_key"
    )
