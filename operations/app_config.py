"""Validation of app_deploy and rollback data: one clear line per bad key, on the controller."""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .app_files import (
    APPCONFIG,
    RenderedConfig,
    Secret,
    auth_key_setting,
    recorded_settings,
    render_appconfig,
    shared_files,
)
from .config import (
    ConfigError,
    as_app_name,
    as_bool,
    as_cache_dir,
    as_int,
    as_match,
    as_port,
    as_remote_path,
    as_run_dir,
    as_unix_name,
)
from .gitsource import export_commit
from .maintenance import DEFAULT_MESSAGES, MAX_RETRY_AFTER, as_message
from .packaging import DATA_DIRS

HEALTH_PATH = re.compile(r"^/[A-Za-z0-9_./?=&%-]*$")
# a release's folder name (releases/<id>); the release tool checks the same on the server
RELEASE_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9][A-Za-z0-9.-]*")
HOOK_STAGES = ("before_check", "before_switch", "after_switch")
APP_KEYS = {
    "path", "package_mode", "include", "exclude", "health_path", "health_status", "health_text",
    "keep_releases", "keep_backups", "backup", "hooks", "version", "migrate",
    "source", "repo", "ref", "subdir",
    "maintenance", "notice_seconds", "notice_message", "down_message", "retry_after",
    "shared_files", "appconfig", "auth_key",
}  # fmt: skip
MAX_NOTICE_SECONDS = 3600


@dataclass(frozen=True)
class AppSettings:
    name: str
    path: Path
    package_mode: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    health_path: str
    health_status: int
    health_text: str
    keep_releases: int
    keep_backups: int
    backup: bool
    hooks: str  # JSON {stage: [command, ...]}
    version: str
    migrate: bool
    # deploy under maintenance: notice for notice_seconds, then down (503 + page), deploy, up
    maintenance: bool = False
    notice_seconds: int = 60
    notice_message: str = DEFAULT_MESSAGES["notify"]
    down_message: str = DEFAULT_MESSAGES["down"]
    retry_after: int = 600
    # files kept on the server and linked into each release (operations/app_files.py), and
    # whether the user declared them (then each must be provided) or they are the defaults
    shared_files: tuple[str, ...] = ()
    shared_declared: bool = False
    appconfig: RenderedConfig | None = None  # private/appconfig.ini rendered from data
    auth_key: Secret | None = None  # the auth key from the environment (auth_key setting)

    def recorded(self) -> dict[str, Any]:
        """The settings a deploy leaves on the server for rollbacks and restores."""
        fields = asdict(self)
        fields["hooks"] = json.loads(self.hooks)
        return recorded_settings(fields)


@dataclass(frozen=True)
class DeployConfig:
    apps: tuple[AppSettings, ...]
    apps_dir: str
    backups_dir: str
    web2py_root: str
    user: str
    group: str
    run_dir: str
    cache_dir: str
    https_port: int
    who: str
    config_dir: str = "/etc/web2py"


def _patterns(key: str, value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of glob patterns, got {value!r}")
    return tuple(value)


def _hooks(key: str, value: Any) -> str:
    if not value:
        return "{}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected {{stage: [command, ...]}}, got {value!r}")
    for stage, commands in value.items():
        if stage not in HOOK_STAGES:
            raise ConfigError(f"{key}: unknown stage {stage!r} (stages: {', '.join(HOOK_STAGES)})")
        if not isinstance(commands, list) or not all(_is_hook(c) for c in commands):
            raise ConfigError(
                f"{key}[{stage!r}]: expected a list of shell commands (each a string, run as the "
                'web2py user, or {"run": "command", "as": "root"})'
            )
    return json.dumps(dict(value), sort_keys=True)


def _is_hook(hook: Any) -> bool:
    if isinstance(hook, str):
        return bool(hook.strip())
    return (
        isinstance(hook, Mapping)
        and set(hook) == {"run", "as"}
        and hook["as"] == "root"
        and isinstance(hook["run"], str)
        and bool(hook["run"].strip())
    )


# How the release tool gets a hook (it runs each with `sh -c` as root, in the release folder,
# with $APP and $RELEASE): as the web2py user through runuser, unless the hook asked for root,
# which is then said in the command itself. The form is recorded in the release's REVISION and
# re-used as is by rollbacks and restores, so turning it into this form must be idempotent.
ROOT_HOOK = ": as root;"


