"""Maintenance mode for web2py apps, switched by files nginx reads on every request.

No nginx reload and no uWSGI restart toggles it: the nginx locations (installed by
install_web2py) test, per request, files in ``<web2py_config_dir>/maintenance`` (``MDIR``):

``MDIR/<app>.down``
    present: the app answers 503 with its page, except its static files and allow-listed clients.
``MDIR/<app>.page`` → ``pages/<app>/retry-<seconds>/`` (holding ``index.html``)
    the 503 page; nginx takes the ``Retry-After`` header from the folder's name (a link's target
    is read per request; a header value in the nginx config would need a reload). Kept after
    ``up``, so a request racing ``up`` still gets the page, never an error.
``MDIR/<app>.notify``
    present: the notice (an HTML fragment) nginx inserts before ``</body>`` of the app's pages.
``MDIR/allow.conf``
    the allow-list, ``geo`` entries: the only part that needs an nginx reload (``geo`` is read
    with the config), done gracefully and only when the list changes.
``MDIR/health-key.conf``
    the server's health-check key (root-only, made at install): the release tool's health check
    sends it in a header and passes an app that is down (a deploy under maintenance checks the
    new release through nginx before it goes up); nginx never passes that header to the apps.

Why there, not in the app: releases are read-only and replaced by every deploy, and a plain app
folder belongs to the app; flags under ``/etc`` survive deploys, rollbacks and reboots, are
writable by root only (the app cannot lift its own maintenance), and work the same for an app
deployed with releases or copied as a folder.

Why the notice comes from nginx, not web2py's ``response.flash``: setting the flash needs code
in the app (a model), and app code is not ours to change. nginx inserts the notice, as a fixed
bar, into every HTML page with ``</body>`` (``sub_filter``); its text is an SSI include of
``MDIR/<app>.notify``, so a new text needs no reload. Trade-offs: only while the app notifies,
its pages pass through ``sub_filter`` and SSI (chunked, without Last-Modified; the app is
asked for uncompressed answers, nginx's own gzip still applies); SSI commands in the app's own
output are made inert (``<!--#`` becomes ``<!-- #``); JSON, RSS, downloads and fragments
without ``</body>`` (Ajax components) are untouched; a strict Content-Security-Policy without
``'unsafe-inline'`` styles leaves the bar unstyled (the text still shows); a
``default_application`` served at ``/`` is not covered (only ``/<app>/...`` is).

The allow-list is matched against nginx's ``$remote_addr`` (the proxy's address behind a load
balancer, unless the real_ip module is set up).

Checks of the data: ``operations/settings/maintenance.py``; rendering of the page, the notice
and the allow-list: ``operations/local/pages.py``; the state fact:
``operations/facts/maintenance.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.files import File, Sha256File

from .facts.maintenance import MaintenanceState
from .formats import sha256_text
from .local.pages import render_allow, render_notice, render_page
from .settings.layout import maintenance_dir
from .settings.maintenance import ACTIONS


def check_host(state: dict[str, Any], app_name: str, mode: str, web2py_root: str) -> None:
    """Refuse ``down`` and ``notify`` where they cannot work (``up`` always can)."""
    if mode == "up":
        return
    if not state["supported"]:
        raise OperationError(
            f"{host.name}: the nginx config has no maintenance support yet "
            "(run deploys/install_web2py.py first)"
        )
    if not state["app"]:
        raise OperationError(f"{host.name}: no app {app_name} in {web2py_root}/applications")


def _put_text(text: str, dest: str) -> Iterator[StringCommand | FileUploadCommand]:
    """Write ``text`` to ``dest`` (root, 0644) atomically: a reader sees the old or the new."""
    staged = f"{dest}.pyinfra-new"
    yield FileUploadCommand(BytesIO(text.encode()), staged)
    yield StringCommand(
        "chmod", "644", QuoteString(staged), "&&",
        "mv", "-f", QuoteString(staged), QuoteString(dest),
    )  # fmt: skip


@operation()
def allow_list(path: str, networks: list[str]):
    """
    Set the maintenance allow-list (clients that still reach apps that are down), then reload
    nginx gracefully: ``geo`` is read with the config. Checked with ``nginx -t`` first; if that
    fails, the previous list is put back and the operation fails.

    + path: the file the site's ``geo $w2p_maintenance_bypass`` block includes
    + networks: IP addresses and CIDR networks, already checked
      (``operations.settings.validators.as_networks``); empty: nobody bypasses

    **Example:**

    .. code:: python

        maintenance.allow_list(
            name="Maintenance allow-list",
            path="/etc/web2py/maintenance/allow.conf",
            networks=["203.0.113.7/32", "2001:db8::/48"],
        )
    """
    content = render_allow(networks)
    if host.get_fact(Sha256File, path=path) == sha256_text(content):
        host.noop(f"maintenance allow-list {path} is up to date")
        return
    staged = f"{path}.pyinfra-new"
    script = (
        'chmod 644 "$1" && { cp -p "$2" "$2.prev" 2>/dev/null || : > "$2.prev"; } && '
        'mv -f "$1" "$2" && '
        'if nginx -t -q; then rm -f "$2.prev"; systemctl try-reload-or-restart nginx; '
        'else mv -f "$2.prev" "$2"; '
        'echo "nginx -t refused the new allow-list: the previous one is kept" >&2; exit 1; fi'
    )
    yield FileUploadCommand(BytesIO(content.encode()), staged)
    yield StringCommand(
        "sh", "-c", QuoteString(script), "allow-list", QuoteString(staged), QuoteString(path)
    )


def _page_commands(
    state: dict[str, Any], directory: str, app_name: str, message: str, retry_after: int
) -> list[StringCommand | FileUploadCommand]:
    """Put the app's 503 page in place (nothing when it already is)."""
    page = render_page(app_name, message, retry_after)
    target = f"pages/{app_name}/retry-{int(retry_after)}"
    if state["page"] == target and state["page_sha256"] == sha256_text(page):
        return []
    folder = f"{directory}/{target}"
    link = f"{directory}/{app_name}.page"
    # each level 0755 whatever the umask: nginx's workers (www-data) read the page
    levels = (f"{directory}/pages", f"{directory}/pages/{app_name}", folder)
    commands: list[StringCommand | FileUploadCommand] = [
        StringCommand("install", "-d", "-m", "755", *(QuoteString(d) for d in levels))
    ]
    commands.extend(_put_text(page, f"{folder}/index.html"))
    if state["page"] != target:
        staged = QuoteString(f"{link}.pyinfra-new")
        commands.append(
            StringCommand(
                "ln",
                "-sfn",
                QuoteString(target),
                staged,
                "&&",
                "mv",
                "-fT",
                staged,
                QuoteString(link),
            )  # fmt: skip
        )
        commands.append(
            StringCommand(
                "find",
                QuoteString(f"{directory}/pages/{app_name}"),
                "-mindepth",
                "1",
                "-maxdepth",
                "1",
                "!",
                "-name",
                QuoteString(f"retry-{int(retry_after)}"),
                "-exec",
                "rm",
                "-rf",
                "{}",
                "+",
            )  # fmt: skip
        )
    return commands


