"""The attack suite's server and checks: a compromised app (``www-data``) plants traps, root's
ordinary deploys run, and nothing of root's may change or leak.

One sandbox server (``w2pa-1``) is installed once per session and shared by
``test_attacks.py`` and ``test_writable_paths.py``. Root-owned victims are (re)written before each
case with known bytes, owner and mode; :meth:`Target.check` then proves them unchanged, that the
root-only secret's marker reached no backup and no ``www-data``-readable file, and that nothing
was planted in ``/etc/cron.d``.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .sandboxlib import ROOT, Run, Server, pyinfra, sandbox_down, sandbox_up

PREFIX = "w2pa"  # its own: w2pk is test_schedulers'
WEB2PY = "/home/www-data/web2py"
APPS_DIR = "/srv/web2py-apps"
BACKUPS = "/var/backups/web2py"
RUN_DIR = "/run/web2py"
NOTES_SHARED = f"{APPS_DIR}/notes/shared"
VICTIM = "/etc/w2p-victim.conf"  # a root file 0644: must keep its bytes, owner and mode
VICTIM_DIR = "/root/w2p-victim-dir"  # root's folder with an old file (cleanup bait)
SECRET = "/root/w2p-secret"  # root-only, 0600, holds the marker
SSH_KEY = "/root/.ssh/id_w2p_attack"  # root-only, 0600, holds the marker too
BOUND = 150  # seconds any one run may take: a hang fails the case, it never blocks the suite
# Where a leak would be readable by the app user (searched as www-data, links not followed).
READABLE_BY_APP = (WEB2PY, APPS_DIR, "/home", "/tmp", "/var/tmp", "/dev/shm", RUN_DIR, "/srv")


def as_www(command: str) -> str:
    """``command`` run by the app user (what a compromised app can do), for Server.run."""
    return f"runuser -u www-data -- sh -c {shlex.quote(command)}"


@dataclass
class Target:
    """The shared attacked server and its app (a copy of examples/apps/notes)."""

    server: Server
    app_dir: Path
    marker: str
    env: dict[str, str]
    web2py_apps: str = "{}"  # install_web2py's web2py_apps, the same on every install run
    legacy_dir: Path | None = None
    version: int = 1
    runs: list[Run] = field(default_factory=list)
    _expected: str = ""
    _known_leaks: frozenset[str] = frozenset()
    _scanned: dict[str, bool] = field(default_factory=dict)  # backup name -> holds the marker

    # --- victims ------------------------------------------------------------------------
    def reset_victims(self) -> None:
        """Write every victim afresh (a case that damaged one must not fail the next)."""
        m = self.marker
        self.server.run(
            f"printf 'victim config\\n' > {VICTIM} && chown root:root {VICTIM} && "
            f"chmod 644 {VICTIM} && "
            f"umask 077 && printf '%s\\n' 'ROOT-ONLY {m}' > {SECRET} && chmod 600 {SECRET} && "
            f"mkdir -p /root/.ssh && printf '%s\\n' 'PRIVATE KEY {m}' > {SSH_KEY} && "
            f"chmod 600 {SSH_KEY} && "
            f"rm -rf {VICTIM_DIR} && mkdir -m 700 {VICTIM_DIR} && "
            f"printf 'keep {m}\\n' > {VICTIM_DIR}/old-file && "
            f"touch -d '400 days ago' {VICTIM_DIR}/old-file && "
            "rm -f /etc/cron.d/w2p-* /tmp/w2p-slip*"
        )

    def victims_state(self) -> str:
        return self.server.run(
            f"for f in {VICTIM} {SECRET} {SSH_KEY} {VICTIM_DIR} {VICTIM_DIR}/old-file "
            "/etc/shadow /etc/passwd /etc/sudoers; do "
            'stat -c "%n %U:%G %a %F" "$f"; done; '
            f"sha256sum {VICTIM} {SECRET} {SSH_KEY} {VICTIM_DIR}/old-file; "
            f"ls -A {VICTIM_DIR}; ls /etc/cron.d"
        )

    def remember_victims(self) -> None:
        self.reset_victims()
        self._expected = self.victims_state()

    def begin(self) -> None:
        """Before a case: victims afresh, no stale lock, the app serving (a case the code under
        test lost may have broken it: reinstalled then), and the leaks earlier cases left are
        known, so each case answers for its own."""
        self.reset_victims()
        self.unlock()
        if self.health() != "200":
            self.run("deploys/install_web2py.py", data={"web2py_apps": self.web2py_apps})
            self.server.run("systemctl restart web2py-uwsgi", check=False)
            assert self.health() == "200", "the attacked server could not be repaired"
        self._known_leaks = frozenset(self.all_leaks())

    def health(self) -> str:
        return self.server.run(
            "for i in $(seq 20); do c=$(curl -s -o /dev/null -w '%{http_code}' "
            'http://127.0.0.1/notes/default/health); [ "$c" = 200 ] && break; sleep 0.5; done; '
            'echo "$c"'
        ).strip()

    def leaks(self) -> list[str]:
        """Leaks this case made (see :meth:`all_leaks`)."""
        return [leak for leak in self.all_leaks() if leak not in self._known_leaks]

    def all_leaks(self) -> list[str]:
        """Where the marker is: backups (root's, but they travel) and www-data-readable files.
        A backup never changes once written: each is searched once."""
        listed = self.server.run(f"ls {BACKUPS}/ 2>/dev/null; true").split()
        new = [name for name in listed if name.endswith(".zip") and name not in self._scanned]
        if new:
            found = self.server.run(
                f"cd {BACKUPS} && for z in {' '.join(new)}; do "
                f'unzip -p "$z" 2>/dev/null | grep -aq {self.marker} && echo "$z"; done; true',
                timeout=120,
            ).split()
            self._scanned.update({name: name in found for name in new})
        leaks = [f"backup {BACKUPS}/{name}" for name in listed if self._scanned.get(name)]
        readable = self.server.run(
            as_www(f"grep -rlsa {self.marker} {' '.join(READABLE_BY_APP)} 2>/dev/null; true"),
            timeout=120,
        ).split("\n")
        return leaks + [line for line in readable if line.strip()]

    def check(self) -> None:
        """Root's files as they were, the secret nowhere it should not be."""
        assert self.victims_state() == self._expected, "a root-owned victim changed"
        assert self.leaks() == [], "root-only content reached a backup or a www-data-readable place"

    # --- runs -----------------------------------------------------------------------------
    def run(
        self,
        deploy: str,
        data: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        bound: float = BOUND,
    ) -> Run:
        """A deploy bounded by ``bound`` seconds: a hang is a result (returncode -9, 'HUNG')."""
        try:
            result = pyinfra(
                deploy, [self.server], data=data, env={**self.env, **(env or {})}, timeout=bound
            )
        except subprocess.TimeoutExpired:
            result = Run(-9, f"HUNG: {deploy} did not finish within {bound:g}s")
        self.runs.append(result)
        return result

    def apps_data(self, **settings) -> dict[str, str]:
        app = {
            "path": str(self.app_dir),
            "health_path": "/notes/default/health",
            "health_text": "ok notes",
            **settings,
        }
        return {"deploy_apps": json.dumps({"notes": app})}

    def bump(self) -> str:
        """A new version of the app's code: the next deploy has something to do."""
        self.version += 1
        util = self.app_dir / "modules" / "notes_util.py"
        text = util.read_text()
        start = text.index("VERSION = '") + len("VERSION = '")
        version = f"1.{self.version}.0"
        util.write_text(text[:start] + version + text[text.index("'", start) :])
        return version

    def deploy(self, bound: float = BOUND, **settings) -> Run:
        self.bump()
        return self.run("deploys/app_deploy.py", self.apps_data(**settings), bound=bound)

    def unlock(self) -> None:
        self.server.run(f"rm -rf {APPS_DIR}/notes/lock")

    def install(self, env: dict[str, str] | None = None, **data: str) -> Run:
        return self.run(
            "deploys/install_web2py.py", data={"web2py_apps": self.web2py_apps, **data}, env=env
        )


def not_hung(run: Run) -> None:
    assert not run.output.startswith("HUNG"), run.output


def safe_outcome(run: Run, refusal: str | None = None) -> None:
    """Succeeded, or failed with one clear line (no traceback) naming ``refusal`` if given."""
    not_hung(run)
    assert "Traceback (most recent call last)" not in run.output, run.output[-3000:]
    if run.returncode != 0:
        assert refusal is None or refusal in run.output, run.output[-3000:]


def build_target(tmp_path_factory, web2py_zip: str) -> Target:
    """Boot and install the attacked server: web2py, the notes app (deployed with releases) and
    a plain-folder app ``legacy`` (installed by install_web2py, adopted later by a case)."""
    server = sandbox_up(PREFIX, 1)[0]
    apps = tmp_path_factory.mktemp("attack-apps")
    app_dir = apps / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
    legacy = apps / "legacy"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", legacy)
    env = {
        "WEB2PY_ADMIN_PASSWORD": "adm-" + secrets.token_urlsafe(16),
        "WEB2PY_SRC_ZIP": web2py_zip,
    }
    web2py_apps = json.dumps({"notes": str(app_dir), "legacy": str(legacy)})
    target = Target(
        server, app_dir, "W2PLEAK" + secrets.token_hex(8), env, web2py_apps, legacy_dir=legacy
    )
    first = target.install()
    assert first.returncode == 0, first.output[-4000:]
    deployed = target.deploy()
    assert deployed.returncode == 0, deployed.output[-4000:]
    target.remember_victims()
    return target


@pytest.fixture(scope="session")
def attacked(tmp_path_factory, web2py_zip, e2e_ready):
    """The attacked server, installed once for both attack modules."""
    target = build_target(tmp_path_factory, web2py_zip)
    yield target
    sandbox_down([target.server.name])
