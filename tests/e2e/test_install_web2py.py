"""install_web2py on bare sandbox servers: served over HTTP and HTTPS, idempotent, secret-safe."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import urllib.parse
import warnings

import pytest

from operations.local.passwords import web2py_hash

from .sandboxlib import http_get, pyinfra, wait_for

ROOT_DIR = "/home/www-data/web2py"


def test_first_run_changed_things_and_second_run_changes_nothing(installed):
    first, second = installed["first"].totals, installed["second"].totals
    assert first["hosts"] > 0 and first["changed"] > 0 and first["errors"] == 0
    assert second["changed"] == 0, installed["second"].output[-4000:]
    assert second["errors"] == 0 and second["unchanged"] > 0


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_welcome_page_served_through_nginx(installed, https):
    for server in installed["hosts"]:
        status, headers, body = http_get(server.address, "/welcome/default/index", https=https)
        assert status == 200, (server, body[:500])
        assert b"Welcome" in body
        assert headers["server"].startswith("nginx")


def test_example_app_served_and_writes_its_database(installed):
    server = installed["hosts"][0]
    status, _, body = http_get(server.address, "/notes/default/index")
    assert status == 200 and b"notes" in body.lower()
    listing = server.run(f"ls {ROOT_DIR}/applications/notes/databases/")
    assert ".sqlite" in listing and ".table" in listing
    owner = server.run(f"stat -c '%U' {ROOT_DIR}/applications/notes/databases").strip()
    assert owner == "www-data"


def test_static_files_come_straight_from_nginx(installed):
    server = installed["hosts"][0]
    # Stop uWSGI: a static file must still be served, by nginx alone.
    server.run("systemctl stop web2py-uwsgi")
    try:
        status, headers, body = http_get(server.address, "/notes/static/css/notes.css")
        assert status == 200 and len(body) > 0
        assert "max-age=86400" in headers.get("cache-control", "")
        dynamic, _, _ = http_get(server.address, "/notes/default/index")
        assert dynamic == 502  # proves the dynamic path really needs uWSGI
    finally:
        server.run("systemctl start web2py-uwsgi")


def _client_can_speak(version: ssl.TLSVersion, tmp_path) -> bool:
    """Sanity check on loopback: this client really offers ``version`` (so a refusal is nginx's)."""
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_ctx.minimum_version = ssl.TLSVersion.TLSv1
    server_ctx.set_ciphers("ALL:@SECLEVEL=0")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1024)
                tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        status, _, _ = http_get("127.0.0.1", "/", https=True, port=port, tls_max=version)
        return status == 200
    except ssl.SSLError:
        return False
    finally:
        thread.join(10)
        listener.close()


def test_old_tls_versions_are_refused(installed, tmp_path):
    server = installed["hosts"][0]
    assert _client_can_speak(ssl.TLSVersion.TLSv1_1, tmp_path)
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError):
            http_get(server.address, "/welcome/default/index", https=True, tls_max=old)
    status, _, _ = http_get(
        server.address, "/welcome/default/index", https=True, tls_max=ssl.TLSVersion.TLSv1_2
    )
    assert status == 200


def test_tls_1_2_offers_forward_secret_aead_ciphers_only(installed):
    server = installed["hosts"][0]

    def handshake(cipher: str) -> int:
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"{server.address}:443", "-tls1_2",
             "-cipher", cipher],
            input=b"", capture_output=True, timeout=30,
        ).returncode  # fmt: skip

    assert handshake("AES128-SHA") != 0  # RSA key exchange, CBC: refused
    assert handshake("ECDHE-RSA-AES128-SHA") != 0  # forward secret, but not AEAD: refused
    assert handshake("ECDHE-RSA-AES128-GCM-SHA256") == 0


