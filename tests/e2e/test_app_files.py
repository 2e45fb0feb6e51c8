"""Real web2py apps deploy unchanged: private/ ships with releases, shared files stay on the
server (the same auth.key on every host), per-environment appconfig.ini with secrets.

The apps (examples/apps/shop, shaped like web2py's welcome scaffold; examples/apps/pages,
shaped like its examples app) run on the installed web2py: the real framework by default."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.parse

import pytest

from .sandboxlib import ROOT, http_get, pyinfra

APPS_DIR = "/srv/web2py-apps"
SECRET = "smtp-" + "Xq7%Zr9" + "pw"  # has a % (configparser interpolation) on purpose


def apps_data(apps: dict) -> dict[str, str]:
    return {"deploy_apps": json.dumps(apps)}


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    base = tmp_path_factory.mktemp("app-files")
    for name in ("shop", "pages"):
        shutil.copytree(ROOT / "examples" / "apps" / name, base / name)
    return base


@pytest.fixture(scope="module")
def deployed(installed, copies):
    """Both apps, default settings, on both installed servers at once."""
    hosts = installed["hosts"]
    apps = {"shop": str(copies / "shop"), "pages": str(copies / "pages")}
    first = pyinfra("deploys/app_deploy.py", hosts, data=apps_data(apps))
    assert first.returncode == 0, first.output[-5000:]
    return {"hosts": hosts, "apps": apps, "first": first}


def test_the_scaffold_and_the_examples_app_deploy_with_defaults(deployed):
    for server in deployed["hosts"]:
        status, _, body = http_get(server.address, "/shop/default/index")
        assert status == 200 and b"Welcome to Shop" in body, body[:500]
        assert b"Environment: development" in body  # the package's appconfig.ini, seeded
        for page, text in (("what", b"What is web2py?"), ("documentation", b"Read the book")):
            status, _, body = http_get(server.address, f"/pages/default/{page}")
            assert status == 200 and text in body, (page, body[:500])
        status, _, body = http_get(server.address, "/pages/default/what?lang=fr")
        assert status == 200 and b"Un framework complet" in body


def test_private_is_code_and_shared_files_live_on_the_server(deployed):
    server = deployed["hosts"][0]
    release = f"{APPS_DIR}/shop/current"
    assert (
        server.run(f"readlink {release}/private/appconfig.ini")
        .strip()
        .endswith("shared/files/private/appconfig.ini")
    )
    assert server.run(f"stat -c '%U:%G %a' {APPS_DIR}/shop/shared/files/private/auth.key") == (
        "root:www-data 640\n"
    )
    content = f"{APPS_DIR}/pages/current/private/content/en/what.markmin"
    assert server.run(f"stat -c '%U:%G %a %F' {content}") == "root:www-data 640 regular file\n"
    # the app user reads its private files but cannot rewrite them
    assert "denied" in server.run(
        f"runuser -u www-data -- sh -c 'echo x >> {content}' 2>&1 || true"
    )


def test_a_second_run_changes_nothing(deployed):
    again = pyinfra("deploys/app_deploy.py", deployed["hosts"], data=apps_data(deployed["apps"]))
    assert again.returncode == 0 and again.totals["changed"] == 0, again.output[-3000:]


def test_one_auth_key_on_every_host_and_passwords_verify_across_them(deployed):
    one, two = deployed["hosts"]
    keys = {s.run(f"sha256sum < {APPS_DIR}/shop/shared/files/private/auth.key") for s in (one, two)}
    assert len(keys) == 1, keys
    key = one.run(f"cat {APPS_DIR}/shop/shared/files/private/auth.key")
    assert key.startswith("sha512:")
    assert key not in deployed["first"].output
    form = urllib.parse.urlencode({"email": "ann@example.com", "password": "pw-4-ann"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, stored = http_get(
        one.address, "/shop/default/register", method="POST", body=form, headers=headers
    )
    assert status == 200 and stored.count(b"$") >= 2, stored[:300]
    for password, expected in (("pw-4-ann", b"match"), ("wrong", b"mismatch")):
        check = urllib.parse.urlencode({"password": password, "hash": stored.decode()}).encode()
        status, _, body = http_get(
            two.address, "/shop/default/verify", method="POST", body=check, headers=headers
        )
        assert status == 200 and body == expected, (password, body)


def test_an_edit_under_private_is_served_after_the_next_deploy(deployed, copies):
    page = copies / "pages" / "private" / "content" / "en" / "what.markmin"
    page.write_text(page.read_text().replace("content-version: 1", "content-version: 2"))
    run = pyinfra("deploys/app_deploy.py", deployed["hosts"], data=apps_data(deployed["apps"]))
    assert run.returncode == 0, run.output[-3000:]
    assert "~ private/content/en/what.markmin" in run.output
    for server in deployed["hosts"]:
        assert b"content-version: 2" in http_get(server.address, "/pages/default/what")[2]


def test_a_missing_shared_file_is_refused_naming_it_and_nothing_changes(deployed, copies):
    state = (
        f"ls -l {APPS_DIR}/shop/releases {APPS_DIR}/shop/shared/files/private "
        "/var/cache/pyinfra-web2py /var/backups/web2py; "
        f"cat {APPS_DIR}/shop/release.log {APPS_DIR}/shop/audit.jsonl"
    )
    before = [server.run(state) for server in deployed["hosts"]]
    apps = {"shop": {"path": str(copies / "shop"), "shared_files": ["private/payment.ini"]}}
    run = pyinfra("deploys/app_deploy.py", deployed["hosts"], data=apps_data(apps))
    assert run.returncode != 0
    errors = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert len(errors) == 1 and "shared_files: private/payment.ini is missing on" in errors[0]
    assert "Starting operation" not in run.output
    assert [server.run(state) for server in deployed["hosts"]] == before


def test_rollback_and_restore_need_only_the_app_name(deployed, copies):
    """After a deploy whose deploy_apps came from --data: the printed commands, as printed."""
    one = deployed["hosts"][0]
    apps = {"shop": {"path": str(copies / "shop"), "health_path": "/shop/default/health",
                     "health_text": "ok shop"}}  # fmt: skip
    (copies / "shop" / "views" / "default" / "index.html").write_text(
        (copies / "shop" / "views" / "default" / "index.html").read_text() + "<p>v2</p>\n"
    )
    run = pyinfra("deploys/app_deploy.py", [one], data=apps_data(apps))
    assert run.returncode == 0, run.output[-3000:]
    printed = [line.split("pyinfra INVENTORY ", 1)[1] for line in run.output.splitlines()
               if "pyinfra INVENTORY deploys/" in line]  # fmt: skip
    by_deploy = {cmd.split()[0]: cmd.split()[1:] for cmd in printed}
    assert set(by_deploy) == {"deploys/rollback.py", "deploys/restore.py"}, printed
    for deploy, args in by_deploy.items():
        data = dict(arg.split("=", 1) for arg in args if arg != "--data")
        done = pyinfra(deploy, [one], data=data)
        assert done.returncode == 0, (deploy, done.output[-3000:])
        assert "deploy_only" not in done.output and "deploy_apps" not in done.output
    tail = one.run(f"tail -n 2 {APPS_DIR}/shop/audit.jsonl")
    audit = [json.loads(line) for line in tail.splitlines() if line]
    assert sorted(a["action"] for a in audit) == ["restore", "rollback"]
    assert all(a["result"] == "ok" for a in audit), audit


def group_inventory(tmp_path, groups: dict[str, list[str]]) -> str:
    """An inventory of the sandbox servers split into host groups (staging, prod)."""
    path = tmp_path / "groups_inventory.py"
    lines = [
        "import runpy as _runpy",
        f"_hosts = dict(_runpy.run_path({str(ROOT / 'inventories' / 'sandbox.py')!r})['sandbox'])",
    ]
    for group, names in groups.items():
        lines.append(f"{group} = [(n, _hosts[n]) for n in {names!r}]")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_staging_and_prod_get_their_own_appconfig_and_the_secret_never_shows(
    deployed, copies, tmp_path
):
    one, two = deployed["hosts"]
    data_dir = tmp_path / "group_data"
    data_dir.mkdir()
    for group in ("staging", "prod"):
        settings = {
            "path": str(copies / "shop"),
            "appconfig": {
                "app": {"name": "Shop", "environment": group, "production": group == "prod"},
                "host": {"names": ["*"]},
                "db": {"uri": "sqlite://storage.sqlite", "migrate": True, "pool_size": 1},
                "smtp": {"server": "logging", "sender": f"shop@{group}.example.com",
                         "login": "shop:${SHOP_SMTP_PASSWORD}"},
            },
        }  # fmt: skip
        (data_dir / f"{group}.py").write_text(f"deploy_apps = {{'shop': {settings!r}}}\n")
    inventory = group_inventory(tmp_path, {"staging": [one.name], "prod": [two.name]})
    env = {"SHOP_SMTP_PASSWORD": SECRET}

    dry = pyinfra(
        "deploys/app_deploy.py", [one, two], env=env, inventory=inventory,
        extra=["--group-data", str(data_dir), "--dry", "-vvv"],
    )  # fmt: skip
    assert dry.returncode == 0, dry.output[-3000:]
    assert "+login = shop:********" in dry.output and "+environment = staging" in dry.output
    samples: list[str] = []
    stop = threading.Event()

    def sample_ps():
        while not stop.is_set():
            for server in (one, two):
                samples.append(server.run("ps -eo args", check=False))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample_ps)
    sampler.start()
    try:
        run = pyinfra(
            "deploys/app_deploy.py", [one, two], env=env, inventory=inventory,
            extra=["--group-data", str(data_dir), "-vvv"],
        )  # fmt: skip
    finally:
        stop.set()
        sampler.join(timeout=30)
    assert run.returncode == 0, run.output[-5000:]
    for server, group in ((one, "staging"), (two, "prod")):
        body = http_get(server.address, "/shop/default/config")[2].decode()
        assert f"environment={group}" in body and f"smtp_sender=shop@{group}.example.com" in body
        assert f"production={group == 'prod'}" in body
        config = f"{APPS_DIR}/shop/current/private/appconfig.ini"
        assert server.run(f"stat -c '%U:%G %a' {config}") == "root:www-data 640\n"
        assert SECRET.replace("%", "%%") in server.run(f"cat {config}")
        logs = server.run(
            f"journalctl --no-pager -q; cd {APPS_DIR}/shop && cat audit.jsonl release.log",
            timeout=120,
        )
        assert SECRET not in logs and "Xq7" not in logs
    assert len(samples) > 5
    for text in (dry.output, run.output, *samples):
        assert "Xq7" not in text
    again = pyinfra(
        "deploys/app_deploy.py", [one, two], env=env, inventory=inventory,
        extra=["--group-data", str(data_dir)],
    )  # fmt: skip
    assert again.returncode == 0 and again.totals["changed"] == 0, again.output[-3000:]


def test_a_failed_first_deploy_is_followed_by_a_good_one_in_another_mode(installed, copies):
    server = installed["hosts"][0]
    broken = copies / "fresh"
    shutil.copytree(copies / "shop", broken)
    models = broken / "models" / "db.py"
    good_models = models.read_text()
    models.write_text(good_models + "\nraise RuntimeError('broken on purpose')\n")
    run = pyinfra("deploys/app_deploy.py", [server], data=apps_data({"fresh": str(broken)}))
    assert run.returncode != 0 and "pre-switch check" in run.output, run.output[-3000:]
    # the operator sees the error itself, from web2py's ticket, not just "answered 500"
    assert "RuntimeError: broken on purpose" in run.output, run.output[-3000:]
    assert http_get(server.address, "/fresh/default/index")[0] == 404  # never served
    models.write_text(good_models)
    fixed = {"fresh": {"path": str(broken), "package_mode": "full"}}
    run = pyinfra("deploys/app_deploy.py", [server], data=apps_data(fixed))
    assert run.returncode == 0, run.output[-3000:]
    status, _, body = http_get(server.address, "/fresh/default/index")
    assert status == 200 and b"Welcome to Shop" in body


def test_an_app_deployed_with_the_old_layout_loses_no_file(installed, copies):
    """private/ as shared data (before this change): the next deploy keeps every file."""
    server = installed["hosts"][0]
    app = copies / "legacy"
    shutil.copytree(copies / "shop", app)
    run = pyinfra("deploys/app_deploy.py", [server], data=apps_data({"legacy": str(app)}))
    assert run.returncode == 0, run.output[-3000:]
    # Make it look as the old layout left it: private/ a link to shared/private, which holds
    # the server's config, the key web2py wrote and a file the app wrote at runtime.
    base = f"{APPS_DIR}/legacy"
    server.run(
        f"set -e; cd {base}; rel=$(readlink current); "
        "mkdir -p shared/private; cp -L $rel/private/appconfig.ini shared/private/; "
        "sed -i 's/= development/= server-own/' shared/private/appconfig.ini; "
        "cp -L $rel/private/auth.key shared/private/; echo runtime > shared/private/app-wrote.txt; "
        "chown -R www-data:www-data shared/private; rm -rf shared/files; "
        "rm -rf $rel/private; ln -s ../../shared/private $rel/private"
    )
    key_before = server.run(f"sha256sum < {base}/shared/private/auth.key")
    (app / "views" / "default" / "index.html").write_text(
        (app / "views" / "default" / "index.html").read_text() + "<p>new layout</p>\n"
    )
    run = pyinfra("deploys/app_deploy.py", [server], data=apps_data({"legacy": str(app)}))
    assert run.returncode == 0, run.output[-3000:]
    body = http_get(server.address, "/legacy/default/index")[2]
    assert b"new layout" in body and b"Environment: server-own" in body
    current = f"{base}/current/private"
    assert server.run(f"sha256sum < {current}/auth.key") == key_before
    assert server.run(f"cat {current}/app-wrote.txt") == "runtime\n"
    assert "app-wrote.txt" in run.output  # reported
    assert server.run(f"cat {base}/shared/private/app-wrote.txt") == "runtime\n"  # still there


def test_web2py_sees_nginxs_client_address_not_the_clients_headers(deployed):
    server = deployed["hosts"][0]
    spoof = {"X-Forwarded-For": "198.51.100.77", "X-Forwarded-Proto": "https"}
    status, headers, body = http_get(server.address, "/shop/default/client", headers=spoof)
    assert status == 200 and b"198.51.100.77" not in body, body
    ours = server.run("ip -4 route show default | cut -d' ' -f3").strip()  # the host's bridge
    assert body.decode() == f"client={ours} https=False"
    _, _, body = http_get(server.address, "/shop/default/client", https=True, headers=spoof)
    assert body.decode() == f"client={ours} https=True"
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "strict-origin-when-cross-origin"
    assert headers.get("server") == "nginx"  # no version