def _runuser(user: str) -> str:
    return f"runuser -u {user} -- sh -c "


def hook_command(hook: str | Mapping[str, str], user: str) -> str:
    """The command the release tool runs for ``hook`` (see ROOT_HOOK)."""
    if isinstance(hook, Mapping):
        return f"{ROOT_HOOK} {hook['run']}"
    if hook.startswith((ROOT_HOOK, _runuser(user))):
        return hook  # already in the tool's form (recorded by an earlier deploy)
    return _runuser(user) + shlex.quote(hook)


def tool_hooks(hooks: str, user: str) -> str:
    """An app's hooks (JSON, as :func:`_hooks` checked them) in the release tool's form."""
    return json.dumps(
        {stage: [hook_command(h, user) for h in cmds] for stage, cmds in json.loads(hooks).items()},
        sort_keys=True,
    )


def app_settings(name: str, raw: Any) -> AppSettings:
    as_app_name("deploy_apps", name)
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"deploy_apps[{name!r}]: expected a folder or a mapping of settings")
    unknown = set(raw) - APP_KEYS
    if unknown:
        raise ConfigError(f"deploy_apps[{name!r}]: unknown setting {sorted(unknown)[0]!r}")
    key = f"deploy_apps[{name!r}]"
    source = raw.get("source", "local")
    commit = ""
    if source == "git":
        if not raw.get("repo") or not raw.get("ref"):
            raise ConfigError(f"{key}: source 'git' needs repo and ref")
        exported = export_commit(key, str(raw["repo"]), str(raw["ref"]), str(raw.get("subdir", "")))
        path, commit = exported.path, exported.commit
    elif source == "local":
        path = Path(str(raw.get("path", ""))).expanduser()
        if not raw.get("path") or not path.is_dir():
            raise ConfigError(
                f"{key}.path: no such app folder on the controller: {raw.get('path')}"
            )
        if not (path / "controllers").is_dir():
            raise ConfigError(f"{key}.path: {path} is not a web2py app (no controllers/ folder)")
    else:
        raise ConfigError(f"{key}.source: expected 'local' or 'git', got {source!r}")
    mode = raw.get("package_mode", "code")
    if mode not in ("code", "full"):
        raise ConfigError(f"{key}.package_mode: expected 'code' or 'full', got {mode!r}")
    health_path = raw.get("health_path", f"/{name}/default/index")
    if health_path:
        as_match(
            f"{key}.health_path", health_path, HEALTH_PATH, "a URL path like /app/default/health"
        )
    declared, explicit = shared_files(f"{key}.shared_files", raw.get("shared_files"))
    appconfig = render_appconfig(f"{key}.appconfig", raw.get("appconfig"), os.environ)
    if appconfig:  # rendered into each release: not a shared file
        declared = tuple(f for f in declared if f != APPCONFIG)
    return AppSettings(
        name=name,
        path=path,
        shared_files=declared,
        shared_declared=explicit,
        appconfig=appconfig,
        auth_key=auth_key_setting(f"{key}.auth_key", raw.get("auth_key"), os.environ),
        package_mode=mode,
        include=_patterns(f"{key}.include", raw.get("include")),
        exclude=_patterns(f"{key}.exclude", raw.get("exclude")),
        health_path=health_path or "",
        health_status=as_int(f"{key}.health_status", raw.get("health_status", 200), 100, 599),
        health_text=str(raw.get("health_text", "")),
        keep_releases=as_int(f"{key}.keep_releases", raw.get("keep_releases", 5), 2, 1000),
        keep_backups=as_int(f"{key}.keep_backups", raw.get("keep_backups", 10), 1, 10000),
        backup=as_bool(f"{key}.backup", raw.get("backup", True)),
        hooks=_hooks(f"{key}.hooks", raw.get("hooks")),
        version=str(raw.get("version") or (f"git:{commit}" if commit else "")),
        migrate=as_bool(f"{key}.migrate", raw.get("migrate", False)),
        maintenance=as_bool(f"{key}.maintenance", raw.get("maintenance", False)),
        notice_seconds=as_int(
            f"{key}.notice_seconds", raw.get("notice_seconds", 60), 0, MAX_NOTICE_SECONDS
        ),
        notice_message=as_message(f"{key}.notice_message", raw.get("notice_message"), "notify"),
        down_message=as_message(f"{key}.down_message", raw.get("down_message"), "down"),
        retry_after=as_int(f"{key}.retry_after", raw.get("retry_after", 600), 1, MAX_RETRY_AFTER),
    )