@operation()
def app_mode(
    app_name: str,
    mode: str,
    message: str,
    retry_after: int,
    config_dir: str,
    web2py_root: str,
):
    """
    Put a web2py app in maintenance mode ``down`` or ``notify``, or back ``up``, by files nginx
    tests on every request: no reload, no restart, effective at once.

    + app_name: the app's name (its folder under ``applications/``)
    + mode: ``down`` (503 and its page; static files and allow-listed clients pass),
      ``notify`` (the app serves, its HTML pages carry a notice) or ``up`` (neither)
    + message: the page's or notice's text (plain text, escaped)
    + retry_after: seconds, the 503's ``Retry-After`` header (``down``)
    + config_dir: ``web2py_config_dir``; the files live in its ``maintenance/``
    + web2py_root: the web2py root (``down`` and ``notify`` check that the app exists)

    The modes exclude each other: ``down`` removes the notice, ``notify`` lifts a ``down``. On
    the way down, the page is in place before the app answers 503; ``up`` keeps the page (a
    request racing it still gets one).

    **Example:**

    .. code:: python

        maintenance.app_mode(
            name="notes down for maintenance", app_name="notes", mode="down",
            message="Back at 22:30 UTC.", retry_after=1800,
            config_dir="/etc/web2py", web2py_root="/home/www-data/web2py",
        )
    """
    if mode not in ACTIONS:
        raise OperationError(f"maintenance mode: expected one of {ACTIONS}, got {mode!r}")
    directory = maintenance_dir(config_dir)
    state = host.get_fact(
        MaintenanceState, config_dir=config_dir, app_name=app_name, web2py_root=web2py_root
    )
    check_host(state, app_name, mode, web2py_root)
    down_flag, notice_file = f"{directory}/{app_name}.down", f"{directory}/{app_name}.notify"

    commands: list[StringCommand | FileUploadCommand] = []
    if mode == "down":
        commands.extend(_page_commands(state, directory, app_name, message, retry_after))
        if not state["down"]:
            commands.append(StringCommand("touch", QuoteString(down_flag)))
        if state["notify"]:
            commands.append(StringCommand("rm", "-f", QuoteString(notice_file)))
    elif mode == "notify":
        notice = render_notice(app_name, message)
        if state["notify"] != sha256_text(notice):
            commands.extend(_put_text(notice, notice_file))
        if state["down"]:
            commands.append(StringCommand("rm", "-f", QuoteString(down_flag)))
    else:
        if state["down"]:
            commands.append(StringCommand("rm", "-f", QuoteString(down_flag)))
        if state["notify"]:
            commands.append(StringCommand("rm", "-f", QuoteString(notice_file)))

    if not commands:
        what = {"down": "down for maintenance", "notify": "showing its notice", "up": "up"}[mode]
        host.noop(f"{app_name} is already {what}")
        return
    yield from commands


