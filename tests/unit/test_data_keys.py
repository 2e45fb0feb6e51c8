"""Every data key the code reads is documented: defined in group_data/all.py and listed in
the README's table. A key added in code without docs fails here."""

import re
from pathlib import Path

from operations.settings.apps import APP_KEYS

ROOT = Path(__file__).resolve().parents[2]
READERS = [*sorted((ROOT / "deploys").glob("*.py")), *sorted((ROOT / "operations").rglob("*.py"))]
# host.data.get("key"), data.get("key"), value(data, "key")
READ = re.compile(r'(?:\bdata\.get\(\s*|\bvalue\(\s*data,\s*)"([a-z0-9_]+)"')
NOT_DATA = {"mode", "size", "user"}  # keys of pyinfra's File fact, read in maintenance.py


def keys_read() -> set[str]:
    found: set[str] = set()
    for path in READERS:
        found |= set(READ.findall(path.read_text()))
    return found - APP_KEYS - NOT_DATA


def test_the_scan_sees_the_deploys_keys():
    assert {"deploy_apps", "maintenance_action", "web2py_root", "restore_data"} <= keys_read()
    assert {"backup_app", "cleanup_days", "deploy_user_groups"} <= keys_read()


def test_every_key_read_has_a_default_in_group_data_all():
    defined = set(re.findall(r"^([a-z0-9_]+) = ", (ROOT / "group_data/all.py").read_text(), re.M))
    assert keys_read() - defined == set()


def test_every_key_read_is_in_the_readme_table():
    table = "\n".join(
        line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")
    )
    listed = set(re.findall(r"`([a-z0-9_]+)`", table))
    assert keys_read() - listed == set()


def test_unknown_keys_are_named_with_the_closest_known_one():
    from operations.settings.data_keys import known_keys, unknown_key_message

    assert "http_port" in known_keys() and "deploy_apps" in known_keys()
    assert unknown_key_message("--data", {"http_prot": "8080"}) == (
        "--data http_prot: unknown data key; did you mean http_port?"
    )
    assert unknown_key_message("--data", {"http_port": 1, "ssh_user": "x", "_sudo": True}) is None
    assert "group_data/all.py lists" in unknown_key_message("--data", {"zzz": 1})
