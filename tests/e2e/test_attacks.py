"""The attack suite (issue 10): the app user (``www-data``) is taken over; it plants traps; root's
ordinary deploys run. Each case asserts that root-owned victims keep their bytes, owner and mode,
that the root-only secret's marker reached no backup and no ``www-data``-readable file, that no
run hung (every run is bounded) and that each run succeeded safely or failed with one clear line.

The release tool's cases (the uWSGI FIFO, backups, adoption) used to be ``xfail(strict=True)``:
server/files.py's descriptor walk and checked FIFO write fixed them, and the marks went.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import stat
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from .attacklib import (
    APPS_DIR,
    BACKUPS,
    NOTES_SHARED,
    RUN_DIR,
    SECRET,
    SSH_KEY,
    VICTIM,
    VICTIM_DIR,
    WEB2PY,
    Target,
    as_www,
    not_hung,
    safe_outcome,
)
from .sandboxlib import wait_for

# A deploy of this app takes about 10 s here: a run that can only hang gets this long.
HANG_BOUND = 30


@pytest.fixture
def target(attacked: Target) -> Target:
    """The attacked server, ready for this case (Target.begin)."""
    attacked.begin()
    return attacked


def plant(target: Target, command: str) -> bool:
    """As www-data; True when the plant worked (a refusal by permissions is a fine outcome)."""
    out = target.server.run(as_www(command) + " >/dev/null 2>&1 && echo PLANTED || true")
    return "PLANTED" in out


def wait_unlocked(target: Target, seconds: float = 5) -> None:
    """A release tool whose pyinfra run was cut off may still be working (or stuck) on the
    server: given a moment, then stopped by the PID its lock records (the test started it)."""
    lock = f"{APPS_DIR}/notes/lock"
    if not wait_for(
        lambda: "no" in target.server.run(f"test -d {lock} && echo yes || echo no"), seconds, 1
    ):
        pid = target.server.run(
            f"sed -n 's/.*\"pid\": \\([0-9][0-9]*\\).*/\\1/p' {lock}/info.json 2>/dev/null; true"
        ).strip()
        if pid.isdigit():
            target.server.run(
                f"kill {pid} 2>/dev/null; for i in $(seq 20); do kill -0 {pid} 2>/dev/null || "
                f"break; sleep 0.5; done; kill -9 {pid} 2>/dev/null; true"
            )
            # it may have switched without reloading: uWSGI serves what `current` says again
            target.server.run("systemctl reload web2py-uwsgi", check=False, timeout=120)
    target.unlock()


def healthy(target: Target) -> None:
    """The app serves again (a case must leave the server as it found it)."""
    assert target.health() == "200"


# --- cleanup ----------------------------------------------------------------------------------
CLEANUP_PLANTS = {
    "link-to-root-dir": f"ln -sfn {VICTIM_DIR} {NOTES_SHARED}/cache/planted",
    "symlinked-parent": f"mkdir -p {NOTES_SHARED}/sessions/s1 && "
    f"ln -sfn {VICTIM_DIR} {NOTES_SHARED}/sessions/s1/sub",
    "old-link-to-file": f"ln -sfn {VICTIM} {NOTES_SHARED}/errors/old-ticket-link && "
    f"touch -h -d '400 days ago' {NOTES_SHARED}/errors/old-ticket-link",
}


@pytest.mark.parametrize("how", sorted(CLEANUP_PLANTS))
def test_cleanup_never_follows_links(target, how):
    assert plant(target, CLEANUP_PLANTS[how])
    try:
        run = target.run(
            "deploys/cleanup.py", {"cleanup_days": "30", **target.apps_data(keep_releases=3)}
        )
        safe_outcome(run)
        assert run.returncode == 0, run.output[-3000:]
        target.check()
    finally:
        target.server.run(
            f"rm -rf {NOTES_SHARED}/cache/planted {NOTES_SHARED}/sessions/s1 "
            f"{NOTES_SHARED}/errors/old-ticket-link"
        )


# --- install_web2py ---------------------------------------------------------------------------
def test_install_admin_password_staging_link(target):
    """The staged parameters file was written through a link the app user put in its place."""
    plant(
        target,
        f"ln -sfn {VICTIM} {WEB2PY}/parameters_443.py.pyinfra-new; "
        f"printf 'password=\"x\"\\n' > {WEB2PY}/parameters_443.py",  # forces a rewrite
    )
    run = target.install()
    safe_outcome(run)
    assert run.returncode == 0, run.output[-3000:]
    target.check()
    assert target.server.run(f"stat -c '%U' {VICTIM}").strip() == "root"


def test_install_source_marker_link(target):
    """The web2py source marker was written (and its folder chowned) through a planted link."""
    plant(target, f"ln -sfn {VICTIM} {WEB2PY}/.pyinfra-web2py-source")
    try:
        run = target.install()
        safe_outcome(run)
        assert run.returncode == 0, run.output[-3000:]
        target.check()
    finally:
        target.server.run(
            f"if [ -L {WEB2PY}/.pyinfra-web2py-source ]; then "
            f"rm -f {WEB2PY}/.pyinfra-web2py-source; fi"
        )


def test_install_web2py_root_swapped_for_a_link(target):
    """The app user moves web2py_root aside and links root's folder in its place."""
    swapped = plant(
        target, f"mv {WEB2PY} {WEB2PY}.moved && ln -s {VICTIM_DIR} {WEB2PY}"
    )  # needs the folder web2py_root is in to be www-data's
    try:
        if swapped:  # force the reinstall the old marker check would skip
            target.server.run(f"rm -f {WEB2PY}.moved/.pyinfra-web2py-source")
        run = target.install()
        safe_outcome(run)
        target.check()
    finally:
        target.server.run(
            f"if [ -L {WEB2PY} ]; then rm -f {WEB2PY} && mv {WEB2PY}.moved {WEB2PY}; fi"
        )
        if swapped:
            assert target.install().returncode == 0


