import hashlib
import re
import stat
import zipfile

import pytest

from operations.settings.install import (
    check_python_for_web2py,
    check_source,
)
from operations.settings.install import (
    install_settings as install_config,
)
from operations.settings.validators import ConfigError, as_port, as_remote_path


def web2py_zip(path, version="Version 2.27.1-stable+timestamp.2023.11.16.08.03.57"):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("web2py/VERSION", version + "\n")
        zf.writestr("web2py/handlers/wsgihandler.py", "# handler\n")
    return path


def base_data(tmp_path, **overrides):
    zip_path = web2py_zip(tmp_path / "web2py_src.zip")
    data = {"web2py_source": str(zip_path)}
    data.update(overrides)
    return data


def test_defaults_are_complete(tmp_path):
    c = install_config(base_data(tmp_path))
    assert c.root == "/home/www-data/web2py"
    assert (c.http_port, c.https_port, c.https_redirect) == (80, 443, False)
    digest = hashlib.sha256((tmp_path / "web2py_src.zip").read_bytes()).hexdigest()
    assert c.source.sha256 == digest and c.source.version == (2, 27)
    assert c.tls_cert is None and c.admin_password is None
    assert (c.schedulers, c.scheduler_stop_timeout) == ((), 60)


def test_admin_password_is_not_in_repr(tmp_path):
    c = install_config(base_data(tmp_path), admin_password="hunter2-secret")
    assert "hunter2-secret" not in repr(c)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"http_port": "eighty"}, "http_port: expected a whole number, got 'eighty'"),
        ({"https_port": 70000}, "https_port: 70000 is out of range 1-65535"),
        ({"http_port": 443}, "http_port and https_port: both are 443"),
        (
            {"web2py_source": "/nope/web2py_src.zip"},
            "web2py_source: no such file on the controller",
        ),
        ({"web2py_sha256": "abc"}, "web2py_sha256: expected 64 hexadecimal digits"),
        ({"web2py_sha256": "0" * 64}, "web2py_sha256: "),
        ({"tls_cert": "/nope.crt", "tls_key": "/nope.key"}, "tls_cert: no such file"),
        ({"tls_cert": "/nope.crt"}, "tls_cert and tls_key: give both"),
        ({"web2py_apps": {"notes": "/no/such/app"}}, "web2py_apps['notes']: no such folder"),
        ({"web2py_apps": {"bad-name": "."}}, "web2py_apps: expected a web2py app name"),
        ({"web2py_root": "relative/path"}, "web2py_root: expected an absolute path"),
        ({"web2py_root": "/home/../etc"}, "web2py_root: expected an absolute path without '..'"),
        ({"web2py_user": "Root Beer"}, "web2py_user: expected a user or group name"),
        ({"https_redirect": "maybe"}, "https_redirect: expected true or false"),
        ({"nginx_client_max_body_size": "10 MB"}, "nginx_client_max_body_size: expected a size"),
        ({"tls_key_bits": 1024}, "tls_key_bits: 1024 is out of range"),
        ({"nginx_server_name": "a;b"}, "nginx_server_name: expected host names or _"),
        ({"web2py_scheduler_stop_timeout": 0}, "web2py_scheduler_stop_timeout: 0 is out of"),
    ],
)
def test_bad_data_is_one_clear_line(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as error:
        install_config(base_data(tmp_path, **overrides))
    text = str(error.value)
    assert message in text
    assert "\n" not in text


def test_wrong_sha256_names_both_digests(tmp_path):
    data = base_data(tmp_path, web2py_sha256="f" * 64)
    with pytest.raises(ConfigError, match=r"has sha256 [0-9a-f]{64}, expected f{64}"):
        install_config(data)


def test_app_folder_must_be_a_web2py_app(tmp_path):
    app = tmp_path / "notes"
    app.mkdir()
    with pytest.raises(ConfigError, match="not a web2py app"):
        install_config(base_data(tmp_path, web2py_apps={"notes": str(app)}))
    (app / "controllers").mkdir()
    assert install_config(base_data(tmp_path, web2py_apps={"notes": str(app)})).apps == {
        "notes": app
    }


def test_strings_from_data_flag_are_converted(tmp_path):
    c = install_config(
        base_data(tmp_path, http_port="8080", https_redirect="yes", nginx_ipv6="false")
    )
    assert (c.http_port, c.https_redirect, c.ipv6) == (8080, True, False)


def test_url_source_keeps_optional_sha():
    source = check_source("https://example.org/web2py_src.zip", None)
    assert source.url and source.sha256 is None and source.local_path is None


def test_port_rejects_bool_and_float():
    for value in (True, 80.5, "80a", ""):
        with pytest.raises(ConfigError):
            as_port("http_port", value)


def test_remote_path_strips_trailing_slash():
    assert as_remote_path("web2py_root", "/srv/web2py/") == "/srv/web2py"


def test_a_file_that_is_not_a_web2py_zip_is_refused_on_the_controller(tmp_path):
    (tmp_path / "notzip.zip").write_bytes(b"not really a zip")
    with pytest.raises(ConfigError, match="notzip.zip is not a web2py source zip"):
        check_source(str(tmp_path / "notzip.zip"), None)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("something/else.txt", "x")
    with pytest.raises(ConfigError, match=r"not a web2py source zip \(no web2py/VERSION\)"):
        check_source(str(tmp_path / "other.zip"), None)


def test_web2py_2_is_refused_on_python_3_12_and_newer():
    assert "cannot run on Python 3.13" in check_python_for_web2py((2, 27), (3, 13))
    assert check_python_for_web2py((2, 27), (3, 11)) == ""
    assert check_python_for_web2py((3, 0), (3, 13)) == ""
    assert check_python_for_web2py((2, 27), None) == ""  # no python3 yet: the server checks


def test_web2py_apps_that_is_not_json_is_named(tmp_path):
    with pytest.raises(ConfigError, match="web2py_apps: not valid JSON"):
        install_config(base_data(tmp_path, web2py_apps='{"notes": '))


@pytest.mark.parametrize("value", ["www-data\n", "notes\n", "/srv/x\n"])
def test_validators_refuse_a_trailing_newline(value):
    from operations.settings.validators import as_app_name, as_unix_name

    with pytest.raises(ConfigError):
        as_unix_name("k", value)
    with pytest.raises(ConfigError):
        as_app_name("k", value)
    with pytest.raises(ConfigError):
        as_remote_path("k", value)


def test_a_plain_http_source_needs_a_sha256():
    with pytest.raises(ConfigError, match="web2py_source: http://example.org/w.zip is not https"):
        check_source("http://example.org/w.zip", None)
    assert check_source("http://example.org/w.zip", "a" * 64).sha256 == "a" * 64


@pytest.mark.parametrize(
    ("name", "mode", "why"),
    [
        ("web2py/handlers/wsgihandler.py", stat.S_IFLNK | 0o777, "is a link"),
        ("web2py/fifo", stat.S_IFIFO | 0o644, "is a special file"),
        ("web2py/../escape", stat.S_IFREG | 0o644, "'..' part"),
        ("web2py//etc/x", stat.S_IFREG | 0o644, "'..' part"),
        ("/etc/x", stat.S_IFREG | 0o644, "outside web2py/"),
    ],
)
@pytest.mark.filterwarnings("ignore:Duplicate name")  # the link stands in for the handler
def test_an_unsafe_web2py_zip_is_refused_before_upload(tmp_path, name, mode, why):
    path = web2py_zip(tmp_path / "web2py_src.zip")
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo(name)
        info.create_system, info.external_attr = 3, mode << 16
        zf.writestr(info, "/root/secret")
    with pytest.raises(ConfigError, match=f"unsafe entry .*{re.escape(why)}"):
        check_source(str(path), None)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("web2py_run_dir", "/tmp"),
        ("web2py_run_dir", "/run"),
        ("web2py_run_dir", "/var/run-web2py"),
        ("web2py_run_dir", "/run/web2py/deeper"),
        ("web2py_run_dir", "/run/lock"),
        ("web2py_cache_dir", "/tmp"),
        ("web2py_cache_dir", "/tmp/cache"),
        ("web2py_cache_dir", "/var/tmp/x"),
        ("web2py_cache_dir", "/dev/shm"),
    ],
)
def test_run_and_cache_dirs_are_folders_of_their_own(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key):
        install_config(base_data(tmp_path, **{key: value}))
