"""What the app user may write: every path under the web2py root, the apps dir, /etc/web2py,
/etc/nginx, /etc/systemd/system, /usr/local/lib and /etc/sudoers.d that ``www-data`` can write
(asked of the kernel as www-data itself: ``find -writable`` is access(2), ACLs included) must be
exactly the documented set (README, "Threat model").

Runs on the attack suite's server after the attacks (this module sorts after test_attacks.py), so
it also proves that no attack left a writable path behind.
"""

from __future__ import annotations

import re

from .attacklib import APPS_DIR, WEB2PY, Target, as_www

SCANNED = (
    WEB2PY,
    APPS_DIR,
    "/etc/web2py",
    "/etc/nginx",
    "/etc/systemd/system",
    "/usr/local/lib",
    "/etc/sudoers.d",
)
# web2py's data folders in an app (app_config.DATA_DIRS): written by the app at runtime
DATA = "(databases|errors|sessions|cache|uploads)"
# a plain-folder app's, and private/ (web2py's older scaffolds write auth.key there)
PLAIN_DATA = "(databases|errors|sessions|cache|uploads|private)"
# The documented set: each pattern names a folder the app user writes, with everything in it.
DOCUMENTED = (
    # web2py's own scratch in its root: logs, and deposit (admin's packed apps)
    rf"{re.escape(WEB2PY)}/(logs|deposit)",
    # the data folders of apps installed as plain folders (welcome, admin, web2py_apps)
    rf"{re.escape(WEB2PY)}/applications/[A-Za-z0-9_]+/{PLAIN_DATA}",
    # the data of apps deployed as releases, and data a restore set aside (the app's own)
    rf"{re.escape(APPS_DIR)}/[A-Za-z0-9_]+/shared/{DATA}",
    rf"{re.escape(APPS_DIR)}/[A-Za-z0-9_]+/shared/\.{DATA}\.before-restore-[0-9TZ-]+",
)


def documented_root(path: str) -> str | None:
    """The documented folder ``path`` is (or is in), else None."""
    for pattern in DOCUMENTED:
        match = re.match(rf"({pattern})(/.*)?$", path)
        if match:
            return match.group(1)
    return None


def writable_by_app(target: Target) -> list[str]:
    out = target.server.run(
        as_www(f"find {' '.join(SCANNED)} ! -type l -writable -print 2>/dev/null; true"),
        timeout=120,
    )
    return sorted(line for line in out.splitlines() if line)


def test_documented_root_matcher():
    assert documented_root(f"{WEB2PY}/logs") == f"{WEB2PY}/logs"
    assert documented_root(f"{WEB2PY}/logs/x/y") == f"{WEB2PY}/logs"
    assert documented_root(f"{WEB2PY}/applications/welcome/sessions/ab/c") == (
        f"{WEB2PY}/applications/welcome/sessions"
    )
    assert documented_root(f"{WEB2PY}/applications") is None
    assert documented_root(f"{WEB2PY}/applications/welcome/controllers/default.py") is None
    assert documented_root(f"{WEB2PY}/gluon/main.py") is None
    assert documented_root(f"{WEB2PY}/logsx") is None
    assert documented_root(f"{APPS_DIR}/notes/shared/files/private/auth.key") is None


def test_app_user_writes_exactly_the_documented_set(attacked):
    writable = writable_by_app(attacked)
    undocumented = [path for path in writable if documented_root(path) is None]
    assert undocumented == [], f"www-data can write outside the documented set: {undocumented}"
    roots = {documented_root(path) for path in writable}
    # every documented folder that exists on the server is writable: nothing more, nothing less
    existing = attacked.server.run(
        f"ls -d {WEB2PY}/logs {WEB2PY}/deposit "
        f"{WEB2PY}/applications/*/databases {WEB2PY}/applications/*/errors "
        f"{WEB2PY}/applications/*/sessions {WEB2PY}/applications/*/cache "
        f"{WEB2PY}/applications/*/uploads {WEB2PY}/applications/*/private "
        f"{APPS_DIR}/*/shared/* {APPS_DIR}/*/shared/.*.before-* "
        "2>/dev/null; true"
    ).split()
    expected = {path for path in existing if documented_root(path) == path}
    # a plain-folder app adopted by app_deploy is a link to its releases now: its data is shared/
    links = attacked.server.run(
        f'for a in {WEB2PY}/applications/*; do [ -L "$a" ] && echo "$a"; done; true'
    ).split()
    expected = {p for p in expected if not any(p.startswith(link + "/") for link in links)}
    assert roots == expected


def test_framework_is_roots_and_parameters_group_readable_only(attacked):
    server = attacked.server
    for path in (
        WEB2PY,
        f"{WEB2PY}/gluon",
        f"{WEB2PY}/gluon/main.py",
        f"{WEB2PY}/handlers/wsgihandler.py",
        f"{WEB2PY}/wsgihandler.py",
        f"{WEB2PY}/web2py.py",
        f"{WEB2PY}/applications",
        f"{WEB2PY}/site-packages",
        f"{WEB2PY}/.pyinfra-web2py-source",
    ):
        owner = server.run(f"stat -c '%U %a' {path}").split()
        assert owner[0] == "root", (path, owner)
        assert int(owner[1], 8) & 0o022 == 0, (path, owner)
    assert server.run(f"stat -c '%U:%G %a' {WEB2PY}/parameters_443.py").strip() == (
        "root:www-data 640"
    )
    # the folder web2py_root is in is root's too: the app user cannot swap web2py_root
    parent = WEB2PY.rsplit("/", 1)[0]
    assert server.run(f"stat -c '%U' {parent}").strip() == "root"
    # web2py's own source is readable (uWSGI imports it) but not the app user's to change
    assert server.run(as_www(f"test -r {WEB2PY}/gluon/main.py && echo ok")).strip() == "ok"
