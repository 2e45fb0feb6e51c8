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

The pure logic (data checks, allow-list and page rendering) is here too, unit-tested.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import jinja2
from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.files import File, Sha256File

from .config import ConfigError, as_app_name, as_int, as_remote_path

ACTIONS = ("notify", "down", "up")
DEFAULT_MESSAGES = {
    "notify": "Maintenance is planned soon: this site may be unavailable for a few minutes.",
    "down": "This site is down for maintenance and will be back shortly.",
    "up": "",
}
MAX_MESSAGE = 2000
MAX_RETRY_AFTER = 7 * 86400
BYPASS = ".allowed"  # the value of $w2p_maintenance_bypass for allow-listed clients
# A line of the locations file that only a config with maintenance support (and the health
# check's way through it) has.
MARKER = "w2p_health_bypass"
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "maintenance.html.j2"


@dataclass(frozen=True)
class MaintenanceConfig:
    """What deploys/maintenance.py does, checked. Built by :func:`maintenance_config`."""

    action: str
    app: str
    message: str
    allow: tuple[str, ...]  # normalized networks, sorted
    retry_after: int
    config_dir: str
    web2py_root: str

    @property
    def directory(self) -> str:
        return maintenance_dir(self.config_dir)


def maintenance_dir(config_dir: str) -> str:
    return f"{config_dir}/maintenance"


def as_action(value: Any) -> str:
    if value not in ACTIONS:
        expected = ", ".join(ACTIONS)
        raise ConfigError(f"maintenance_action: expected one of {expected}, got {value!r}")
    return value


def as_message(key: str, value: Any, action: str) -> str:
    if value in (None, ""):
        return DEFAULT_MESSAGES[action]
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a text, got {value!r}")
    text = value.strip().replace("\r\n", "\n")
    if not text:
        raise ConfigError(f"{key}: the text is blank")
    if len(text) > MAX_MESSAGE:
        raise ConfigError(f"{key}: {len(text)} characters, at most {MAX_MESSAGE}")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise ConfigError(f"{key}: control characters are not allowed, got {value!r}")
    return text


def as_networks(key: str, value: Any) -> tuple[str, ...]:
    """IP addresses and CIDR networks (v4 or v6), normalized, deduplicated and sorted."""
    if value in (None, "", [], ()):
        return ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of IP addresses or networks, got {value!r}")
    networks = set()
    for item in value:
        try:
            networks.add(ipaddress.ip_network(item.strip(), strict=True))
        except ValueError as error:
            hint = ""
            if "host bits set" in str(error):
                hint = f" (the network is {ipaddress.ip_network(item.strip(), strict=False)})"
            raise ConfigError(f"{key}: {item!r} is not an IP address or network{hint}") from None
    return tuple(
        str(n) for n in sorted(networks, key=lambda n: (n.version, n.network_address, n.prefixlen))
    )


def maintenance_config(data: Any) -> MaintenanceConfig:
    """Check deploys/maintenance.py's data (``host.data``); ConfigError on the first bad key."""
    get = data.get
    action = as_action(get("maintenance_action"))
    app = get("maintenance_app")
    if not app:
        raise ConfigError("maintenance_app: required, e.g. --data maintenance_app=notes")
    return MaintenanceConfig(
        action=action,
        app=as_app_name("maintenance_app", app),
        message=as_message("maintenance_message", get("maintenance_message"), action),
        allow=as_networks("maintenance_allow", get("maintenance_allow")),
        retry_after=as_int(
            "maintenance_retry_after", get("maintenance_retry_after", 600), 1, MAX_RETRY_AFTER
        ),
        config_dir=as_remote_path("web2py_config_dir", get("web2py_config_dir", "/etc/web2py")),
        web2py_root=as_remote_path("web2py_root", get("web2py_root", "/home/www-data/web2py")),
    )


# --- rendering (on the controller) -------------------------------------------------------------


def render_allow(networks: tuple[str, ...] | list[str]) -> str:
    """The allow-list as lines of the site's ``geo`` block (empty: nobody bypasses)."""
    return "".join(f"{network} {BYPASS};\n" for network in networks)


def retry_text(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} minutes"
    hours = round(seconds / 3600)
    return f"about {hours} hour{'s' if hours != 1 else ''}"


def _template() -> jinja2.Template:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    return env.from_string(TEMPLATE.read_text())


def render_page(app: str, message: str, retry_after: int) -> str:
    """The 503 page of an app that is down (a whole HTML document; the message is plain text)."""
    return _template().render(
        part="page", app=app, message=message, retry_text=retry_text(retry_after)
    )


def render_notice(app: str, message: str) -> str:
    """The notice fragment inserted into the app's pages (the message is plain text)."""
    return _template().render(part="notice", app=app, message=message, retry_text="")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- facts and operations (on the servers) -----------------------------------------------------


