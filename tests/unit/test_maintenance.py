"""Maintenance mode: data checks, allow-list and page rendering, and that the nginx templates
test exactly the files operations/maintenance.py writes."""

import re
from types import SimpleNamespace

import pytest
from pyinfra.api.util import get_template

from operations.facts.maintenance import MARKER, MaintenanceState
from operations.local.pages import BYPASS, render_allow, render_notice, render_page, retry_text
from operations.settings.maintenance import DEFAULT_MESSAGES, maintenance_settings
from operations.settings.validators import ConfigError, as_networks


def config(**data):
    return maintenance_settings({"maintenance_app": "notes", **data})


def test_defaults():
    c = config(maintenance_action="down")
    assert (c.action, c.app_name, c.allow, c.retry_after) == ("down", "notes", (), 600)
    assert c.message == DEFAULT_MESSAGES["down"]
    assert c.maintenance_dir == "/etc/web2py/maintenance"
    assert c.web2py_root == "/home/www-data/web2py"
    assert config(maintenance_action="notify").message == DEFAULT_MESSAGES["notify"]


def test_values_from_the_command_line_are_strings():
    c = config(
        maintenance_action="down", maintenance_retry_after="1800",
        maintenance_allow="10.213.0.1, 2001:db8::/32", maintenance_message="  Back at 22:30.\n",
        web2py_config_dir="/etc/w2p/",
    )  # fmt: skip
    assert c.retry_after == 1800
    assert c.allow == ("10.213.0.1/32", "2001:db8::/32")
    assert c.message == "Back at 22:30."
    assert c.maintenance_dir == "/etc/w2p/maintenance"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"maintenance_action": "sideways"}, "maintenance_action: expected one of notify, down"),
        ({"maintenance_action": None}, "maintenance_action: expected one of notify, down, up"),
        ({"maintenance_app": None}, "maintenance_app: required"),
        ({"maintenance_app": "no-tes"}, "maintenance_app: expected a web2py app name"),
        ({"maintenance_app": "../x"}, "maintenance_app: expected a web2py app name"),
        ({"maintenance_app": "1notes"}, "maintenance_app: expected a web2py app name"),
        ({"maintenance_allow": "10.0.0.1/8"}, "'10.0.0.1/8' is not an IP address or network"),
        ({"maintenance_allow": ["10.0.0.0/33"]}, "maintenance_allow: '10.0.0.0/33' is not"),
        ({"maintenance_allow": ["example.com"]}, "maintenance_allow: 'example.com' is not"),
        ({"maintenance_allow": {"a": 1}}, "maintenance_allow: expected a list"),
        ({"maintenance_allow": [10]}, "maintenance_allow: expected a list"),
        ({"maintenance_retry_after": 0}, "maintenance_retry_after: 0 is out of range"),
        ({"maintenance_retry_after": "soon"}, "maintenance_retry_after: expected a whole number"),
        ({"maintenance_message": "   "}, "maintenance_message: the text is blank"),
        ({"maintenance_message": "a\x1b[31m"}, "maintenance_message: control characters"),
        ({"maintenance_message": "x" * 2001}, "maintenance_message: 2001 characters"),
        ({"maintenance_message": ["a"]}, "maintenance_message: expected a text"),
        ({"web2py_config_dir": "etc"}, "web2py_config_dir: expected an absolute path"),
    ],
)
def test_bad_data_is_one_clear_line(data, message):
    with pytest.raises(ConfigError) as error:
        maintenance_settings({"maintenance_app": "notes", "maintenance_action": "down", **data})
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_host_bits_set_names_the_network():
    with pytest.raises(ConfigError, match=r"the network is 10\.0\.0\.0/8"):
        as_networks("maintenance_allow", ["10.0.0.1/8"])


def test_networks_are_normalized_deduplicated_and_sorted():
    given = ["2001:db8::/32", "192.0.2.0/24", "10.213.0.1", "10.213.0.1/32", "::1"]
    assert as_networks("k", given) == (
        "10.213.0.1/32", "192.0.2.0/24", "::1/128", "2001:db8::/32",
    )  # fmt: skip
    assert as_networks("k", None) == as_networks("k", "") == as_networks("k", []) == ()


def test_allow_list_renders_geo_lines():
    assert render_allow(["10.213.0.1/32", "2001:db8::/32"]) == (
        f"10.213.0.1/32 {BYPASS};\n2001:db8::/32 {BYPASS};\n"
    )
    # empty: the same bytes as the empty file install_web2py creates (no change, no reload)
    assert render_allow([]) == ""


def test_page_escapes_the_message_and_tells_when_to_retry():
    page = render_page("notes", 'Back <b>soon</b> & "later"\nsecond line', 1800)
    assert page.startswith("<!DOCTYPE html>")
    assert "Back &lt;b&gt;soon&lt;/b&gt; &amp; &#34;later&#34;\nsecond line" in page
    assert "<b>" not in page
    assert "notes is down for maintenance" in page
    assert "about 30 minutes" in page