def test_install_hash_parameters_are_ours(target):
    """A weak hash in the parameters file (written by the app user when it can) is replaced by
    one with our cost, never re-used."""
    from operations.local.passwords import web2py_hash, web2py_parameters

    weak = web2py_parameters(web2py_hash(target.env["WEB2PY_ADMIN_PASSWORD"], "salt", 1, 1, "sha1"))
    path = f"{WEB2PY}/parameters_443.py"
    if not plant(target, f"printf '%s' {shlex.quote(weak)} > {path}"):
        # the app user cannot write it: root puts it there, to test the controller too
        target.server.run(f"printf '%s' {shlex.quote(weak)} > {path}")
    run = target.install()
    safe_outcome(run)
    assert run.returncode == 0, run.output[-3000:]
    stored = target.server.run(f"cat {path}")
    assert stored.startswith('password="pbkdf2(100000,64,sha512)$'), stored[:40]
    target.check()


def test_install_framework_code_is_not_the_apps_to_change(target, web2py_zip):
    """A backdoor in gluon/ or site-packages/ (on sys.path first) outlives no install."""
    plant(
        target,
        f"echo '# backdoor' >> {WEB2PY}/gluon/main.py; "
        f"echo 'import os' > {WEB2PY}/site-packages/sitecustomize.py; "
        f"echo '# backdoor' >> {WEB2PY}/wsgihandler.py",
    )
    run = target.install()
    safe_outcome(run)
    assert run.returncode == 0, run.output[-3000:]
    with zipfile.ZipFile(web2py_zip) as zf:
        expected = hashlib.sha256(zf.read("web2py/gluon/main.py")).hexdigest()
        handler = hashlib.sha256(zf.read("web2py/handlers/wsgihandler.py")).hexdigest()
    assert target.server.run(f"sha256sum {WEB2PY}/gluon/main.py").split()[0] == expected
    assert target.server.run(f"sha256sum {WEB2PY}/wsgihandler.py").split()[0] == handler
    assert target.server.run(f"ls {WEB2PY}/site-packages") == ""
    target.check()


