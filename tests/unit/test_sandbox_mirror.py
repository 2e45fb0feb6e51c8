"""bin/sandbox reads the Debian mirror from the host's apt config (both formats)."""

import pytest

from sandbox.mirror import (
    MirrorError,
    find_mirrors,
    guest_sources,
    host_mirrors,
    parse_deb822,
    parse_one_line,
)

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.test/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.test/debian-security/
Suites: bookworm-security
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.test/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.test/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# a comment
deb-src http://src.test/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian.gpg] http://m.test/debian bookworm main contrib
deb http://m.test/debian bookworm-updates main  # trailing comment
deb http://security.test/debian-security bookworm-security main
"""


def test_deb822_stanzas_skip_disabled_and_keep_fields():
    sources = parse_deb822(DEB822)
    assert [s.uris for s in sources] == [
        ("http://mirror.test/debian",),
        ("http://mirror.test/debian-security/",),
        ("http://src.test/debian",),
    ]
    assert sources[0].suites == ("bookworm", "bookworm-updates")
    assert sources[1].components == ("main", "contrib")
    assert sources[2].types == ("deb-src",)


def test_deb822_mirrors():
    mirrors = find_mirrors(parse_deb822(DEB822))
    assert mirrors.main == "http://mirror.test/debian"
    assert mirrors.updates == "http://mirror.test/debian"
    assert mirrors.security == "http://mirror.test/debian-security"


def test_one_line_options_and_comments():
    sources = parse_one_line(ONE_LINE)
    assert len(sources) == 4
    main = sources[1]
    assert main.uris == ("http://m.test/debian",) and main.components == ("main", "contrib")
    assert main.options["arch"] == "amd64"
    assert sources[2].components == ("main",)


def test_one_line_mirrors():
    mirrors = find_mirrors(parse_one_line(ONE_LINE))
    assert mirrors.main == "http://m.test/debian"
    assert mirrors.updates == "http://m.test/debian"
    assert mirrors.security == "http://security.test/debian-security"


def test_deb_src_only_or_https_only_is_an_error():
    with pytest.raises(MirrorError, match="no http 'deb' source for bookworm main"):
        find_mirrors(parse_one_line("deb-src http://src.test/debian bookworm main\n"))
    with pytest.raises(MirrorError, match="only https"):
        find_mirrors(parse_one_line("deb https://m.test/debian bookworm main\n"))


def test_no_security_or_updates():
    mirrors = find_mirrors(parse_one_line("deb http://m.test/debian bookworm main\n"))
    assert mirrors.updates is None and mirrors.security is None
    text = guest_sources(mirrors)
    assert "Suites: bookworm\n" in text and "security" not in text


def test_guest_sources_groups_suites_by_uri():
    text = guest_sources(find_mirrors(parse_deb822(DEB822)))
    assert "URIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\n" in text
    assert "URIs: http://mirror.test/debian-security\nSuites: bookworm-security\n" in text


def test_host_mirrors_reads_both_places(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# nothing here\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text(
        "deb http://wrong.test/debian bookworm main\n"
    )
    assert host_mirrors(tmp_path).main == "http://mirror.test/debian"
    (tmp_path / "sources.list").write_text("deb http://first.test/debian bookworm main\n")
    assert host_mirrors(tmp_path).main == "http://first.test/debian"
