"""Each default has one definition: group_data/all.py for data keys, settings/apps.py for an
app's own settings (which group_data/all.py documents). Nothing else in the code states one."""

import importlib
import inspect
import json
import re
import runpy
from pathlib import Path

from operations.local.app_files import DEFAULT_SHARED_FILES
from operations.settings import defaults
from operations.settings.apps import APP_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
ALL = ROOT / "group_data" / "all.py"
# the controller's code (operations/scripts/ runs on servers and takes its values as arguments)
CODE = [
    p
    for p in [*(ROOT / "operations").rglob("*.py"), *(ROOT / "deploys").glob("*.py")]
    if "scripts" not in p.relative_to(ROOT).parts[1:2]
]
OPERATION_MODULES = ("accounts", "backups", "maintenance", "releases", "tls", "web2py")
TRIVIAL = (None, True, False, 0, "", [], {}, ())


def test_the_code_reads_exactly_group_data_alls_values():
    executed = {k: v for k, v in runpy.run_path(str(ALL)).items() if not k.startswith("__")}
    assert set(executed) == defaults.known_keys()
    assert {key: defaults.default(key) for key in executed} == executed
    assert defaults.default("deploy_user_groups") == ["www-data"]


def test_a_default_is_a_copy_callers_cannot_change():
    defaults.default("deploy_user_groups").append("root")
    assert defaults.default("deploy_user_groups") == ["www-data"]


def test_values_fall_back_to_the_default_and_data_wins():
    assert defaults.value({}, "https_port") == 443
    assert defaults.value({"https_port": 8443}, "https_port") == 8443


def test_no_code_restates_a_data_default():
    # data.get("key", default) would be a second definition, free to drift from group_data/all.py
    restated = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in CODE
        for match in re.finditer(r'data\.get\(\s*"[a-z0-9_]+"\s*,[^)]*\)', path.read_text())
    ]
    assert restated == []


def test_no_operation_signature_restates_a_data_default():
    values = [v for v in (defaults.default(k) for k in defaults.known_keys()) if v not in TRIVIAL]
    restated = []
    for module_name in OPERATION_MODULES:
        module = importlib.import_module(f"operations.{module_name}")
        for name, op in inspect.getmembers(module, lambda o: hasattr(o, "_inner")):
            for param in inspect.signature(op._inner).parameters.values():
                default = param.default
                if default is not param.empty and default not in TRIVIAL and default in values:
                    restated.append(f"{module_name}.{name}({param.name}={default!r})")
    assert restated == []


def _documented(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


def test_group_data_all_documents_each_apps_setting_default():
    comments = " ".join(
        line.lstrip("#").strip() for line in ALL.read_text().splitlines() if line.startswith("#")
    )
    expected = {
        key: f"{key} ({_documented(value)}"
        for key, value in APP_DEFAULTS.items()
        if key not in ("path", "repo", "ref", "shared_files", "include", "exclude")
    }
    expected["health_path"] = 'health_path ("/<app>/default/index")'
    expected["include"] = f"include / exclude ({_documented(APP_DEFAULTS['include'])})"
    expected["exclude"] = f"include / exclude ({_documented(APP_DEFAULTS['exclude'])})"
    expected["shared_files"] = f"shared_files ({_documented(DEFAULT_SHARED_FILES)})"
    expected["retry_after"] = f"retry_after: {APP_DEFAULTS['retry_after']}"
    expected["notice_message"] = "notice_message / down_message (None"
    expected["down_message"] = "notice_message / down_message (None"
    expected["subdir"] = f"subdir ({_documented(APP_DEFAULTS['subdir'])})"
    missing = {key: text for key, text in expected.items() if text not in comments}
    assert missing == {}


def test_patterns_are_matched_whole_never_anchored_by_hand():
    # re.match/search with ^...$ lets "value\n" through ($ matches before a final newline)
    anchored = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in CODE
        for line in path.read_text().splitlines()
        if re.search(r"re\.(compile|match|search)\(r?[\"']\^", line)
    ]
    assert anchored == []
