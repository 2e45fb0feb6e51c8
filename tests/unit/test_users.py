import subprocess

import pytest

from operations.local.sudoers import sudoers_rules
from operations.settings.users import user_settings
from operations.settings.validators import ConfigError


@pytest.fixture()
def key_file(tmp_path):
    path = tmp_path / "id.pub"
    path.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9v alice@laptop\n")
    return path


def test_user_settings_read_key_and_scope(key_file):
    data = {"deploy_user": "alice", "deploy_user_public_key": str(key_file)}
    u = user_settings(data, environ={})
    assert u.public_key.startswith("ssh-ed25519 ")
    assert u.sudo == "web2py" and u.groups == ("www-data",)  # group_data/all.py's default


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "deploy_user: required"),
        ({"deploy_user": "root"}, "refusing to manage root"),
        ({"deploy_user": "alice", "deploy_user_sudo": "all"}, "deploy_user_sudo: expected one of"),
        ({"deploy_user": "alice", "deploy_user_public_key": "/nope.pub"}, "no such file"),
        ({"deploy_user": "Alice Smith", "deploy_user_public_key": "KEY"}, "deploy_user: expected"),
        (
            {
                "deploy_user": "alice",
                "deploy_user_sudo": "password",
                "deploy_user_public_key": "KEY",
            },
            "needs deploy_user_password",
        ),
    ],
)
def test_bad_user_data(data, message, key_file):
    data = {k: (str(key_file) if v == "KEY" else v) for k, v in data.items()}
    with pytest.raises(ConfigError, match=message):
        user_settings(data, environ={})


def test_private_key_is_refused(tmp_path):
    path = tmp_path / "id"
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not one SSH public key line"):
        user_settings({"deploy_user": "alice", "deploy_user_public_key": str(path)}, environ={})


@pytest.mark.parametrize("scope", ["web2py", "password", "full"])
def test_sudoers_rules_pass_visudo(tmp_path, scope):
    rules = sudoers_rules("alice", scope)
    path = tmp_path / "alice"
    path.write_text(rules)
    result = subprocess.run(["visudo", "-c", "-q", "-f", str(path)], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_web2py_scope_is_narrow():
    rules = sudoers_rules("alice", "web2py", ("notes",))
    assert "NOPASSWD: ALL" not in rules
    assert "/usr/bin/systemctl reload web2py-uwsgi" in rules
    assert "/usr/bin/systemctl restart web2py-scheduler@notes," in rules
    assert "*" not in rules  # a sudoers wildcard matches across arguments
    assert sudoers_rules("alice", "none") is None


@pytest.mark.parametrize("user", ["root\n", "root", "www-data"])
def test_root_and_the_app_user_are_refused_as_deploy_users(user):

    with pytest.raises(ConfigError, match="deploy_user: "):
        user_settings({"deploy_user": user, "deploy_user_sudo": "none"}, environ={})


def test_no_groups_when_asked(key_file):
    data = {"deploy_user": "alice", "deploy_user_public_key": str(key_file)}
    assert user_settings({**data, "deploy_user_groups": []}, environ={}).groups == ()
