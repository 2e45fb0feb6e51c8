"""app_deploy / restore data checks: defaults, one clear line per bad key, run-wide overrides."""

import json
import shutil
from pathlib import Path

import pytest

from operations.local.app_files import DEFAULT_SHARED_FILES
from operations.settings.apps import deploy_settings as deploy_config
from operations.settings.maintenance import DEFAULT_MESSAGES
from operations.settings.validators import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def notes(tmp_path):
    folder = tmp_path / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", folder)
    return folder


def config(notes, settings=None, **data):
    return deploy_config(
        {"deploy_apps": {"notes": {"path": str(notes), **(settings or {})}}, **data}
    )


def test_defaults(notes):
    c = config(notes)
    (app,) = c.apps
    assert app.health_path == "/notes/default/index" and app.keep_releases == 5
    assert not app.maintenance and app.notice_seconds == 60 and app.retry_after == 600
    assert app.notice_message == DEFAULT_MESSAGES["notify"]
    assert app.down_message == DEFAULT_MESSAGES["down"]
    assert c.config_dir == "/etc/web2py" and c.apps_dir == "/srv/web2py-apps"
    assert app.shared_files == DEFAULT_SHARED_FILES and not app.shared_declared


def test_a_git_source_is_checked_without_cloning(notes):
    settings = {"source": "git", "repo": "/no/such/repo", "ref": "main"}
    (app,) = deploy_config({"deploy_apps": {"notes": settings}}).apps
    assert (app.source, app.path, app.repo, app.ref, app.version) == (
        "git",
        None,
        "/no/such/repo",
        "main",
        "",
    )
    with pytest.raises(ConfigError, match="source 'git' needs repo and ref"):
        deploy_config({"deploy_apps": {"notes": {"source": "git", "repo": "/r"}}})


def test_maintenance_settings_and_run_wide_overrides(notes):
    settings = {"maintenance": True, "notice_seconds": 5, "down_message": "Back at 22:30."}
    (app,) = config(notes, settings).apps
    assert app.maintenance and app.notice_seconds == 5 and app.down_message == "Back at 22:30."
    # --data values arrive as strings
    (app,) = config(notes, deploy_maintenance="false").apps
    assert not app.maintenance
    (app,) = config(notes, deploy_maintenance="true", deploy_notice_seconds="0").apps
    assert app.maintenance and app.notice_seconds == 0


@pytest.mark.parametrize(
    ("settings", "data", "message"),
    [
        ({"maintenance": "maybe"}, {}, "deploy_apps['notes'].maintenance"),
        ({"notice_seconds": 7200}, {}, "deploy_apps['notes'].notice_seconds"),
        ({"retry_after": 0}, {}, "deploy_apps['notes'].retry_after"),
        ({"down_message": "   "}, {}, "deploy_apps['notes'].down_message: the text is blank"),
        ({"notice_message": "a\x00b"}, {}, "control characters"),
        ({"colour": "red"}, {}, "unknown setting 'colour'"),
        ({}, {"deploy_notice_seconds": "-1"}, "deploy_notice_seconds"),
        ({}, {"deploy_maintenance": "often"}, "deploy_maintenance"),
        ({}, {"deploy_only": "blog"}, "deploy_only: 'blog' is not in deploy_apps"),
    ],
)
def test_bad_data_is_one_clear_line(notes, settings, data, message):
    with pytest.raises(ConfigError) as error:
        only = data.pop("deploy_only", None)
        deploy_config(
            {"deploy_apps": {"notes": {"path": str(notes), **settings}}, **data}, only=only
        )
    assert message in str(error.value) and "\n" not in str(error.value)


def test_no_apps_is_refused():
    with pytest.raises(ConfigError, match="deploy_apps: no apps to deploy"):
        deploy_config({"deploy_apps": {}})


def test_deploy_apps_that_is_not_json_is_named():
    with pytest.raises(ConfigError, match="deploy_apps: not valid JSON"):
        deploy_config({"deploy_apps": '{"notes": {"path": '})


def test_hooks_run_as_the_web2py_user_unless_one_asks_for_root():
    from operations.settings.apps import HOOK_STAGES, ROOT_HOOK, tool_hooks
    from operations.settings.validators import as_hooks

    def _hooks(key, value):
        return as_hooks(key, value, HOOK_STAGES)

    raw = _hooks("hooks", {"before_check": ["echo $APP", {"run": "id", "as": "root"}]})
    tool = json.loads(tool_hooks(raw, "www-data"))
    assert tool == {
        "before_check": ["runuser -u www-data -- sh -c 'echo $APP'", f"{ROOT_HOOK} id"],
    }
    # recorded in that form, and re-used as is by rollbacks and restores: idempotent
    assert json.loads(tool_hooks(json.dumps(tool), "www-data")) == tool
    for bad in ({"run": "id"}, {"run": "id", "as": "www-data"}, {"run": "", "as": "root"}, ""):
        with pytest.raises(ConfigError, match="run as the web2py user"):
            _hooks("hooks", {"before_check": [bad]})
