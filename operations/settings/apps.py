"""The settings of app deploys, rollbacks, restores, cleanups and backups: ``deploy_apps``.

An app's settings (:class:`AppSettings`) are checked here, values only: a git source is
exported where the app is packaged (``operations/local/controller.py``), never while checking.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..formats import RECORDED_DEFAULTS
from ..local.app_files import (
    APPCONFIG,
    DEFAULT_SHARED_FILES,
    RenderedConfig,
    Secret,
    auth_key_setting,
    recorded_settings,
    render_appconfig,
)
from .defaults import default, value
from .layout import Layout, layout_settings
from .maintenance import DEFAULT_MESSAGES, MAX_RETRY_AFTER
from .validators import (
    HEALTH_PATH,
    ConfigError,
    as_app_name,
    as_bool,
    as_hooks,
    as_int,
    as_json_mapping,
    as_match,
    as_patterns,
    as_shared_paths,
    as_text,
)

HOOK_STAGES = ("before_check", "before_switch", "after_switch")
PACKAGE_MODES = ("code", "full")
SOURCES = ("local", "git")
MAX_NOTICE_SECONDS = 3600
# An app's own settings (in deploy_apps) and their defaults, defined here once;
# group_data/all.py documents them (tests/unit/test_settings_defaults.py checks it says the same).
APP_DEFAULTS: dict[str, Any] = {
    "path": None,
    "source": "local",
    "repo": "",
    "ref": "",
    "subdir": "",
    "package_mode": "code",
    "include": [],
    "exclude": [],
    "health_path": "/{app}/default/index",
    # what a deploy records for later rollbacks and restores: the contract's defaults
    "health_status": RECORDED_DEFAULTS["health_status"],
    "health_text": RECORDED_DEFAULTS["health_text"],
    "keep_releases": RECORDED_DEFAULTS["keep_releases"],
    "keep_backups": RECORDED_DEFAULTS["keep_backups"],
    "backup": True,
    "hooks": {},
    "version": "",
    "migrate": False,
    "maintenance": False,
    "notice_seconds": 60,
    "notice_message": None,
    "down_message": None,
    "retry_after": 600,
    "shared_files": None,
    "appconfig": None,
    "auth_key": None,
}
APP_KEYS = frozenset(APP_DEFAULTS)


@dataclass(frozen=True)
class AppSettings:
    """One app of ``deploy_apps``, checked. Built by :func:`app_settings` (or
    :func:`recorded_app` from what the live release's deploy recorded)."""

    name: str
    source: str  # "local" (path) or "git" (repo, ref, subdir)
    path: Path | None  # the app folder on the controller; for git, set once exported
    repo: str
    ref: str
    subdir: str
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
    version: str  # a label for the audit log ("": the package's sha256 prefix)
    migrate: bool
    # deploy under maintenance: notice for notice_seconds, then down (503 + page), deploy, up
    maintenance: bool
    notice_seconds: int
    notice_message: str
    down_message: str
    retry_after: int
    # files kept on the server and linked into each release (operations/local/app_files.py),
    # and whether the user declared them (then each must be provided) or they are the defaults
    shared_files: tuple[str, ...]
    shared_declared: bool
    appconfig: RenderedConfig | None  # private/appconfig.ini rendered from data
    auth_key: Secret | None  # the auth key from the environment (auth_key setting)

    def recorded(self) -> dict[str, Any]:
        """The settings a deploy leaves on the server for rollbacks and restores."""
        fields = asdict(self)
        fields["hooks"] = json.loads(self.hooks)
        return recorded_settings(fields)


@dataclass(frozen=True)
class DeploySettings(Layout):
    """The apps of a run and the layout they live in. Built by :func:`deploy_settings`."""

    apps: tuple[AppSettings, ...]
    who: str  # user@controller, for the audit log and the lock
    # seconds a deploy, rollback or restore waits for a live run holding the app's lock (the
    # run of a controller that lost its connection carries on to its end on the server)
    lock_wait: int = field(default_factory=lambda: default("deploy_lock_wait_seconds"))
    # bounds of the release tool's waits on the server (group_data/all.py says which)
    check_timeout: int = field(default_factory=lambda: default("deploy_check_timeout_seconds"))
    reload_timeout: int = field(default_factory=lambda: default("deploy_reload_timeout_seconds"))
    hook_timeout: int = field(default_factory=lambda: default("deploy_hook_timeout_seconds"))
    drain_timeout: int = field(default_factory=lambda: default("deploy_drain_timeout_seconds"))
    # seconds the controller waits for the end of the server's run of a deploy, rollback or
    # restore: then (or when the link drops) it says "outcome unknown"; the run goes on there
    run_timeout: int = field(default_factory=lambda: default("deploy_run_timeout_seconds"))

    def timeout_args(self) -> list[str]:
        """The release tool's flags for these bounds (deploy, rollback, restore)."""
        return [
            "--check-timeout", str(self.check_timeout),
            "--reload-timeout", str(self.reload_timeout),
            "--hook-timeout", str(self.hook_timeout),
        ]  # fmt: skip


def app_settings(name: str, raw: Any) -> AppSettings:
    """Check one app of ``deploy_apps``: a folder, or a mapping of settings."""
    as_app_name("deploy_apps", name)
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"deploy_apps[{name!r}]: expected a folder or a mapping of settings")
    unknown = set(raw) - APP_KEYS
    if unknown:
        raise ConfigError(f"deploy_apps[{name!r}]: unknown setting {sorted(unknown)[0]!r}")
    key = f"deploy_apps[{name!r}]"
    get = {**_defaults_for(name), **raw}.get
    source = get("source")
    path = None
    if source == "git":
        if not get("repo") or not get("ref"):
            raise ConfigError(f"{key}: source 'git' needs repo and ref")
    elif source == "local":
        path = Path(str(get("path") or "")).expanduser()
        if not get("path") or not path.is_dir():
            raise ConfigError(f"{key}.path: no such app folder on the controller: {get('path')}")
        if not (path / "controllers").is_dir():
            raise ConfigError(f"{key}.path: {path} is not a web2py app (no controllers/ folder)")
    else:
        raise ConfigError(f"{key}.source: expected 'local' or 'git', got {source!r}")
    return _checked(name, key, get, source, path)


