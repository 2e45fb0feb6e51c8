"""Install web2py behind nginx + uWSGI + systemd: a bare Debian/Ubuntu server to a served app.

    pyinfra inventories/prod.py deploys/install_web2py.py

Every data key is documented in group_data/all.py. Bad data stops the run on the controller,
before any host is touched. A second run with the same data reports no changes.
"""

from io import StringIO
from pathlib import PurePosixPath

from pyinfra import host, logger
from pyinfra.operations import apt, files, server, systemd

from operations import maintenance, release_tool, tls, web2py
from operations.facts.systemd import RunningFor
from operations.facts.web2py import PythonVersion
from operations.formats import SCHEDULER_SETTLE, layout_path
from operations.local.controller import app_package
from operations.settings.data_keys import check_data_keys
from operations.settings.install import admin_password, check_python_for_web2py, install_settings
from operations.settings.validators import ConfigError

check_data_keys()  # a misspelt --data key is refused, not ignored

c = install_settings(host.data, admin_password=admin_password(host.data))
# A web2py that cannot run on this server's Python is refused before anything changes (for a
# URL source, install-source.sh checks the same on the server before it touches web2py_root).
if c.source.version and (
    why := check_python_for_web2py(c.source.version, host.get_fact(PythonVersion))
):
    raise ConfigError(f"web2py_source: {host.name}: {why}")
owner = {"user": c.user, "group": c.group}
cert, key = "/etc/ssl/web2py/web2py.crt", "/etc/ssl/web2py/web2py.key"
common_name = host.name if c.server_name == "_" else c.server_name.split()[0]
web2py_home = str(PurePosixPath(c.root).parent)

# --- packages, account, directories -------------------------------------------------------
packages = apt.packages(
    name="Install nginx, uWSGI with Python 3, and tools",
    packages=[
        "nginx", "uwsgi-core", "uwsgi-plugin-python3", "python3",
        "unzip", "openssl", "ca-certificates", "curl", "acl",
    ],
    update=True,
    cache_time=86400,
    no_recommends=True,
)  # fmt: skip
if c.user != "www-data":
    server.group(name=f"Group {c.group}", group=c.group, system=True)
    server.user(
        name=f"User {c.user}", user=c.user, group=c.group, groups=["www-data"],
        home=web2py_home, shell="/usr/sbin/nologin", system=True,
    )  # fmt: skip
# The folder web2py_root is in stays root's, even when it is the web2py user's home
# (/home/www-data): the app user could otherwise move web2py_root aside and put a link in its
# place, and root's next install would follow it (README, "Threat model"). install-source.py
# refuses a web2py_root whose folders above are not root's alone.
if web2py_home != "/":
    files.directory(
        name=f"Directory {web2py_home}", path=web2py_home, mode="755", user="root", group="root"
    )
root_owned = {"user": "root", "group": "root"}
files.directory(name=f"Cache {c.cache_dir}", path=c.cache_dir, mode="700", **root_owned)
files.directory(name=f"Config {c.config_dir}", path=c.config_dir, mode="755", **root_owned)

# --- web2py itself ------------------------------------------------------------------------
if c.source.local_path:
    zip_path = f"{c.cache_dir}/web2py_src-{c.source.sha256[:16]}.zip"
    files.put(
        name="Upload web2py source zip", src=str(c.source.local_path), dest=zip_path, mode="600",
    )  # fmt: skip
    marker = c.source.sha256
else:
    zip_path = f"{c.cache_dir}/web2py_src-download.zip"
    files.download(
        name=f"Download {c.source.url}", src=c.source.url, dest=zip_path, mode="600",
        sha256sum=c.source.sha256,
    )  # fmt: skip
    marker = c.source.sha256 or f"url:{c.source.url}"
source = web2py.source(
    name=f"web2py source in {c.root}",
    zip_path=zip_path,
    root=c.root,
    sha256=marker,
    **owner,
)

app_ops = []
app_op_of: dict = {}  # app name -> its operation (a scheduler restarts for new app code)
for app, folder in sorted(c.apps.items()):
    package = app_package(folder)
    remote = f"{c.cache_dir}/app-{app}-{package.sha256[:16]}.tar.gz"
    files.put(name=f"Upload app {app}", src=str(package.path), dest=remote, mode="600")
    app_ops.append(
        web2py.app_files(
            name=f"App {app}",
            app_name=app,
            package_path=remote,
            sha256=package.sha256,
            root=c.root,
            **owner,
        )  # fmt: skip
    )
    app_op_of[app] = app_ops[-1]

if c.admin_password:
    web2py.admin_password(
        name="web2py admin password", root=c.root, password=c.admin_password, port=c.admin_port,
        **owner,
    )  # fmt: skip
else:
    logger.warning(f"{host.name}: no web2py admin password given: web2py's admin stays disabled")