def test_notice_is_one_escaped_fragment_that_cannot_carry_ssi():
    notice = render_notice("notes", 'At 22:00 <!--# include virtual="/admin/" -->')
    assert notice.startswith('<div id="w2p-maintenance-notice"') and notice.endswith("</div>\n")
    assert "<!--#" not in notice and "&lt;!--# include" in notice


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1 second"), (45, "45 seconds"), (600, "about 10 minutes"), (3600, "about 60 minutes"),
     (5400, "about 2 hours"),
     (7200, "about 2 hours")],
)  # fmt: skip
def test_retry_text(seconds, text):
    assert retry_text(seconds) == text


def test_state_fact_parses_the_files_it_found():
    fact = MaintenanceState()
    command = fact.command(config_dir="/etc/web 2py", app_name="notes", web2py_root="/w")
    assert "'/etc/web 2py' notes /w" in command.get_raw_value()
    state = fact.process(
        ["down", "notify 0123abcd  -", "page pages/notes/retry-600", "page_sha256 ffee  -", "app",
         "supported"],
    )  # fmt: skip
    assert state == {
        "down": True, "notify": "0123abcd", "page": "pages/notes/retry-600",
        "page_sha256": "ffee", "app": True, "supported": True,
    }  # fmt: skip
    assert fact.process([]) == {
        "down": False, "notify": None, "page": None, "page_sha256": None, "app": False,
        "supported": False,
    }  # fmt: skip


# --- the nginx templates agree with what the operations write ---------------------------------

C = SimpleNamespace(
    config_dir="/etc/w2p", root="/home/www-data/web2py", uwsgi_harakiri=60,
    client_max_body_size="10m", run_dir="/run/web2py", http_port=80, https_port=443,
    ipv6=True, server_name="_", https_redirect=False, hsts_seconds=0,
)  # fmt: skip


def locations() -> str:
    return get_template("templates/nginx-locations.conf.j2").render(c=C)


def site() -> str:
    return get_template("templates/nginx-web2py.conf.j2").render(c=C, cert="/c", key="/k")


def test_locations_test_the_flag_files_and_carry_the_marker():
    text = locations()
    assert MARKER in text  # what MaintenanceState looks for ("supported")
    flag = "/etc/w2p/maintenance/$w2p_app.down$w2p_maintenance_bypass$w2p_health_bypass"
    assert f"if (-f {flag})" in text
    # the health check's key header never reaches an app (an empty if_not_empty param)
    assert text.count('uwsgi_param HTTP_X_W2P_HEALTH_KEY "" if_not_empty;') == text.count(
        "uwsgi_pass "
    )
    assert "if (-f /etc/w2p/maintenance/$w2p_app.notify)" in text
    assert "root /etc/w2p/maintenance/$w2p_page_app.page;" in text
    assert "alias /etc/w2p/maintenance/$w2p_notice_app.notify;" in text
    # static files come first: regex locations are tried in order, and the first match wins
    assert text.index("/static(?:") < text.index("location ~ ^/(?<w2p_app>")
    assert text.index("location ~ ^/_w2p_maintenance/") < text.index("location ~ ^/(?<w2p_app>")
    # inside "if": nothing but return (the only fully safe use)
    for block in re.findall(r"if \([^)]*\) \{([^}]*)\}", text):
        assert re.fullmatch(r"\s*return \d+;\s*", block), block


def test_site_geo_includes_the_allow_list_with_the_bypass_value():
    text = site()
    geo = re.search(r"geo \$w2p_maintenance_bypass \{(.*?)\}", text, re.S).group(1)
    assert "include /etc/w2p/maintenance/allow.conf;" in geo
    assert 'default "";' in geo
    # an allow-listed client tests "<app>.down.allowed", which app_mode never creates
    assert BYPASS == ".allowed"


def test_site_maps_the_health_key_header_to_a_bypass():
    text = site()
    block = re.search(r"map \$http_x_w2p_health_key \$w2p_health_bypass \{(.*?)\}", text, re.S)
    assert block, text
    assert "include /etc/w2p/maintenance/health-key.conf;" in block.group(1)
    assert 'default "";' in block.group(1)


def test_retry_after_map_reads_the_page_folder_app_mode_links():
    text = site()
    pattern = re.search(r"map \$realpath_root \$w2p_retry_after \{.*?~(\S+) \$(\w+);", text, re.S)
    assert pattern, text
    regex = re.compile(pattern.group(1).replace("(?<", "(?P<"))
    match = regex.search("/etc/w2p/maintenance/pages/notes/retry-1800")
    assert match and match.group(pattern.group(2)) == "1800"
    assert not regex.search("/etc/w2p/maintenance/pages/notes")