def _defaults_for(name: str) -> dict[str, Any]:
    return {**APP_DEFAULTS, "health_path": APP_DEFAULTS["health_path"].format(app=name)}


def _checked(
    name: str, key: str, get: Callable[[str], Any], source: str, path: Path | None
) -> AppSettings:
    """An app's settings but its source, checked (``get`` gives each, or its default)."""
    mode = get("package_mode")
    if mode not in PACKAGE_MODES:
        raise ConfigError(f"{key}.package_mode: expected 'code' or 'full', got {mode!r}")
    health_path = get("health_path")
    if health_path:
        as_match(
            f"{key}.health_path", health_path, HEALTH_PATH, "a URL path like /app/default/health"
        )
    shared = get("shared_files")
    declared, explicit = (
        (as_shared_paths(f"{key}.shared_files", shared), True)
        if shared is not None
        else (DEFAULT_SHARED_FILES, False)
    )
    appconfig = render_appconfig(f"{key}.appconfig", get("appconfig"), os.environ)
    if appconfig:  # rendered into each release: not a shared file
        declared = tuple(f for f in declared if f != APPCONFIG)
    return AppSettings(
        name=name,
        source=source,
        path=path,
        repo=str(get("repo") or ""),
        ref=str(get("ref") or ""),
        subdir=str(get("subdir") or ""),
        shared_files=declared,
        shared_declared=explicit,
        appconfig=appconfig,
        auth_key=auth_key_setting(f"{key}.auth_key", get("auth_key"), os.environ),
        package_mode=mode,
        include=as_patterns(f"{key}.include", get("include")),
        exclude=as_patterns(f"{key}.exclude", get("exclude")),
        health_path=health_path or "",
        health_status=as_int(f"{key}.health_status", get("health_status"), 100, 599),
        health_text=str(get("health_text")),
        keep_releases=as_int(f"{key}.keep_releases", get("keep_releases"), 2, 1000),
        keep_backups=as_int(f"{key}.keep_backups", get("keep_backups"), 1, 10000),
        backup=as_bool(f"{key}.backup", get("backup")),
        hooks=as_hooks(f"{key}.hooks", get("hooks"), HOOK_STAGES),
        version=str(get("version") or ""),
        migrate=as_bool(f"{key}.migrate", get("migrate")),
        maintenance=as_bool(f"{key}.maintenance", get("maintenance")),
        notice_seconds=as_int(
            f"{key}.notice_seconds", get("notice_seconds"), 0, MAX_NOTICE_SECONDS
        ),
        notice_message=as_text(
            f"{key}.notice_message", get("notice_message"), DEFAULT_MESSAGES["notify"]
        ),
        down_message=as_text(f"{key}.down_message", get("down_message"), DEFAULT_MESSAGES["down"]),
        retry_after=as_int(f"{key}.retry_after", get("retry_after"), 1, MAX_RETRY_AFTER),
    )


