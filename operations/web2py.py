"""Operations that manage a web2py installation: its source tree, admin password and apps."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from .facts.web2py import PACKAGE_MARKER, SOURCE_MARKER, MarkerFile, Web2pyAdminPassword
from .formats import sha256_text
from .local.passwords import web2py_parameters_for
from .scripts import run_script
from .secrets_upload import upload_secret

# The layout install-source.py makes (README, "Threat model"): the framework root's, the app user
# writing only web2py's scratch and apps' data. In the marker, so an install made with an older
# layout (the whole tree the app user's) is laid out again once, even from the same zip.
LAYOUT = "layout-2"

# Installs or upgrades web2py from a zip already on the server. An upgrade replaces framework
# files and adds apps the zip has and the server lacks; it never touches existing apps (their
# code and data belong to app deploys), parameters_*.py or routes.py.

# Replaces one app's files with the content of a package (a tar.gz on the server), keeping its
# runtime data folders, then records the package's sha256 in the app folder.


@operation()
def source(zip_path: str, root: str, sha256: str, user: str, group: str):
    """
    Install (or upgrade) web2py at ``root`` from a source zip on the server.

    + zip_path: path of ``web2py_src.zip`` on the server (already verified)
    + root: where web2py lives, e.g. ``/home/www-data/web2py``
    + sha256: the zip's sha256, recorded in ``root`` so an unchanged source is a no-op
    + user: the app user: owns web2py's scratch (logs/, deposit/) and the apps' data folders
    + group: its group: reads ``parameters_*.py`` (root-owned, 0640)

    The zip is extracted by a checked routine (no links or special files, no absolute, ``//``
    or ``..`` names); the tree is root-owned (README, "Threat model"). The zip's
    ``handlers/wsgihandler.py`` is copied to ``root`` where uWSGI loads it. On an upgrade,
    framework files are replaced; existing apps, ``parameters_*.py`` and ``routes.py`` are kept.

    **Example:**

    .. code:: python

        web2py.source(
            name="Install web2py",
            zip_path="/var/cache/pyinfra-web2py/web2py_src-3f2a.zip",
            root="/home/www-data/web2py",
            sha256="3f2a...",
            user="www-data",
            group="www-data",
        )
    """
    marker = f"{LAYOUT} {sha256}"
    installed = host.get_fact(MarkerFile, path=f"{root}/{SOURCE_MARKER}")
    if installed == marker:
        host.noop(f"web2py at {root} is already installed from {sha256[:12]}")
        return
    yield from run_script("install-source.py", zip_path, root, marker, f"{user}:{group}")


@operation()
def app_files(
    app_name: str,
    package_path: str,
    sha256: str,
    root: str,
    user: str,
    group: str,
):
    """
    Make an app's code exactly the content of a package, keeping its data folders.

    + app_name: the app (its folder under ``applications/``)
    + package_path: a ``.tar.gz`` built by ``operations.local.controller.app_package``, on the
      server
    + sha256: the package's sha256; an app already holding it is a no-op
    + root: the web2py root
    + user: owner of the app's files
    + group: group of the app's files

    An app deployed with releases (``deploys/app_deploy.py``) is left alone: installing web2py
    again never overwrites the live release.

    **Example:**

    .. code:: python

        web2py.app_files(
            name="Install app notes",
            app_name="notes",
            package_path="/var/cache/pyinfra-web2py/app-notes-9c1e.tar.gz",
            sha256="9c1e...",
            root="/home/www-data/web2py",
            user="www-data",
            group="www-data",
        )
    """
    app_dir = f"{root}/applications/{app_name}"
    if host.get_fact(MarkerFile, path=f"{app_dir}/REVISION"):
        host.noop(f"app {app_name} is managed by app_deploy (releases): left as it is")
        return
    installed = host.get_fact(MarkerFile, path=f"{app_dir}/{PACKAGE_MARKER}")
    if installed == sha256:
        host.noop(f"app {app_name} already holds package {sha256[:12]}")
        return
    yield from run_script("install-app.sh", package_path, app_dir, sha256, f"{user}:{group}")


@operation()
def admin_password(root: str, password: str, port: int, user: str, group: str):
    """
    Set web2py's admin password in ``parameters_<port>.py``, hashed on the controller.

    + root: the web2py root
    + password: the admin password in clear; it never leaves the controller
    + port: the port web2py's admin is reached on (443 behind nginx's HTTPS)
    + user: the app user (web2py reads the file as it)
    + group: the group that reads the file: it is ``root:group`` 0640, not the app user's to
      change

    The server only ever reports the salt and a sha256 of the file, so an unchanged password
    is detected without reading the hash back; a changed one is written atomically. The hash's
    cost is always ours: a weaker one found in the file is replaced, never re-used.

    **Example:**

    .. code:: python

        web2py.admin_password(
            name="Set the web2py admin password",
            root="/home/www-data/web2py",
            password=admin_password(host.data),  # operations.settings.install
            port=443,
            user="www-data",
            group="www-data",
        )
    """
    path = f"{root}/parameters_{int(port)}.py"
    current = host.get_fact(Web2pyAdminPassword, path=path)
    content = web2py_parameters_for(password, current["prefix"] if current else None)
    if current and current["sha256"] == sha256_text(content):
        host.noop(f"admin password in {path} is up to date")
        return
    yield from upload_secret(content.encode(), path, "root", group, "640")