@operation()
def health_key(path: str):
    """
    Give the server its health-check key, once: 32 random bytes (hex) made on the server, in
    a root-only file the nginx site includes (``map``). The key never leaves the server nor
    appears in a command line; the release tool reads it from the file.

    + path: the key file (``<web2py_config_dir>/maintenance/health-key.conf``)

    **Example:**

    .. code:: python

        maintenance.health_key(
            name="Maintenance health-check key", path="/etc/web2py/maintenance/health-key.conf"
        )
    """
    info = host.get_fact(File, path=path)
    if info and info.get("size") and info.get("mode") == 600 and info.get("user") == "root":
        host.noop(f"{path} exists")
        return
    if info and info.get("size"):
        yield StringCommand(
            "chown", "root:root", QuoteString(path), "&&", "chmod", "600", QuoteString(path)
        )
        return
    # od and tr only see /dev/urandom's bytes; the key goes through a shell variable and
    # printf, a shell builtin, into a file made under umask 077. A regex entry, not a plain
    # one: a 64-character key would not fit nginx's default map_hash_bucket_size.
    script = (
        "umask 077; k=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \\n') && "
        '[ ${#k} -eq 64 ] && printf \'"~^%s$" .key;\\n\' "$k" > "$1.new" && mv -f "$1.new" "$1"'
    )
    yield StringCommand("sh", "-c", QuoteString(script), "health-key", QuoteString(path))


@operation()
def deploy_window(
    app_name: str,
    page_message: str,
    retry_after: int,
    config_dir: str,
    web2py_root: str,
    notice: str = "",
    staged_notice: str = "",
):
    """
    Get an app ready for a deploy or restore under maintenance: its 503 page in place and, if
    a notice is given, the notice staged for the release tool (``--notice-file``), which puts it
    up when the deploy really starts, waits it out, takes the app down (the ``.down`` flag) and
    lifts both when done (``--down``). A run that dies before the tool starts leaves nothing
    visible.

    + app_name: the app's name
    + notice: the notice's text; empty: no notice (the app goes down without one)
    + page_message: the 503 page's text
    + retry_after: seconds, the 503's ``Retry-After`` header
    + config_dir: ``web2py_config_dir``
    + web2py_root: the web2py root
    + staged_notice: where the notice waits for the release tool (in ``web2py_cache_dir``)

    An app that is already down gets no notice (it stays down; the release tool leaves it so),
    and a new app (not served yet) needs nothing.

    **Example:**

    .. code:: python

        maintenance.deploy_window(
            name="notes: maintenance page and notice", app_name="notes",
            notice="Maintenance in one minute.", page_message="Back shortly.", retry_after=600,
            config_dir="/etc/web2py", web2py_root="/home/www-data/web2py",
            staged_notice="/var/cache/pyinfra-web2py/notice-notes.html",
        )
    """
    if notice and not staged_notice:
        raise OperationError(
            f"{app_name}: a notice needs staged_notice (where the release tool finds it)"
        )
    state = host.get_fact(
        MaintenanceState, config_dir=config_dir, app_name=app_name, web2py_root=web2py_root
    )
    if not state["app"]:
        host.noop(f"{app_name} is not served yet: no maintenance window needed")
        return
    check_host(state, app_name, "down", web2py_root)
    directory = maintenance_dir(config_dir)
    commands = _page_commands(state, directory, app_name, page_message, retry_after)
    if notice and not state["down"]:
        commands.extend(_put_text(render_notice(app_name, notice), staged_notice))
    if not commands:
        host.noop(f"{app_name}: maintenance page in place")
        return
    yield from commands