def deploy_settings(data: Any, only: Any = None, require_apps: bool = True) -> DeploySettings:
    """Check app_deploy data. ``only`` (data ``deploy_only``) limits the run to some apps."""
    apps_raw = as_json_mapping("deploy_apps", value(data, "deploy_apps") or {})
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
    lock_wait = as_int("deploy_lock_wait_seconds", value(data, "deploy_lock_wait_seconds"), 0, 3600)
    run_timeout = as_int(
        "deploy_run_timeout_seconds", value(data, "deploy_run_timeout_seconds"), 10, 86400
    )
    if run_timeout <= lock_wait:  # a run that waits for the lock would be reported unknown
        raise ConfigError(
            f"deploy_run_timeout_seconds: {run_timeout} must be longer than "
            f"deploy_lock_wait_seconds ({lock_wait})"
        )
    return DeploySettings(
        **layout_settings(data).layout(),
        apps=tuple(apps),
        who=f"{getpass.getuser()}@{socket.gethostname()}",
        lock_wait=lock_wait,
        run_timeout=run_timeout,
        **{
            name: as_int(key, value(data, key), 1, most)
            for name, (key, most) in TIMEOUT_KEYS.items()
        },
    )


# DeploySettings' bounds of the tool's waits: their data keys and largest values (from 1 s)
TIMEOUT_KEYS = {
    "check_timeout": ("deploy_check_timeout_seconds", 3600),
    "reload_timeout": ("deploy_reload_timeout_seconds", 3600),
    "hook_timeout": ("deploy_hook_timeout_seconds", 86400),  # a long migration
    "drain_timeout": ("deploy_drain_timeout_seconds", 3600),
}


def run_overrides(data: Any) -> dict[str, Any]:
    """Run-wide overrides of every app's settings: --data deploy_maintenance=true
    --data deploy_notice_seconds=0."""
    overrides: dict[str, Any] = {}
    maintenance, notice = value(data, "deploy_maintenance"), value(data, "deploy_notice_seconds")
    if maintenance not in (None, ""):
        overrides["maintenance"] = as_bool("deploy_maintenance", maintenance)
    if notice not in (None, ""):
        overrides["notice_seconds"] = as_int("deploy_notice_seconds", notice, 0, MAX_NOTICE_SECONDS)
    return overrides


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
    """An app's hooks (JSON, as ``validators.as_hooks`` checked them) in the release tool's
    form."""
    return json.dumps(
        {stage: [hook_command(h, user) for h in cmds] for stage, cmds in json.loads(hooks).items()},
        sort_keys=True,
    )


def recorded_app(name: str, revision: Mapping[str, Any] | None) -> AppSettings:
    """An app's settings as its live release's deploy recorded them (REVISION "settings"), for
    rollback, restore and backup: they need only the app's name. Defaults where nothing was
    recorded."""
    as_app_name("app", name)
    recorded = dict(dict(revision or {}).pop("settings", None) or {})
    # No source on the controller (source "recorded", no path): what the server recorded, and
    # the defaults; no shared files to declare (the release's own are on the server).
    get = {**_defaults_for(name), "shared_files": []}.get
    base = replace(
        _checked(name, f"{name} (recorded)", get, "recorded", None), shared_declared=False
    )
    if "hooks" in recorded:
        recorded["hooks"] = json.dumps(recorded["hooks"] or {}, sort_keys=True)
    return replace(base, **recorded_settings(recorded))