def deploy_config(data: Any, only: Any = None, require_apps: bool = True) -> DeployConfig:
    """Check app_deploy data. ``only`` (data ``deploy_only``) limits the run to some apps."""
    apps_raw = data.get("deploy_apps") or {}
    if isinstance(apps_raw, str):  # --data deploy_apps=... that pyinfra could not parse as JSON
        try:
            apps_raw = json.loads(apps_raw)
        except ValueError as error:
            raise ConfigError(f"deploy_apps: not valid JSON: {error}") from None
    if not isinstance(apps_raw, Mapping) or (require_apps and not apps_raw):
        raise ConfigError("deploy_apps: no apps to deploy; set {name: folder or settings}")
    apps = [app_settings(name, raw) for name, raw in sorted(apps_raw.items())]
    apps = [replace(a, **run_overrides(data)) for a in apps]
    if only:
        wanted = [w for w in (only.split(",") if isinstance(only, str) else only) if w]
        missing = [w for w in wanted if w not in apps_raw]
        if missing:
            raise ConfigError(f"deploy_only: {missing[0]!r} is not in deploy_apps")
        apps = [a for a in apps if a.name in wanted]
    return DeployConfig(
        apps=tuple(apps),
        apps_dir=as_remote_path("web2py_apps_dir", data.get("web2py_apps_dir", "/srv/web2py-apps")),
        backups_dir=as_remote_path(
            "web2py_backups_dir", data.get("web2py_backups_dir", "/var/backups/web2py")
        ),
        web2py_root=as_remote_path("web2py_root", data.get("web2py_root", "/home/www-data/web2py")),
        user=as_unix_name("web2py_user", data.get("web2py_user", "www-data")),
        group=as_unix_name("web2py_group", data.get("web2py_group", "www-data")),
        run_dir=as_run_dir("web2py_run_dir", data.get("web2py_run_dir", "/run/web2py")),
        cache_dir=as_cache_dir(
            "web2py_cache_dir", data.get("web2py_cache_dir", "/var/cache/pyinfra-web2py")
        ),
        https_port=as_port("https_port", data.get("https_port", 443)),
        config_dir=as_remote_path(
            "web2py_config_dir", data.get("web2py_config_dir", "/etc/web2py")
        ),
        who=f"{getpass.getuser()}@{socket.gethostname()}",
    )


def run_overrides(data: Any) -> dict[str, Any]:
    """Run-wide overrides of every app's settings: --data deploy_maintenance=true
    --data deploy_notice_seconds=0."""
    overrides: dict[str, Any] = {}
    if data.get("deploy_maintenance") not in (None, ""):
        overrides["maintenance"] = as_bool("deploy_maintenance", data.get("deploy_maintenance"))
    if data.get("deploy_notice_seconds") not in (None, ""):
        overrides["notice_seconds"] = as_int(
            "deploy_notice_seconds", data.get("deploy_notice_seconds"), 0, MAX_NOTICE_SECONDS
        )
    return overrides


def recorded_app(name: str, revision: Mapping[str, Any] | None) -> AppSettings:
    """An app's settings as its live release's deploy recorded them (REVISION "settings"), for
    rollback and restore: they need only the app's name. Defaults where nothing was recorded."""
    as_app_name("app", name)
    recorded = dict(dict(revision or {}).pop("settings", None) or {})
    base = AppSettings(
        name=name, path=Path("."), package_mode="code", include=(), exclude=(),
        health_path=f"/{name}/default/index", health_status=200, health_text="",
        keep_releases=5, keep_backups=10, backup=True, hooks="{}", version="", migrate=False,
    )  # fmt: skip
    if "hooks" in recorded:
        recorded["hooks"] = json.dumps(recorded["hooks"] or {}, sort_keys=True)
    known = recorded_settings(recorded)
    return replace(base, **known)


def data_dirs() -> str:
    return ",".join(DATA_DIRS)
