"""bin/sandbox releases: choosing one, its mirrors and recipe, the state that records it."""

import json

import pytest

from sandbox import cli, commands, image, server
from sandbox.config import ConfigError, load_settings
from sandbox.mirror import Mirrors, guest_sources, parse_deb822, parse_one_line, release_mirrors
from sandbox.release import (
    DEFAULT_RELEASE,
    LEGACY_RELEASE,
    RELEASES,
    check_image_release,
    choose_release,
    describe,
    parse_os_release,
    parse_release,
    release_of,
)
from sandbox.state import Server, State, load, save
from sandbox.util import SandboxError

MIRRORS = Mirrors("http://m.test/debian", "http://m.test/debian", "http://s.test/debian-security")

# A Debian 12 host's /etc/apt/sources.list.d/debian.sources: it names bookworm only.
BOOKWORM_HOST = """\
Types: deb
URIs: http://deb.test/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.test/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def make_server(name="w2p-1", **extra):
    fields = dict(
        name=name, address="10.213.0.11", netns=f"w2pbr0-{name}", veth="v0123456789",
        base="default", lower="/cache/bases/k/rootfs", root=f"/s/servers/{name}/root",
        ssh_user="deploy", ssh_key="/s/id_ed25519", known_hosts="/s/known_hosts",
        log=f"/s/logs/{name}.console.log",
    )  # fmt: skip
    fields.update(extra)
    return Server(**fields)


def os_release(codename: str, version: str) -> str:
    return (
        f'PRETTY_NAME="Debian GNU/Linux {version} ({codename})"\nNAME="Debian GNU/Linux"\n'
        f'VERSION_ID="{version}"\nVERSION="{version} ({codename})"\n'
        f"VERSION_CODENAME={codename}\nID=debian\n"
    )


# --- which release ---------------------------------------------------------------------------


def test_releases_and_default():
    assert RELEASES == {"bullseye": "11", "bookworm": "12", "trixie": "13"}
    assert DEFAULT_RELEASE == "bookworm" and LEGACY_RELEASE == "bookworm"
    assert describe("trixie") == "Debian 13 (trixie)"


@pytest.mark.parametrize(
    ("text", "release"),
    [("trixie", "trixie"), ("Bookworm", "bookworm"), (" bullseye ", "bullseye"),
     ("13", "trixie"), ("12", "bookworm"), ("11", "bullseye")],
)  # fmt: skip
def test_parse_release_takes_codenames_and_numbers(text, release):
    assert parse_release(text) == release


@pytest.mark.parametrize("text", ["buster", "10", "sid", "forky", "", "12.5", "debian"])
def test_parse_release_refuses_others_in_one_line(text):
    with pytest.raises(SandboxError) as info:
        parse_release(text)
    message = str(info.value)
    assert "\n" not in message and message.startswith("--release ")
    assert "bullseye (11), bookworm (12), trixie (13)" in message


def test_settings_default_release_from_the_environment():
    assert load_settings({}).default_release == DEFAULT_RELEASE
    assert load_settings({"W2P_SANDBOX_RELEASE": "13"}).default_release == "trixie"
    with pytest.raises(ConfigError, match="W2P_SANDBOX_RELEASE 'stretch'"):
        load_settings({"W2P_SANDBOX_RELEASE": "stretch"})


def test_choose_release_order_of_preference():
    # asked for, on a fresh prefix
    assert choose_release("trixie", "bookworm", "w2p", []) == "trixie"
    # not asked: the default, or what the prefix's servers already run
    assert choose_release(None, "bookworm", "w2p", []) == "bookworm"
    assert choose_release(None, "bookworm", "w2p", [("w2p-1", "bullseye")]) == "bullseye"
    # the same release again is fine (idempotent up)
    assert choose_release("trixie", "bookworm", "w2p", [("w2p-1", "trixie")]) == "trixie"
    # a saved image boots what it is
    assert choose_release(None, "bookworm", "g", [], "trixie", "gold") == "trixie"
    assert choose_release("trixie", "bookworm", "g", [], "trixie", "gold") == "trixie"


def test_choose_release_refuses_another_release_on_a_prefix():
    running = [("h2t-2", "trixie"), ("h2t-1", "trixie")]
    with pytest.raises(SandboxError) as info:
        choose_release("bookworm", "bookworm", "h2t", running)
    assert str(info.value) == (
        "prefix h2t runs trixie (h2t-1, h2t-2), not bookworm: use another --prefix "
        "or bin/sandbox down h2t-1, h2t-2 first"
    )
    with pytest.raises(SandboxError, match="prefix h2t runs trixie"):
        choose_release(None, "bookworm", "h2t", running, "bookworm", "gold")


def test_choose_release_refuses_a_release_the_image_is_not():
    with pytest.raises(SandboxError, match="image gold is trixie: it cannot boot bullseye"):
        choose_release("bullseye", "bookworm", "g", [], "trixie", "gold")


def test_cli_passes_the_release_and_refuses_a_bad_one(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    monkeypatch.setattr(commands, "up", lambda *args: calls.append(args))
    for key in ("W2P_SANDBOX_RELEASE", "W2P_SANDBOX_BRIDGE", "W2P_SANDBOX_SUBNET"):
        monkeypatch.delenv(key, raising=False)
    assert cli.main(["up", "2", "--release", "13", "--prefix", "h2t"]) == 0
    assert cli.main(["up", "1"]) == 0
    assert [c[1:] for c in calls] == [(2, "default", "h2t", "trixie"), (1, "default", "w2p", None)]
    assert cli.main(["up", "1", "--release", "buster"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bin/sandbox: error: --release 'buster'")
    assert len(calls) == 2


# --- os-release --------------------------------------------------------------------------------


def test_parse_os_release():
    fields = parse_os_release(os_release("trixie", "13") + "# comment\n\nBAD LINE\n")
    assert fields["VERSION_CODENAME"] == "trixie" and fields["VERSION_ID"] == "13"
    assert fields["PRETTY_NAME"] == "Debian GNU/Linux 13 (trixie)"


def test_release_of_follows_links_inside_the_root_only(tmp_path):
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "usr/lib/os-release").write_text(os_release("bullseye", "11"))
    (root / "etc/os-release").symlink_to("../usr/lib/os-release")  # as Debian ships it
    assert release_of(root) == "bullseye"
    # an absolute link means the server's own /usr/lib/os-release, not the host's
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").symlink_to("/usr/lib/os-release")
    assert release_of(root) == "bullseye"
    # a link leading out of the root is not followed
    outside = tmp_path / "outside-os-release"
    outside.write_text(os_release("trixie", "13"))
    (root / "usr/lib/os-release").unlink()
    (root / "usr/lib/os-release").symlink_to("../../../outside-os-release")
    (root / "etc/os-release").unlink()
    assert release_of(root) is None
    assert release_of(tmp_path / "empty") is None


def test_check_image_release(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(os_release("trixie", "13"))
    check_image_release(tmp_path, "trixie", "default")
    with pytest.raises(SandboxError, match=r"image default \(.*\) is trixie, not bookworm"):
        check_image_release(tmp_path, "bookworm", "default")


# --- mirrors and recipe ----------------------------------------------------------------------


def test_other_releases_take_the_host_mirror_with_their_own_suites():
    sources = parse_deb822(BOOKWORM_HOST)
    expected = Mirrors(
        "http://deb.test/debian", "http://deb.test/debian", "http://deb.test/debian-security"
    )
    for release in RELEASES:
        assert release_mirrors(sources, release) == expected
    text = guest_sources(release_mirrors(sources, "trixie"), "trixie")
    assert "URIs: http://deb.test/debian\nSuites: trixie trixie-updates\n" in text
    assert "URIs: http://deb.test/debian-security\nSuites: trixie-security\n" in text
    assert "bookworm" not in text
    text = guest_sources(release_mirrors(sources, "bullseye"), "bullseye")
    assert "Suites: bullseye bullseye-updates\n" in text and "Suites: bullseye-security\n" in text


def test_a_host_entry_for_the_release_itself_wins():
    sources = parse_one_line(
        "deb http://deb.test/debian bookworm main\n"
        "deb http://old.test/debian bullseye main\n"
        "deb http://old.test/debian-security bullseye-security main\n"
    )
    assert release_mirrors(sources, "bullseye") == Mirrors(
        "http://old.test/debian", None, "http://old.test/debian-security"
    )
    assert release_mirrors(sources, "trixie") == Mirrors("http://deb.test/debian", None, None)


def test_no_debian_suite_at_all_is_one_clear_error():
    sources = parse_one_line("deb http://other.test/repo nodistro main\n")
    with pytest.raises(Exception, match=r"for trixie main .*nor for bookworm or bullseye"):
        release_mirrors(sources, "trixie")


def test_recipe_key_includes_the_suite():
    keys = {r: image.recipe_key(image.recipe(MIRRORS, {}, r)) for r in RELEASES}
    assert len(set(keys.values())) == 3
    for release in RELEASES:
        assert image.recipe(MIRRORS, {}, release)["suite"] == release
    # bookworm's recipe is the one from before releases: its cached base image stays valid
    assert image.recipe(MIRRORS, {}) == image.recipe(MIRRORS, {}, "bookworm")
    assert set(image.recipe(MIRRORS, {}, "bookworm")) == {
        "version", "suite", "variant", "packages", "mirrors", "apt_options", "user", "masked",
    }  # fmt: skip
    with pytest.raises(SandboxError, match="no base image recipe for 'buster'"):
        image.recipe(MIRRORS, {}, "buster")


def test_the_same_package_names_exist_in_every_release():
    for release in RELEASES:
        packages = image.packages(release)
        for name in ("systemd-sysv", "dbus", "openssh-server", "sudo", "python3", "curl"):
            assert name in packages


# --- state -------------------------------------------------------------------------------------


def test_state_records_the_release(tmp_path):
    path = tmp_path / "state.json"
    save(path, State(servers=[make_server("h2t-1", release="trixie"), make_server("w2p-1")]))
    data = json.loads(path.read_text())
    assert [s["release"] for s in data["servers"]] == ["trixie", DEFAULT_RELEASE]
    assert load(path).get("h2t-1").release == "trixie"


def test_servers_from_before_releases_were_bookworm(tmp_path):
    path = tmp_path / "state.json"
    old = {k: v for k, v in vars(make_server()).items() if k != "release"}
    path.write_text(json.dumps({"version": 1, "servers": [old]}))
    assert load(path).get("w2p-1").release == "bookworm"


def test_new_servers_take_the_release_of_their_image(tmp_path):
    settings = load_settings({"W2P_SANDBOX_DIR": str(tmp_path)})
    img = image.Image("default", tmp_path / "rootfs", "bullseye")
    entry = server.new_server(settings, "h2o-1", "10.213.0.11", img)
    assert entry.release == "bullseye" and entry.base == "default"


def test_servers_of_a_prefix():
    state = State(
        servers=[make_server(n) for n in ("h2t-1", "h2t-12", "h2t2-1", "h2-1", "h2t-x", "w2p-1")]
    )
    assert [s.name for s in state.with_prefix("h2t")] == ["h2t-1", "h2t-12"]
    assert [s.name for s in state.with_prefix("h2")] == ["h2-1"]


def test_a_host_keyring_without_the_release_key_is_recognised():
    assert image.unknown_key(
        "I: Checking Release signature\nE: Release signed by unknown key (key id 762F67A0B2C39DE4)"
    )
    assert image.unknown_key(
        "W: Cannot check Release signature; keyring file not available /usr/share/keyrings/x.gpg"
    )
    assert not image.unknown_key("E: Couldn't find these debs: systemd-sysv")