class MaintenanceState(FactBase[dict[str, Any]]):
    """
    An app's maintenance files: ``down`` (bool), ``notify`` (sha256 of the notice or None),
    ``page`` (the page link's target or None), ``page_sha256``; ``app`` (the app exists) and
    ``supported`` (the installed nginx locations know maintenance).

    .. code:: python

        host.get_fact(MaintenanceState, config_dir="/etc/web2py", app="notes",
                      web2py_root="/home/www-data/web2py")
    """

    def command(self, config_dir: str, app: str, web2py_root: str) -> StringCommand:
        script = (
            'd="$1/maintenance"; a="$2"; '
            'if [ -f "$d/$a.down" ]; then echo down; fi; '
            'if [ -f "$d/$a.notify" ]; then echo "notify $(sha256sum < "$d/$a.notify")"; fi; '
            'if [ -L "$d/$a.page" ]; then echo "page $(readlink "$d/$a.page")"; fi; '
            'if [ -f "$d/$a.page/index.html" ]; then '
            'echo "page_sha256 $(sha256sum < "$d/$a.page/index.html")"; fi; '
            'if [ -e "$3/applications/$a" ]; then echo app; fi; '
            f'if grep -qs {MARKER} "$1/nginx-locations.conf"; then echo supported; fi'
        )
        return StringCommand(
            "sh", "-c", QuoteString(script), "maintenance",
            QuoteString(config_dir), QuoteString(app), QuoteString(web2py_root),
        )  # fmt: skip

    def process(self, output: list[str]) -> dict[str, Any]:
        state: dict[str, Any] = {
            "down": False, "notify": None, "page": None, "page_sha256": None,
            "app": False, "supported": False,
        }  # fmt: skip
        for line in output:
            key, _, value = line.strip().partition(" ")
            if key in ("down", "app", "supported"):
                state[key] = True
            elif key in ("notify", "page_sha256"):
                state[key] = value.split()[0] if value.split() else None
            elif key == "page":
                state[key] = value or None
        return state


def check_host(state: dict[str, Any], app: str, mode: str, web2py_root: str) -> None:
    """Refuse ``down`` and ``notify`` where they cannot work (``up`` always can)."""
    if mode == "up":
        return
    if not state["supported"]:
        raise OperationError(
            f"{host.name}: the nginx config has no maintenance support yet "
            "(run deploys/install_web2py.py first)"
        )
    if not state["app"]:
        raise OperationError(f"{host.name}: no app {app} in {web2py_root}/applications")


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
      (``operations.maintenance.as_networks``); empty: nobody bypasses

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
    state: dict[str, Any], directory: str, app: str, message: str, retry_after: int
) -> list[StringCommand | FileUploadCommand]:
    """Put the app's 503 page in place (nothing when it already is)."""
    page = render_page(app, message, retry_after)
    target = f"pages/{app}/retry-{int(retry_after)}"
    if state["page"] == target and state["page_sha256"] == sha256_text(page):
        return []
    folder = f"{directory}/{target}"
    link = f"{directory}/{app}.page"
    # each level 0755 whatever the umask: nginx's workers (www-data) read the page
    levels = (f"{directory}/pages", f"{directory}/pages/{app}", folder)
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
                QuoteString(f"{directory}/pages/{app}"),
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
    app: str,
    mode: str,
    message: str = "",
    retry_after: int = 600,
    config_dir: str = "/etc/web2py",
    web2py_root: str = "/home/www-data/web2py",
):
    """
    Put a web2py app in maintenance mode ``down`` or ``notify``, or back ``up``, by files nginx
    tests on every request: no reload, no restart, effective at once.

    + app: the app's name (its folder under ``applications/``)
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
            name="notes down for maintenance", app="notes", mode="down",
            message="Back at 22:30 UTC.", retry_after=1800,
        )
    """
    if mode not in ACTIONS:
        raise OperationError(f"maintenance mode: expected one of {ACTIONS}, got {mode!r}")
    directory = maintenance_dir(config_dir)
    state = host.get_fact(MaintenanceState, config_dir=config_dir, app=app, web2py_root=web2py_root)
    check_host(state, app, mode, web2py_root)
    down_flag, notice_file = f"{directory}/{app}.down", f"{directory}/{app}.notify"

    commands: list[StringCommand | FileUploadCommand] = []
    if mode == "down":
        commands.extend(_page_commands(state, directory, app, message, retry_after))
        if not state["down"]:
            commands.append(StringCommand("touch", QuoteString(down_flag)))
        if state["notify"]:
            commands.append(StringCommand("rm", "-f", QuoteString(notice_file)))
    elif mode == "notify":
        notice = render_notice(app, message)
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
        host.noop(f"{app} is already {what}")
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
    app: str,
    notice: str = "",
    page_message: str = "",
    retry_after: int = 600,
    config_dir: str = "/etc/web2py",
    web2py_root: str = "/home/www-data/web2py",
    staged_notice: str = "",
):
    """
    Get an app ready for a deploy or restore under maintenance: its 503 page in place and, if
    a notice is given, the notice staged for the release tool (``--notice-file``), which puts it
    up when the deploy really starts, waits it out, takes the app down (the ``.down`` flag) and
    lifts both when done (``--down``). A run that dies before the tool starts leaves nothing
    visible.

    + app: the app's name
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
            name="notes: maintenance page and notice", app="notes",
            notice="Maintenance in one minute.", page_message="Back shortly.",
            staged_notice="/var/cache/pyinfra-web2py/notice-notes.html",
        )
    """
    if notice and not staged_notice:
        raise OperationError(
            f"{app}: a notice needs staged_notice (where the release tool finds it)"
        )
    state = host.get_fact(MaintenanceState, config_dir=config_dir, app=app, web2py_root=web2py_root)
    if not state["app"]:
        host.noop(f"{app} is not served yet: no maintenance window needed")
        return
    check_host(state, app, "down", web2py_root)
    directory = maintenance_dir(config_dir)
    commands = _page_commands(state, directory, app, page_message, retry_after)
    if notice and not state["down"]:
        commands.extend(_put_text(render_notice(app, notice), staged_notice))
    if not commands:
        host.noop(f"{app}: maintenance page in place")
        return
    yield from commands
