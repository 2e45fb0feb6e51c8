"""create_user: key login as that user, group www-data, sha512-crypt password, checked sudo."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from operations.local.passwords import sha512_crypt_hash

from .sandboxlib import ROOT, pyinfra


@pytest.fixture(scope="module")
def alice(tmp_path_factory, installed):
    server = installed["hosts"][1]
    keydir = tmp_path_factory.mktemp("alice")
    key = keydir / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@test", "-f", str(key)],
        check=True, timeout=30,
    )  # fmt: skip
    password = "pw-" + secrets.token_urlsafe(16)
    data = {"deploy_user": "alice", "deploy_user_public_key": f"{key}.pub"}
    env = {"DEPLOY_USER_PASSWORD": password}
    first = pyinfra("deploys/create_user.py", [server], data=data, env=env, extra=["-vvv"])
    assert first.returncode == 0, first.output[-5000:]
    second = pyinfra("deploys/create_user.py", [server], data=data, env=env)
    assert second.returncode == 0, second.output[-5000:]
    return {"server": server, "key": key, "password": password, "runs": (first, second)}


def ssh_as_alice(alice, *command: str) -> subprocess.CompletedProcess:
    state = ROOT / ".sandbox"
    return subprocess.run(
        [
            "ssh", "-i", str(alice["key"]), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={state / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=10", f"alice@{alice['server'].address}", *command,
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_idempotent(alice):
    first, second = alice["runs"]
    assert first.totals["changed"] > 0
    assert second.totals["changed"] == 0, second.output[-3000:]


def test_logs_in_with_key_and_is_in_www_data(alice):
    result = ssh_as_alice(alice, "id")
    assert result.returncode == 0, result.stderr
    assert "uid=" in result.stdout and "(alice)" in result.stdout and "(www-data)" in result.stdout
    home_mode = alice["server"].run("stat -c '%U %a' /home/alice").strip()
    assert home_mode == "alice 750"
    assert alice["server"].run("stat -c '%U %a' /home/alice/.ssh/authorized_keys").split()[0] == (
        "alice"
    )


def test_scoped_sudo_works_and_nothing_more(alice):
    allowed = ssh_as_alice(alice, "sudo", "-n", "/usr/bin/systemctl", "reload", "nginx")
    assert allowed.returncode == 0, allowed.stderr
    denied = ssh_as_alice(alice, "sudo", "-n", "id")
    assert denied.returncode != 0
    # a unit pattern must not stretch over more arguments (sudoers' * would)
    sneaky = ssh_as_alice(
        alice, "sudo", "-n", "/usr/bin/systemctl", "start", "web2py-scheduler@x", "debug-shell"
    )
    assert sneaky.returncode != 0
    listed = alice["server"].run("sudo -l -U alice")
    assert "/usr/bin/systemctl reload nginx" in listed and "*" not in listed, listed
    rules = alice["server"].run("stat -c '%U %G %a' /etc/sudoers.d/alice").strip()
    assert rules == "root root 440"
    assert alice["server"].run("visudo -c -q && echo ok").strip() == "ok"


def test_password_is_sha512_crypt_and_secret(alice):
    field = alice["server"].run("getent shadow alice | cut -d: -f2").strip()
    assert field.startswith("$6$rounds=")
    salt_part = field.rsplit("$", 1)[0]
    rounds = int(salt_part.split("rounds=")[1].split("$")[0])
    salt = salt_part.rsplit("$", 1)[1]
    assert sha512_crypt_hash(alice["password"], salt=salt, rounds=rounds) == field
    for run in alice["runs"]:
        assert alice["password"] not in run.output
        assert field.rsplit("$", 1)[1] not in run.output
    leftovers = alice["server"].run("ls -a /etc | grep pyinfra || true").strip()
    assert leftovers == ""


def test_bad_sudoers_is_refused_and_old_kept(alice):
    # A drop-in visudo rejects must never be installed: the old one stays.
    server = alice["server"]
    before = server.run("sha256sum /etc/sudoers.d/alice")
    server.run(
        "printf 'alice ALL=(ALL NOPASSWD ALL\\n' > /tmp/bad && cp /tmp/bad /etc/sudoers.d/.alice"
    )
    result = server.run(
        "/usr/local/lib/pyinfra-web2py/install-sudoers.sh /etc/sudoers.d/.alice "
        "/etc/sudoers.d/alice; echo rc=$?",
        check=False,
    )
    assert "rc=1" in result
    assert server.run("sha256sum /etc/sudoers.d/alice") == before
    assert server.run("test -e /etc/sudoers.d/.alice && echo left || echo gone").strip() == "gone"
