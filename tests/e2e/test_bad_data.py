"""Bad data: one clear line, a non-zero exit, and nothing changed on any host."""

from __future__ import annotations

import pytest

from .sandboxlib import pyinfra

SNAPSHOT = (
    "{ dpkg-query -W -f '${Package} ${Version}\\n'; "
    "find /etc/nginx /etc/web2py /etc/ssl/web2py /etc/systemd/system /etc/sudoers.d /home "
    "/usr/local/lib/pyinfra-web2py /var/cache/pyinfra-web2py "
    "-xdev \\( -path '*/sessions' -o -path '*/databases' \\) -prune -o -print 2>/dev/null "
    "| sort | while read -r f; do stat -c '%n %U %G %a %s %Y' \"$f\"; done; "
    "systemctl is-active nginx web2py-uwsgi 2>/dev/null; } | sha256sum"
)

BAD_INPUTS = [
    ({"web2py_apps": '{"notes": "/no/such/app"}'}, "web2py_apps['notes']: no such folder"),
    ({"web2py_sha256": "0" * 64}, "web2py_sha256: "),
    ({"tls_cert": "/no/such.crt", "tls_key": "/no/such.key"}, "tls_cert: no such file"),
    ({"https_port": "https"}, "https_port: expected a whole number, got 'https'"),
    ({"http_port": "80a"}, "http_port: expected a whole number"),
    ({"http_prot": "8080"}, "--data http_prot: unknown data key; did you mean http_port?"),
]


@pytest.mark.parametrize(("data", "message"), BAD_INPUTS, ids=lambda v: str(v)[:30])
def test_bad_data_fails_cleanly_and_changes_nothing(servers, installed, data, message):
    bare, done = servers[2], installed["hosts"][0]
    before = {s.name: s.run(SNAPSHOT) for s in (bare, done)}
    run = pyinfra("deploys/install_web2py.py", [done, bare], data=data)
    assert run.returncode != 0
    error_lines = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert len(error_lines) == 1, run.output[-3000:]
    assert message in error_lines[0]
    assert "Traceback" not in run.output
    after = {s.name: s.run(SNAPSHOT) for s in (bare, done)}
    assert after == before


def test_bare_server_really_is_bare(servers):
    # the snapshot above would hide nothing only if the bare server never got web2py
    assert servers[2].run("test -e /home/www-data/web2py && echo yes || echo no").strip() == "no"