# --- uWSGI under systemd ------------------------------------------------------------------
run_dir_name = PurePosixPath(c.run_dir).name
release_tool.install(name="Release and reload tool")
# The server's layout, written once: the release tool reads it on every call (a changed layout
# is an install change, shown by --dry like any file).
layout = release_tool.layout_of(c)
layout_file = layout_path(c.config_dir)
files.put(
    name="Release tool layout", src=StringIO(layout.to_json()), dest=layout_file, mode="644",
    **root_owned,
)  # fmt: skip
uwsgi_ini = files.template(
    name="uWSGI config", src="templates/uwsgi-web2py.ini.j2", dest=f"{c.config_dir}/uwsgi.ini",
    user="root", group="root", mode="644", c=c,
)  # fmt: skip
uwsgi_unit = files.template(
    name="uWSGI systemd unit", src="templates/web2py-uwsgi.service.j2",
    dest="/etc/systemd/system/web2py-uwsgi.service", mode="644", c=c, run_dir_name=run_dir_name,
    release_tool=release_tool.REMOTE_PATH, layout=layout_file,
)  # fmt: skip
scheduler_unit = files.template(
    name="Scheduler systemd unit", src="templates/web2py-scheduler@.service.j2",
    dest="/etc/systemd/system/web2py-scheduler@.service", mode="644", c=c,
    release_tool=release_tool.REMOTE_PATH, layout=layout_file,
)  # fmt: skip
systemd.daemon_reload(
    name="Reload systemd units",
    _if=lambda: uwsgi_unit.did_change() or scheduler_unit.did_change(),
)
uwsgi_started = systemd.service(
    name="web2py-uwsgi running and enabled",
    service="web2py-uwsgi",
    running=True,
    enabled=True,
)
systemd.service(
    name="Restart web2py-uwsgi for its new config or web2py version",
    service="web2py-uwsgi",
    restarted=True,
    _if=lambda: (
        not uwsgi_started.did_change()
        and any(op.did_change() for op in (uwsgi_ini, uwsgi_unit, source))
    ),
)
systemd.service(
    name="Reload web2py-uwsgi (chain) for new app code",
    service="web2py-uwsgi",
    reloaded=True,
    _if=lambda: not uwsgi_started.did_change() and any(op.did_change() for op in app_ops),
)
for app in c.schedulers:
    unit = f"web2py-scheduler@{app}"
    # Up and running for a while before this run? A scheduler that keeps exiting never is.
    steady = (host.get_fact(RunningFor, unit=unit) or 0) >= SCHEDULER_SETTLE
    scheduler_started = systemd.service(
        name=f"Scheduler for {app}", service=unit, running=True, enabled=True
    )
    # graceful (the unit's ExecStop lets a running task finish): new unit, web2py or app code
    code_ops = [scheduler_unit, source, *([app_op_of[app]] if app in app_op_of else [])]
    scheduler_restarted = systemd.service(
        name=f"Restart the scheduler for {app} for its new unit, web2py or code",
        service=unit,
        restarted=True,
        _if=lambda started=scheduler_started, ops=code_ops: (
            not started.did_change() and any(op.did_change() for op in ops)
        ),
    )
    # Fails the run with one line (the unit's state, its journal's last lines) unless the
    # worker keeps running: `web2py.py -K app` exits at once when the models define no Scheduler.
    server.shell(
        name=f"Check the scheduler for {app} keeps running",
        commands=[
            f"{release_tool.REMOTE_PATH} scheduler-check --app {app} --settle {SCHEDULER_SETTLE:g}"
        ],
        _if=lambda steady=steady, ops=(scheduler_started, scheduler_restarted): (
            not steady or any(op.did_change() for op in ops)
        ),
    )

# --- nginx: HTTP and HTTPS ----------------------------------------------------------------
if c.tls_cert and c.tls_key:
    certificate = tls.certificate_files(
        name="TLS certificate and key", local_cert=str(c.tls_cert), local_key=str(c.tls_key),
        cert=cert, key=key,
    )  # fmt: skip
else:
    certificate = tls.self_signed_certificate(
        name="Self-signed TLS certificate", cert=cert, key=key, bits=c.tls_key_bits,
        days=c.tls_days, common_name=common_name,
    )  # fmt: skip
# Maintenance flags and pages (deploys/maintenance.py): nginx's workers must be able to read them.
files.directory(
    name="nginx maintenance directory", path=f"{c.config_dir}/maintenance", mode="755",
    **root_owned,
)  # fmt: skip
nginx_changes = [
    certificate,
    files.template(
        name="nginx locations", src="templates/nginx-locations.conf.j2",
        dest=f"{c.config_dir}/nginx-locations.conf", mode="644", c=c,
    ),
    # Included by the site's map: lets the release tool's health check reach an app that is down.
    maintenance.health_key(
        name="Maintenance health-check key", path=f"{c.config_dir}/maintenance/health-key.conf"
    ),
    # Included by the site's geo block; its content belongs to deploys/maintenance.py.
    files.file(
        name="nginx maintenance allow-list", path=f"{c.config_dir}/maintenance/allow.conf",
        mode="644", **root_owned,
    ),
    files.template(
        name="nginx site", src="templates/nginx-web2py.conf.j2",
        dest="/etc/nginx/sites-available/web2py.conf", mode="644", c=c, cert=cert, key=key,
    ),
    files.link(
        name="nginx site enabled", path="/etc/nginx/sites-enabled/web2py.conf",
        target="/etc/nginx/sites-available/web2py.conf",
    ),
    files.link(name="nginx default site disabled", path="/etc/nginx/sites-enabled/default",
               present=False),
]  # fmt: skip
systemd.service(name="nginx running and enabled", service="nginx", running=True, enabled=True)
server.shell(
    name="Test the nginx config, then reload nginx",
    commands=["nginx -t -q && systemctl reload nginx"],
    _if=lambda: any(op.did_change() for op in nginx_changes),
)

# --- proof: the app answers through nginx -------------------------------------------------
everything = [packages, source, uwsgi_ini, uwsgi_unit, uwsgi_started, *app_ops, *nginx_changes]
server.shell(
    name="Check web2py answers through nginx",
    commands=[
        f"for i in $(seq 60); do "
        f"code=$(curl -ks -o /dev/null -w '%{{http_code}}' https://127.0.0.1:{c.https_port}/); "
        f'case "$code" in 2*|3*) exit 0;; esac; sleep 0.5; done; '
        f'echo "web2py did not answer through nginx (last HTTP status $code)" >&2; exit 1',
    ],
    _if=lambda: any(op.did_change() for op in everything),
)
