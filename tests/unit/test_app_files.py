"""Shared files, the rendered appconfig and the auth-key plan: pure logic on the controller."""

import configparser
import hashlib

import pytest

from operations.local.app_files import (
    APPCONFIG,
    AUTH_KEY,
    DEFAULT_SHARED_FILES,
    HostFiles,
    Secret,
    auth_key_plan,
    auth_key_setting,
    missing_shared_files,
    new_auth_key,
    render_appconfig,
)
from operations.settings.validators import ConfigError, as_shared_paths


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def held(key: str | None = None, shared=(), legacy=()) -> HostFiles:
    return HostFiles(tuple(shared), tuple(legacy), sha(key) if key else None)


def test_declared_shared_files_are_deduplicated():
    assert as_shared_paths("k", ["private/a.ini", "private/a.ini"]) == ("private/a.ini",)
    assert as_shared_paths("k", "routes.py") == ("routes.py",)


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "private/../x", "private//x", "databases/x", "uploads", "a\n", ""]
)
def test_bad_shared_file_paths_are_refused(bad):
    with pytest.raises(ConfigError, match="k: "):
        as_shared_paths("k", [bad])


def test_appconfig_renders_what_appconfig_reads_with_secrets_masked():
    env = {"SHOP_DB_PASSWORD": "s3cr%t"}
    rendered = render_appconfig(
        "deploy_apps['shop'].appconfig",
        {
            "db": {"uri": "postgres://shop:${SHOP_DB_PASSWORD}@db/shop", "pool_size": 10},
            "app": {"production": True, "names": ["a", "b"], "toolbar": None},
        },
        env,
    )
    assert rendered is not None
    parser = configparser.ConfigParser()  # web2py's AppConfig: configparser, % interpolation
    parser.read_string(rendered.text.value)
    assert parser.get("db", "uri") == "postgres://shop:s3cr%t@db/shop"
    assert parser.get("app", "production") == "true" and parser.get("db", "pool_size") == "10"
    assert parser.get("app", "names") == "a, b" and parser.get("app", "toolbar") == "none"
    assert "s3cr" not in rendered.masked and "shop:********@db" in rendered.masked
    assert "s3cr" not in repr(rendered) and "s3cr" not in str(rendered.text)
    assert rendered.sha256 == sha(rendered.text.value)


def test_appconfig_refuses_missing_variables_and_line_breaks():
    with pytest.raises(ConfigError, match=r"\$\{NOPE\} is not set"):
        render_appconfig("k", {"db": {"uri": "${NOPE}"}}, {})
    with pytest.raises(ConfigError, match="line break"):
        render_appconfig("k", {"db": {"uri": "${X}"}}, {"X": "a\n[evil]"})
    with pytest.raises(ConfigError, match="bad section"):
        render_appconfig("k", {"d b": {}}, {})
    assert render_appconfig("k", None, {}) is None


def test_auth_key_setting_comes_from_the_environment_only():
    assert auth_key_setting("k", "${KEY}", {"KEY": "sha512:abc"}) == Secret("sha512:abc")
    with pytest.raises(ConfigError, match="reference to the environment"):
        auth_key_setting("k", "sha512:literal-key", {})
    assert auth_key_setting("k", None, {}) is None


def test_missing_declared_files_are_those_nothing_provides():
    declared = ("private/a.ini", "private/b.ini", "private/c.ini", "private/d.ini", AUTH_KEY)
    host = held(shared={"private/a.ini"}, legacy={"private/b.ini"})
    assert missing_shared_files("shop", declared, {"private/c.ini": "x"}, host) == ["private/d.ini"]


def test_auth_key_generated_once_for_hosts_that_have_none():
    source, key = auth_key_plan("k", {}, {"a": held(), "b": held()}, None)
    assert source == "generated" and key.value.startswith("sha512:")
    assert new_auth_key() != new_auth_key()


def test_auth_key_from_the_package_or_the_hosts_that_hold_it():
    assert auth_key_plan("k", {AUTH_KEY: sha("P")}, {"a": held()}, None) == ("package", None)
    assert auth_key_plan("k", {}, {"a": held("H"), "b": held()}, None) == ("hosts", None)
    setting = Secret("S")
    assert auth_key_plan("k", {}, {"a": held("S"), "b": held()}, setting) == ("setting", setting)


def test_auth_keys_that_disagree_are_refused():
    with pytest.raises(ConfigError, match="differs between hosts"):
        auth_key_plan("k", {}, {"a": held("A"), "b": held("B")}, None)
    with pytest.raises(ConfigError, match="the package's private/auth.key differs"):
        auth_key_plan("k", {AUTH_KEY: sha("P")}, {"a": held("A")}, None)
    with pytest.raises(ConfigError, match="auth_key differs from the key a holds"):
        auth_key_plan("k", {}, {"a": held("A")}, Secret("S"))


def test_the_defaults_cover_the_scaffold_files():
    assert APPCONFIG in DEFAULT_SHARED_FILES and AUTH_KEY in DEFAULT_SHARED_FILES