def _evil_zip(good: str, out: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    """The good web2py zip with entries replaced or added: (name, data, unix mode)."""
    names = {name for name, _, _ in entries}
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename not in names:
                dst.writestr(info, src.read(info))
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            dst.writestr(info, data)
    return out


EVIL_ZIPS = {
    # root copied the link's target (root's secret) into the app user's tree
    "symlinked-handler": [
        ("web2py/handlers/wsgihandler.py", SECRET.encode(), stat.S_IFLNK | 0o777),
    ],
    # a link, then a file written through it
    "link-then-file": [
        ("web2py/evil", b"/etc", stat.S_IFLNK | 0o777),
        ("web2py/evil/cron.d/w2p-pwned", b"* * * * * root id\n", stat.S_IFREG | 0o644),
    ],
    "dotdot-and-absolute": [
        ("web2py/../w2p-escape", b"x", stat.S_IFREG | 0o644),
        ("/etc/cron.d/w2p-abs", b"x", stat.S_IFREG | 0o644),
        ("web2py//etc/cron.d/w2p-slash", b"x", stat.S_IFREG | 0o644),
    ],
}


@pytest.mark.parametrize("kind", sorted(EVIL_ZIPS))
def test_install_web2py_zip_is_extracted_by_a_checked_routine(target, web2py_zip, tmp_path, kind):
    evil = _evil_zip(web2py_zip, tmp_path / "web2py_src.zip", EVIL_ZIPS[kind])
    before = target.server.run(f"sha256sum {WEB2PY}/wsgihandler.py {WEB2PY}/gluon/main.py")
    try:
        run = target.install(env={"WEB2PY_SRC_ZIP": str(evil)})
        safe_outcome(run)
        assert run.returncode != 0, "an unsafe web2py zip was installed"
        assert "web2py_source" in run.output or "unsafe" in run.output, run.output[-2000:]
        assert (
            target.server.run(f"sha256sum {WEB2PY}/wsgihandler.py {WEB2PY}/gluon/main.py") == before
        )
        assert target.server.run(
            "ls /etc/cron.d /home/www-data /home /etc | grep -c 'w2p-pwned\\|w2p-escape\\|w2p-abs'"
            " || true"
        ).strip() in ("", "0")
        target.check()
    finally:
        if "Success" in run.output and run.returncode == 0:
            assert target.install().returncode == 0  # back to the good zip


def test_install_remote_source_needs_https_or_sha256(target):
    run = target.install(web2py_source="http://deb.example.invalid/web2py_src.zip")
    safe_outcome(run)
    assert run.returncode != 0
    assert "web2py_source" in run.output and "https" in run.output, run.output[-2000:]
    target.check()


# --- app_deploy and the release tool -----------------------------------------------------------
def test_deploy_fifo_link_to_a_root_file(target):
    """uwsgi.fifo in the app user's run dir made a link to a root file: root wrote 'c' in it."""
    fifo = f"{RUN_DIR}/uwsgi.fifo"
    assert plant(target, f"mv {fifo} {fifo}.real && ln -s {VICTIM} {fifo}")
    try:
        run = target.deploy(bound=HANG_BOUND)
        safe_outcome(run)
        target.check()
    finally:
        target.server.run(f"rm -f {fifo} && mv {fifo}.real {fifo}")
        wait_unlocked(target)


def test_deploy_fifo_without_a_reader_does_not_hang(target):
    fifo = f"{RUN_DIR}/uwsgi.fifo"
    assert plant(target, f"mv {fifo} {fifo}.real && mkfifo {fifo}")
    try:
        run = target.deploy(bound=HANG_BOUND)
        not_hung(run)
        safe_outcome(run, "uwsgi.fifo")
        target.check()
    finally:
        # the real FIFO back first, then the planted one opened once (a blocked writer goes on)
        target.server.run(
            f"mv {fifo} {fifo}.planted && mv {fifo}.real {fifo} && "
            f"(timeout 5 cat {fifo}.planted >/dev/null || true) && rm -f {fifo}.planted"
        )
        wait_unlocked(target)


def test_deploy_migrate_model_plants_links_in_its_check_tree(target):
    """A deterministic race: the app's own models run (as www-data) in the pre-switch check's
    tree before root uses it; they plant links where root would open its log or write."""
    model = target.app_dir / "models" / "zz_attack.py"
    model.write_text(
        "import os\n"
        "if request.is_shell:\n"
        "    for name in ('uwsgi.log', 'check.log', 'logs/uwsgi.log', 'deposit/x',\n"
        "                 'migrate.py.new'):\n"
        "        try:\n"
        f"            os.symlink({VICTIM!r}, name)\n"
        "        except OSError:\n"
        "            pass\n"
    )
    try:
        run = target.deploy(migrate=True)
        safe_outcome(run)
        assert run.returncode == 0, run.output[-3000:]
        target.check()
    finally:
        model.unlink()


LEAK_PLANTS = (
    f"ln -sfn {SECRET} {NOTES_SHARED}/uploads/leak.txt; "
    f"ln -sfn /root/.ssh {NOTES_SHARED}/uploads/keys; "  # a symlinked folder
    f"mkdir -p {NOTES_SHARED}/databases/sub && ln -sfn /root {NOTES_SHARED}/databases/sub/r"
)


def _unplant_leaks(target: Target) -> None:
    target.server.run(
        f"rm -rf {NOTES_SHARED}/uploads/leak.txt {NOTES_SHARED}/uploads/keys "
        f"{NOTES_SHARED}/databases/sub; "
        f'for d in {NOTES_SHARED}/.*.before-restore-*; do [ -d "$d" ] && '
        f'find "$d" -type l -delete; done; true'
    )


LEAK_RUNS = {
    "deploy": lambda t, _: t.deploy(),
    "restore-code": lambda t, _: t.run(
        "deploys/restore.py", {"restore_app": "notes", "restore_backup": "latest"}
    ),
    "restore-data": lambda t, _: t.run(
        "deploys/restore.py",
        {"restore_app": "notes", "restore_backup": "latest", "restore_data": "true"},
    ),
    "retrieve-snapshot": lambda t, local: t.run(
        "deploys/retrieve.py",
        {"retrieve_app": "notes", "retrieve_backup": "snapshot", "retrieve_dir": local},
    ),
}


@pytest.mark.parametrize("how", sorted(LEAK_RUNS))
def test_backup_never_reads_through_links(target, how, tmp_path):
    """Links in shared data to root-only files and folders: backups took what they point at."""
    assert plant(target, LEAK_PLANTS)
    try:
        run = LEAK_RUNS[how](target, str(tmp_path / "retrieved"))
        safe_outcome(run)
        target.check()
        for local in (tmp_path / "retrieved").rglob("*.zip"):
            with zipfile.ZipFile(local) as zf:
                for name in zf.namelist():
                    assert target.marker.encode() not in zf.read(name), name
    finally:
        _unplant_leaks(target)
        wait_unlocked(target)


def test_hard_links_to_root_files_in_data(target):
    """Hard links to root's files in the app's data (a backup would copy them, a chown would
    hand them over): the kernel refuses them to the app user (fs.protected_hardlinks, which this
    case requires); if it ever did not, the deploy's backup must still hold no root content."""
    assert target.server.run("sysctl -n fs.protected_hardlinks").strip() == "1"
    planted = plant(
        target,
        f"ln {SECRET} {NOTES_SHARED}/uploads/hl-secret; "
        f"ln {VICTIM} {NOTES_SHARED}/uploads/hl-victim; "
        f"test -e {NOTES_SHARED}/uploads/hl-secret -o -e {NOTES_SHARED}/uploads/hl-victim",
    )
    try:
        assert not planted, "the app user hard-linked a root file into its data"
        run = target.deploy()
        safe_outcome(run)
        assert run.returncode == 0, run.output[-3000:]
        target.check()
    finally:
        target.server.run(
            f"rm -f {NOTES_SHARED}/uploads/hl-secret {NOTES_SHARED}/uploads/hl-victim"
        )


def test_rollback_with_links_planted_in_data(target):
    assert plant(target, LEAK_PLANTS)
    try:
        run = target.run("deploys/rollback.py", {"rollback_app": "notes"})
        safe_outcome(run)
        assert run.returncode == 0, run.output[-3000:]
        target.check()
    finally:
        _unplant_leaks(target)


def test_deploy_app_link_swapped_for_a_root_folder(target):
    """applications/notes re-pointed at /root: the backup zipped root's home."""
    link = f"{WEB2PY}/applications/notes"
    plant(target, f"ln -sfn /root {link}.x && mv -T {link}.x {link}")
    try:
        run = target.deploy()
        safe_outcome(run)
        target.check()
    finally:
        target.server.run(f"rm -f {link}.x; ln -sfn {APPS_DIR}/notes/current {link}.y && "
                          f"mv -T {link}.y {link}")  # fmt: skip
        wait_unlocked(target)


def test_deploy_fifo_in_data_does_not_block_the_backup(target):
    fifo = f"{NOTES_SHARED}/uploads/blocker"
    assert plant(target, f"mkfifo {fifo}")
    try:
        run = target.deploy(bound=HANG_BOUND)
        safe_outcome(run)
        target.check()
    finally:
        # a blocked open goes on once the FIFO has a writer; its name gone, the next open fails
        target.server.run(
            f"ln {fifo} /root/w2p-fifo-hold && rm -f {fifo} && "
            "(timeout 5 sh -c 'printf x > /root/w2p-fifo-hold' || true); rm -f /root/w2p-fifo-hold"
        )
        wait_unlocked(target)
        healthy(target)


def test_adoption_of_a_plain_folder_copies_no_links(target):
    """The plain-folder app ``legacy`` (installed by install_web2py) is adopted by its first
    deploy: links its user planted must not bring root's files into shared/ or the backup."""
    legacy = f"{WEB2PY}/applications/legacy"
    plant(
        target,
        f"ln -sfn {SECRET} {legacy}/databases/leak.sqlite; "
        f"ln -sfn /root/.ssh {legacy}/uploads/keys; "
        f"ln -sfn {SSH_KEY} {legacy}/private/stolen.txt",
    )
    data = {
        "deploy_apps": json.dumps(
            {
                "legacy": {
                    "path": str(target.legacy_dir),
                    "health_path": "/legacy/default/health",
                    "health_text": "ok notes",
                }
            }
        )
    }
    run = target.run("deploys/app_deploy.py", data)
    safe_outcome(run)
    target.check()


# --- restore, retrieve ----------------------------------------------------------------------
SLIPS = {
    "double-slash": "notes//tmp/w2p-slip",  # passed a check for '..' alone
    "dotdot": "notes/uploads/../../../../tmp/w2p-slip",
}


@pytest.mark.parametrize("slip", sorted(SLIPS))
@pytest.mark.parametrize("with_data", [False, True], ids=["code", "data"])
def test_restore_refuses_names_outside_the_app(target, with_data, slip):
    """A backup brought from elsewhere with an entry that lands outside the app."""
    name = "notes.20200101T000000Z-9.zip"
    target.server.run(
        f'cd {BACKUPS} && latest=$(ls -t notes.*.zip | head -n 1) && cp "$latest" {name} && '
        "python3 - <<'EOF'\n"
        "import zipfile\n"
        f"with zipfile.ZipFile('{name}', 'a') as zf:\n"
        f"    zf.writestr({SLIPS[slip]!r}, 'x')\n"
        "EOF\n"
        f"sha256sum {name} > {name}.sha256"
    )
    try:
        run = target.run(
            "deploys/restore.py",
            {"restore_app": "notes", "restore_backup": name, "restore_data": str(with_data)},
        )
        safe_outcome(run, "refused")
        assert run.returncode != 0
        assert target.server.run("ls /tmp | grep -c w2p-slip || true").strip() == "0"
        target.check()
    finally:
        target.server.run(f"rm -f {BACKUPS}/{name} {BACKUPS}/{name}.sha256 /tmp/w2p-slip*")


def test_retrieve_leaves_no_app_readable_copy(target, tmp_path):
    watch = (
        'for f in /tmp/* /tmp/*/* /var/tmp/* /dev/shm/*; do [ -f "$f" ] && head -c 2 "$f" '
        '2>/dev/null | grep -q PK && echo "$f"; done; sleep 0.02'
    )
    target.server.run(
        "rm -f /root/tmp-leaks; timeout 120 runuser -u www-data -- sh -c "
        f"{shlex.quote(f'while :; do {watch}; done')} </dev/null >/root/tmp-leaks 2>/dev/null & "
        "echo $! >/root/watch.pid"
    )
    run = target.run(
        "deploys/retrieve.py",
        {"retrieve_app": "notes", "retrieve_backup": "snapshot", "retrieve_dir": str(tmp_path)},
    )
    target.server.run("kill $(cat /root/watch.pid) || true")
    safe_outcome(run)
    assert run.returncode == 0, run.output[-3000:]
    assert target.server.run("cat /root/tmp-leaks") == "", "a backup was readable by www-data"
    target.check()


# --- maintenance, hooks, create_user, data validation ---------------------------------------
def test_maintenance_down_and_up_with_links_planted(target):
    assert plant(target, LEAK_PLANTS)
    try:
        for action in ("down", "up"):
            run = target.run(
                "deploys/maintenance.py", {"maintenance_app": "notes", "maintenance_action": action}
            )
            safe_outcome(run)
            assert run.returncode == 0, run.output[-3000:]
        target.check()
        healthy(target)
    finally:
        _unplant_leaks(target)


def test_hooks_run_as_the_web2py_user_unless_asked_for_root(target):
    hooks = {
        "before_check": ['test "$(id -un)" = www-data'],
        "after_switch": [{"run": 'test "$(id -u)" = 0', "as": "root"}],
    }
    run = target.deploy(hooks=hooks)
    safe_outcome(run)
    assert run.returncode == 0, run.output[-3000:]
    target.check()


def test_create_user_sudo_scope_spans_no_arguments(target, tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    run = target.run(
        "deploys/create_user.py",
        {"deploy_user": "mallory", "deploy_user_public_key": f"{key}.pub"},
    )
    safe_outcome(run)
    assert run.returncode == 0, run.output[-3000:]
    rules = target.server.run("sudo -l -U mallory")
    assert "*" not in rules.split("may run the following commands")[-1], rules
    tried = target.server.run(
        "runuser -u mallory -- sudo -n systemctl start web2py-uwsgi debug-shell.service "
        ">/dev/null 2>&1 && echo ALLOWED || echo refused"
    )
    assert tried.strip() == "refused"
    assert target.server.run("systemctl is-active debug-shell.service || true").strip() != "active"
    target.check()


ROLLBACK = "deploys/rollback.py"
BAD_DATA = {
    "rollback-to-dotdot": (ROLLBACK, {"rollback_app": "notes", "rollback_to": "../../etc"}),
    "rollback-to-absolute": (ROLLBACK, {"rollback_app": "notes", "rollback_to": "/etc"}),
    "app-name-newline": ("deploys/rollback.py", {"rollback_app": "notes\n"}),
    "deploy-user-www-data": ("deploys/create_user.py", {"deploy_user": "www-data"}),
    "deploy-user-root-newline": ("deploys/create_user.py", {"deploy_user": "root\n"}),
    "run-dir-tmp": ("deploys/install_web2py.py", {"web2py_run_dir": "/tmp"}),
    "run-dir-outside-run": ("deploys/install_web2py.py", {"web2py_run_dir": "/var/web2py-run"}),
    "cache-dir-tmp": ("deploys/install_web2py.py", {"web2py_cache_dir": "/tmp"}),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_refused_before_anything_changes(target, case):
    deploy, data = BAD_DATA[case]
    key = next(iter(k for k in data if k not in ("rollback_app",)), "rollback_app")
    before = target.server.run(f"ls -lA --time-style=+%s {WEB2PY} {APPS_DIR}/notes /run/web2py")
    started = time.monotonic()
    run = target.run(deploy, data)
    safe_outcome(run)
    assert run.returncode != 0, f"{case} was accepted"
    assert key in run.output, run.output[-2000:]
    assert time.monotonic() - started < 60
    assert target.server.run(f"ls -lA --time-style=+%s {WEB2PY} {APPS_DIR}/notes /run/web2py") == (
        before
    )
    target.check()


def test_zz_no_run_left_a_process_or_lock(target):
    """Every earlier case ended: no release tool still runs, no lock is held."""
    tools = target.server.run("ps -eo args | grep -c '[w]eb2py-release.py deploy' || true")
    assert tools.strip() == "0"
    assert target.server.run(f"ls {APPS_DIR}/notes").split().count("lock") == 0
    healthy(target)