def test_hsts_only_when_asked_and_only_over_https(installed):
    server, env = installed["hosts"][0], installed["env"]

    def hsts(https: bool = True) -> str | None:
        return http_get(server.address, "/welcome/default/index", https=https)[1].get(
            "strict-transport-security"
        )

    assert hsts() is None
    run = pyinfra(
        "deploys/install_web2py.py", [server], data={"nginx_hsts_seconds": "600"}, env=env
    )
    try:
        assert run.returncode == 0, run.output[-3000:]
        # nginx reloads gracefully: old workers may answer a moment longer
        assert wait_for(lambda: hsts() == "max-age=600", 15), hsts()
        assert hsts(https=False) is None
    finally:
        back = pyinfra("deploys/install_web2py.py", [server], env=env)
        assert back.returncode == 0, back.output[-3000:]
    assert wait_for(lambda: hsts() is None, 15), hsts()


def test_certificate_is_rsa_2048_or_more(installed):
    server = installed["hosts"][0]
    text = server.run("openssl x509 -in /etc/ssl/web2py/web2py.crt -noout -text")
    bits = int(text.split("Public-Key: (")[1].split(" bit")[0])
    assert bits >= 2048


def test_services_active_and_enabled(installed):
    for server in installed["hosts"]:
        for unit in ("nginx", "web2py-uwsgi"):
            assert server.run(f"systemctl is-active {unit}").strip() == "active"
            assert server.run(f"systemctl is-enabled {unit}").strip() == "enabled"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # root's: the app user reads the admin password's hash, it cannot change it
        (f"{ROOT_DIR}/parameters_443.py", "root www-data 640"),
        ("/etc/ssl/web2py/web2py.key", "root root 600"),
        ("/etc/ssl/web2py/web2py.crt", "root root 644"),
        ("/etc/web2py/uwsgi.ini", "root root 644"),
        ("/etc/systemd/system/web2py-uwsgi.service", "root root 644"),
        (f"{ROOT_DIR}/wsgihandler.py", "root root 644"),
        (ROOT_DIR, "root root 755"),
        (f"{ROOT_DIR}/gluon/main.py", "root root 644"),
        (f"{ROOT_DIR}/applications", "root root 755"),
        (f"{ROOT_DIR}/logs", "www-data www-data 750"),
        ("/run/web2py/uwsgi.sock", "www-data www-data 660"),
    ],
)
def test_owners_and_modes(installed, path, expected):
    server = installed["hosts"][0]
    assert server.run(f"stat -c '%U %G %a' {path}").strip() == expected


def test_admin_password_hash_and_login(installed, admin_password):
    server = installed["hosts"][0]
    stored = server.run(f"cat {ROOT_DIR}/parameters_443.py").strip()
    hashed = stored.removeprefix('password="').removesuffix('"')
    alg, salt, _ = hashed.split("$")
    iterations, keylen, digest = alg.removeprefix("pbkdf2(").removesuffix(")").split(",")
    assert web2py_hash(admin_password, salt, int(iterations), int(keylen), digest) == hashed
    assert int(iterations) >= 100_000

    def login(password: str):
        body = urllib.parse.urlencode({"password": password}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return http_get(
            server.address, "/admin/default/index", https=True, method="POST", body=body,
            headers=headers,
        )  # fmt: skip

    status, headers, _ = login(admin_password)
    assert status == 303 and "/admin/default/site" in headers["location"]
    status, _, body = login("wrong-" + admin_password)
    assert status != 303


def test_admin_password_never_printed_or_logged(installed, admin_password):
    server = installed["hosts"][0]
    stored = server.run(f"cat {ROOT_DIR}/parameters_443.py").strip()
    hash_part = stored.split("$")[-1].rstrip('"')
    for run in (installed["first"], installed["second"]):
        assert admin_password not in run.output
        assert hash_part not in run.output
    # -vvv really printed the commands run on the server: this check can see a leak
    assert "/usr/local/lib/pyinfra-web2py/install-source.py" in installed["first"].output
    journal = server.run("journalctl --no-pager -o cat | cat")
    assert admin_password not in journal and hash_part not in journal
    # Search logs and temp files here, not with grep there: a grep's command line (logged by
    # sudo) would itself put the password in the journal.
    dump = server.run_bytes("tar -C / -cf - var/log tmp var/tmp 2>/dev/null || true")
    assert len(dump) > 10_000  # the logs really came back
    assert admin_password.encode() not in dump and hash_part.encode() not in dump
