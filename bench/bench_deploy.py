"""Deploy benchmarks against throwaway sandbox servers: ratios measured side by side in one run.

    bench/run                    # boots w2pb-1, provisions it, measures, removes it (5-10 min)
    bench/run --keep             # leave the server running afterwards (to look at it)
    bench/run --no-write         # print the table only, leave bench/RESULTS.md alone

What is measured (bench/README.md says more):

1. a no-op re-run of deploys/app_deploy.py (app deployed, unchanged) against
   ``pyinfra exec -- true`` on the same host, alternating A B A B..., medians;
2. the first deploy of a generated 2,000-file app against a raw ``tar c | ssh 'sudo tar x'``
   of the same folder plus ``systemctl reload web2py-uwsgi``, alternating, medians;
3. a one-file change deployed after that: bytes received by the server and wall time, against
   the full first deploy of the same app;
4. rollback: pyinfra wall time, and the server's own duration_s from the app's audit log;
5. failed requests at a fixed open-loop rate through nginx during a deploy and a rollback.

Only the server's own address is ever contacted, and only servers with our prefix are touched.
The machine is shared and noisy: absolute times wander, ratios of runs made side by side hold.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import LoadRunner

ROOT = Path(__file__).resolve().parents[1]
PYINFRA = ROOT / ".venv" / "bin" / "pyinfra"
PYTHON = ROOT / ".venv" / "bin" / "python"
SANDBOX = ROOT / "bin" / "sandbox"
RESULTS = ROOT / "bench" / "RESULTS.md"
# Our own copy of the stand-in zip: build/web2py_src.zip is shared with tests running at the same
# time, and two builds of one path would write the same temporary file.
WEB2PY_ZIP = ROOT / "build" / "bench" / "web2py_src.zip"
NOTES = ROOT / "examples" / "apps" / "notes"
APPS_DIR = "/srv/web2py-apps"
RAW_DIR = "/srv/raw-bench"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

PROVISION_TIMEOUT = 900  # a first install through the apt proxy
RUN_TIMEOUT = 300  # any other pyinfra run
SSH_TIMEOUT = 120
# uWSGI throttles a worker respawned within about a second of its last spawn ("worker respawning
# too fast !!! i have to sleep a bit (2 seconds)"), so a chain reload that starts right after
# another one takes 2 s longer. Every measured run that reloads is preceded by this pause, so
# that no run pays for the previous one.
SETTLE_S = 2.5


def settle() -> None:
    time.sleep(SETTLE_S)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# The sandbox server


@dataclass(frozen=True)
class Server:
    name: str
    address: str
    netns: str
    ssh_user: str
    ssh_key: str
    known_hosts: str

    def ssh_args(self) -> list[str]:
        return [
            "ssh", "-i", self.ssh_key, "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10", f"{self.ssh_user}@{self.address}",
        ]  # fmt: skip

    def run(self, command: str, timeout: float = SSH_TIMEOUT) -> str:
        """A shell command as root on the server."""
        result = subprocess.run(
            [*self.ssh_args(), "sudo sh -c " + shlex.quote(command)],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if result.returncode != 0:
            raise BenchError(f"{self.name}: {command!r} exited {result.returncode}: "
                             f"{result.stderr.strip()[-500:]}")  # fmt: skip
        return result.stdout

    def counters(self) -> tuple[int, int]:
        """(rx, tx) bytes of the server's interface, read from the host (ip -n NETNS)."""
        out = subprocess.run(
            ["ip", "-j", "-s", "-n", self.netns, "link", "show", "host0"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        stats = json.loads(out)[0]["stats64"]
        return stats["rx"]["bytes"], stats["tx"]["bytes"]

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.address, 80, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


class BenchError(Exception):
    pass


def sandbox(*args: str, timeout: float = 300, capture: bool = False) -> str:
    result = subprocess.run(
        [str(SANDBOX), *args], cwd=ROOT, timeout=timeout, text=True,
        capture_output=capture, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchError(f"bin/sandbox {' '.join(args)} exited {result.returncode}")
    return result.stdout or ""


def sandbox_state() -> dict:
    return json.loads(sandbox("inventory", timeout=60, capture=True))


def boot(prefix: str) -> Server:
    sandbox("up", "1", "--prefix", prefix, timeout=900)
    for s in sandbox_state()["servers"]:
        if s["name"] == f"{prefix}-1":
            return Server(
                s["name"], s["address"], s["netns"], s["ssh_user"], s["ssh_key"], s["known_hosts"]
            )
    raise BenchError(f"{prefix}-1 is not in the sandbox state after `up`")


# ---------------------------------------------------------------------------------------------
# pyinfra runs


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    rx: int = 0  # bytes the server received during the run
    tx: int = 0

    @property
    def changed(self) -> int | None:
        match = re.search(r"Grand total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", self.output)
        if not match:
            return None
        value = match.group(2)
        return 0 if value == "-" else int(value)


class Bench:
    def __init__(self, server: Server, admin_password: str):
        self.server = server
        self.env = {
            **os.environ,
            "W2P_SANDBOX_HOSTS": server.name,
            "WEB2PY_SRC_ZIP": str(WEB2PY_ZIP),
        }
        self.admin_password = admin_password

    def timed(self, func: Callable[[], subprocess.CompletedProcess]) -> Run:
        rx0, tx0 = self.server.counters()
        started = time.monotonic()
        result = func()
        seconds = time.monotonic() - started
        rx1, tx1 = self.server.counters()
        output = (result.stdout or "") + (result.stderr or "")
        return Run(result.returncode, output, seconds, rx1 - rx0, tx1 - tx0)

    def pyinfra(
        self,
        *args: str,
        data: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = RUN_TIMEOUT,
        check: bool = True,
    ) -> Run:
        command = [str(PYINFRA), "-y", "inventories/sandbox.py", *args]
        for key, value in (data or {}).items():
            command += ["--data", f"{key}={value}"]
        run = self.timed(
            lambda: subprocess.run(
                command,
                cwd=ROOT,
                env={**self.env, **(env or {})},
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        )
        if check and run.returncode != 0:
            raise BenchError(
                f"pyinfra {' '.join(args)} exited {run.returncode}:\n{run.output[-4000:]}"
            )
        return run

    def deploy(self, apps: dict[str, dict], **kwargs) -> Run:
        return self.pyinfra(
            "deploys/app_deploy.py", data={"deploy_apps": json.dumps(apps)}, **kwargs
        )

    def rollback(self, app: str, apps: dict[str, dict]) -> Run:
        data = {"rollback_app": app, "deploy_apps": json.dumps(apps)}
        return self.pyinfra("deploys/rollback.py", data=data)

    def exec_true(self) -> Run:
        return self.pyinfra("exec", "--", "true")

    def raw_copy(self, folder: Path, target: str) -> Run:
        """tar c | ssh 'sudo tar x -C target && sudo systemctl reload web2py-uwsgi': one ssh."""
        remote = (
            f"sudo mkdir -p {shlex.quote(target)} && sudo tar x -C {shlex.quote(target)} && "
            "sudo systemctl reload web2py-uwsgi"
        )
        ssh = " ".join(shlex.quote(a) for a in self.server.ssh_args())
        pipeline = (
            f"set -o pipefail; tar c -C {shlex.quote(str(folder))} . | {ssh} {shlex.quote(remote)}"
        )
        run = self.timed(
            lambda: subprocess.run(
                ["bash", "-c", pipeline],
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        )
        if run.returncode != 0:
            raise BenchError(f"raw copy exited {run.returncode}: {run.output[-2000:]}")
        return run

    def reload_only(self) -> Run:
        """ssh 'sudo systemctl reload web2py-uwsgi' alone: the reload part of the raw copy."""
        command = [*self.server.ssh_args(), "sudo systemctl reload web2py-uwsgi"]
        run = self.timed(
            lambda: subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=SSH_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        )
        if run.returncode != 0:
            raise BenchError(f"reload exited {run.returncode}: {run.output[-2000:]}")
        return run

    def last_audit(self, app: str) -> dict:
        return json.loads(self.server.run(f"tail -n 1 {APPS_DIR}/{app}/audit.jsonl"))

    def live_release(self, app: str) -> str:
        return self.server.run(f"readlink {APPS_DIR}/{app}/current").strip().rsplit("/", 1)[-1]


# ---------------------------------------------------------------------------------------------
# Apps on the controller


def app_settings(path: Path, name: str) -> dict:
    return {"path": str(path), "health_path": f"/{name}/default/health", "health_text": "ok notes"}


def set_version(app_dir: Path, version: str) -> None:
    util = app_dir / "modules" / "notes_util.py"
    text = util.read_text()
    start = text.index("VERSION = '") + len("VERSION = '")
    util.write_text(text[:start] + version + text[text.index("'", start) :])


_VOCABULARY = (
    "alpha beta gamma delta note title body list item view static style script page form "
    "field table row column header footer menu link image button input label value data "
    "user session cache error record index show edit delete create update search filter"
)
WORDS = _VOCABULARY.split()


def generate_big_app(dest: Path, files: int, seed: int = 2026) -> int:
    """A valid web2py app: the notes example plus ``files`` small files under views/ and
    static/ in nested folders (half each), text of 200-1,500 bytes. Returns the bytes added."""
    shutil.copytree(NOTES, dest)
    rng = random.Random(seed)
    added = 0
    for i in range(files):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 220)))
        group, sub = f"g{i % 10:02d}", f"s{(i // 10) % 10:02d}"
        if i % 2 == 0:
            path = dest / "views" / "gen" / group / sub / f"page{i:04d}.html"
            text = f'<div class="gen-{i}">\n<h2>page {i}</h2>\n<p>{words}</p>\n</div>\n'
        elif i % 4 == 1:
            path = dest / "static" / "gen" / group / sub / f"style{i:04d}.css"
            text = f"/* {words} */\n.gen-{i} {{ margin: {i % 17}px; padding: {i % 13}px; }}\n"
        else:
            path = dest / "static" / "gen" / group / sub / f"script{i:04d}.js"
            text = f"// {words}\nfunction gen{i}() {{ return {i}; }}\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        added += len(text)
    return added


def package_size(app_dir: Path) -> int:
    from operations.local.packaging import build_package

    with tempfile.TemporaryDirectory(prefix="w2pb-pkg-") as tmp:
        return build_package(app_dir, Path(tmp) / "p.tar.gz").path.stat().st_size


# ---------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Results:
    noop: list[Run] = field(default_factory=list)
    exec_true: list[Run] = field(default_factory=list)
    noop_big: list[Run] = field(default_factory=list)
    first: list[Run] = field(default_factory=list)
    first_server_s: list[float] = field(default_factory=list)
    raw: list[Run] = field(default_factory=list)
    change: list[Run] = field(default_factory=list)
    change_server_s: list[float] = field(default_factory=list)
    change_nobackup: list[Run] = field(default_factory=list)
    change_nobackup_server_s: list[float] = field(default_factory=list)
    reload: list[Run] = field(default_factory=list)
    rollback: list[Run] = field(default_factory=list)
    rollback_server_s: list[float] = field(default_factory=list)
    load_deploy: dict = field(default_factory=dict)
    load_rollback: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    setup: dict = field(default_factory=dict)


def measure_big(b: Bench, r: Results, work: Path, reps: int, files: int, tag: str) -> list[str]:
    """First deploy of a new 2,000-file app / raw tar|ssh + reload / one changed file, x reps."""
    source = work / "big-src"
    added = generate_big_app(source, files)
    r.setup["big_files"] = sum(1 for p in source.rglob("*") if p.is_file())
    r.setup["big_added_bytes"] = added
    r.setup["big_package_bytes"] = package_size(source)
    names = []
    for i in range(1, reps + 1):
        name = f"big_{tag}_{i}"
        folder = work / name
        shutil.copytree(source, folder)
        apps = {name: app_settings(folder, name)}
        log(f"first deploy of {name} ({r.setup['big_files']} files)")
        settle()
        run = b.deploy(apps)
        status, body = b.server.get(f"/{name}/default/health")
        if status != 200 or not body.startswith(b"ok notes"):
            raise BenchError(f"{name}: health answered {status} {body[:80]!r} after its deploy")
        r.first.append(run)
        r.first_server_s.append(float(b.last_audit(name)["duration_s"]))
        log(f"  {run.seconds:.2f} s, server received {run.rx / 1e3:.0f} kB")

        log(f"raw tar | ssh 'sudo tar x' + reload of the same folder ({i}/{reps})")
        settle()
        raw = b.raw_copy(folder, f"{RAW_DIR}/{name}")
        r.raw.append(raw)
        log(f"  {raw.seconds:.2f} s, server received {raw.rx / 1e3:.0f} kB")
        settle()
        reload = b.reload_only()
        r.reload.append(reload)
        log(f"  of which the reload alone: {reload.seconds:.2f} s")

        views = sorted((folder / "views" / "gen").rglob("*.html"))
        changed = views[(i * 97) % len(views)]
        changed.write_text(changed.read_text() + f"<!-- changed {i} -->\n")
        log(f"one changed file in {name}: {changed.relative_to(folder)}")
        settle()
        run = b.deploy(apps)
        if not run.changed:
            raise BenchError(f"{name}: the one-file deploy changed nothing:\n{run.output[-3000:]}")
        r.change.append(run)
        r.change_server_s.append(float(b.last_audit(name)["duration_s"]))
        log(f"  {run.seconds:.2f} s, server received {run.rx / 1e3:.0f} kB")

        # Where the time goes: the same, without the backup of the live app (backup: false).
        changed = views[(i * 97 + 1) % len(views)]
        changed.write_text(changed.read_text() + f"<!-- changed {i}, no backup -->\n")
        settle()
        run = b.deploy({name: {**apps[name], "backup": False}})
        if not run.changed:
            raise BenchError(f"{name}: the one-file deploy changed nothing:\n{run.output[-3000:]}")
        r.change_nobackup.append(run)
        r.change_nobackup_server_s.append(float(b.last_audit(name)["duration_s"]))
        log(f"  without backup: {run.seconds:.2f} s")
        names.append(name)
    return names


def measure_noop(b: Bench, r: Results, notes: dict, big: dict | None, reps: int) -> None:
    """A B (C) A B (C)...: app_deploy unchanged, exec -- true, app_deploy of the big app."""
    log("warm-up: one of each (not counted)")
    b.deploy(notes)
    b.exec_true()
    for i in range(1, reps + 1):
        a = b.deploy(notes)
        if a.changed != 0:
            raise BenchError(f"no-op re-run changed {a.changed} operations:\n{a.output[-3000:]}")
        r.noop.append(a)
        e = b.exec_true()
        r.exec_true.append(e)
        line = f"round {i}/{reps}: app_deploy no-op {a.seconds:.2f} s, exec true {e.seconds:.2f} s"
        if big is not None:
            c = b.deploy(big)
            if c.changed != 0:
                raise BenchError(f"no-op re-run of the big app changed {c.changed} operations")
            r.noop_big.append(c)
            line += f", no-op of the generated app {c.seconds:.2f} s"
        log(line)


def under_load(b: Bench, rate: float, min_s: float, action: Callable[[], Run]) -> dict:
    """Fixed-rate load through nginx during action(): at least min_s of sends, and 3 s more
    after action() returns; the action starts 2 s into the load."""
    url = f"http://{b.server.address}/notes/default/health"
    longest = min_s + RUN_TIMEOUT + 10  # the load is stopped by hand, long before that
    with LoadRunner(url, rate=rate, duration=longest, timeout=5, expect_body=b"ok notes") as load:
        started = time.monotonic()
        time.sleep(2)
        try:
            run = action()
        except BaseException:
            load.stop()
            raise
        ended = time.monotonic() - started
        time.sleep(max(0.0, max(min_s, ended + 3) - (time.monotonic() - started)))
        load.stop()
        result = load.result(60)
    return {
        "run": run,
        "action_start_s": 2.0,
        "action_end_s": ended,
        "sent": result.sent,
        "ok": result.ok,
        "failed": result.failed,
        "by_kind": result.by_kind,
        "late": result.late_sends,
        "rate": result.achieved_rate,
        "duration_s": result.duration_s,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
        "summary": result.summary(),
    }


def measure_load_and_rollback(
    b: Bench, r: Results, notes_dir: Path, rate: float, min_s: float, reps: int
) -> None:
    notes = {"notes": app_settings(notes_dir, "notes")}
    before = b.live_release("notes")
    set_version(notes_dir, "2.0.0")
    log(f"deploy of notes 2.0.0 under {rate:.0f} req/s through nginx")
    r.load_deploy = under_load(b, rate, min_s, lambda: b.deploy(notes))
    log(f"  {r.load_deploy['summary']}")
    status, body = b.server.get("/notes/default/health")
    if body != b"ok notes 2.0.0":
        raise BenchError(f"after the deploy under load, health answered {status} {body[:80]!r}")

    log(f"rollback of notes under {rate:.0f} req/s")
    r.load_rollback = under_load(b, rate, min_s, lambda: b.rollback("notes", notes))
    r.load_rollback["server_s"] = float(b.last_audit("notes")["duration_s"])
    log(f"  {r.load_rollback['summary']}")
    if b.live_release("notes") != before:
        raise BenchError("the rollback under load did not go back to the previous release")

    for i in range(1, reps + 1):
        settle()
        run = b.rollback("notes", notes)
        entry = b.last_audit("notes")
        if entry.get("action") != "rollback" or entry.get("result") != "ok":
            raise BenchError(f"rollback {i}: audit says {entry}")
        r.rollback.append(run)
        r.rollback_server_s.append(float(entry["duration_s"]))
        log(f"rollback {i}/{reps}: pyinfra {run.seconds:.2f} s, server {entry['duration_s']} s")


# ---------------------------------------------------------------------------------------------
# Reporting


def machine_facts() -> dict:
    def first_line(path: str, prefix: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    pyinfra_version = subprocess.run(
        [str(PYINFRA), "--version"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    os_name = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    mem_kb = int(first_line("/proc/meminfo", "MemTotal").split()[0])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": first_line("/proc/cpuinfo", "model name"),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "os": os_name,
        "python": platform.python_version(),
        "pyinfra": pyinfra_version.replace("pyinfra: ", ""),
        "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def secs(runs: list[Run]) -> list[float]:
    return [run.seconds for run in runs]


def fmt_s(value: float) -> str:
    return f"{value:.2f} s"


def fmt_bytes(value: float) -> str:
    return f"{value / 1e3:.0f} kB" if value < 1e6 else f"{value / 1e6:.2f} MB"


def yes(ok: bool) -> str:
    return "**yes**" if ok else "**NO**"


def table_rows(r: Results) -> list[tuple[str, str, str, str, str, str]]:
    """(measure, A, B, ratio or value, goal, met)."""
    rows = []
    big = f"{r.setup['big_files']:,}-file app"
    a, e = med(secs(r.noop)), med(secs(r.exec_true))
    rows.append(("1. no-op app_deploy / `exec -- true`", fmt_s(a), fmt_s(e), f"{a / e:.2f}×",
                 "≤ 2×", yes(a / e <= 2)))  # fmt: skip
    if r.noop_big:
        c = med(secs(r.noop_big))
        rows.append((f"1b. no-op app_deploy, {big} / `exec -- true` (info)", fmt_s(c),
                     fmt_s(e), f"{c / e:.2f}×", "-", "-"))  # fmt: skip
    f, w = med(secs(r.first)), med(secs(r.raw))
    rows.append((f"2. first deploy of {big} / raw tar|ssh + reload", fmt_s(f), fmt_s(w),
                 f"{f / w:.2f}×", "≤ 2×", yes(f / w <= 2)))  # fmt: skip
    if r.reload:
        rl = med(secs(r.reload))
        rows.append(("2b. of B: `systemctl reload web2py-uwsgi` alone over ssh (info)", fmt_s(rl),
                     fmt_s(w), f"{100 * rl / w:.0f} %", "-", "-"))  # fmt: skip
    cb, fb = med([x.rx for x in r.change]), med([x.rx for x in r.first])
    rows.append(("3a. one changed file / first deploy: bytes to the server", fmt_bytes(cb),
                 fmt_bytes(fb), f"{100 * cb / fb:.1f} %", "≤ 5 %",
                 yes(cb / fb <= 0.05)))  # fmt: skip
    ct = med(secs(r.change))
    rows.append(("3b. one changed file / first deploy: wall time", fmt_s(ct), fmt_s(f),
                 f"{100 * ct / f:.0f} %", "≤ 50 %", yes(ct / f <= 0.5)))  # fmt: skip
    if r.change_nobackup:
        cn = med(secs(r.change_nobackup))
        rows.append(("3c. one changed file, `backup: false` / first deploy (info)", fmt_s(cn),
                     fmt_s(f), f"{100 * cn / f:.0f} %", "-", "-"))  # fmt: skip
    rp, rs = med(secs(r.rollback)), med(r.rollback_server_s)
    rows.append(("4a. rollback, pyinfra wall time (1 host)", fmt_s(rp), "-", fmt_s(rp), "≤ 3 s",
                 yes(rp <= 3)))  # fmt: skip
    rows.append(("4b. rollback, server-side duration_s (audit log)", fmt_s(rs), "-", fmt_s(rs),
                 "≤ 3 s", yes(rs <= 3)))  # fmt: skip
    for label, d in (("deploy", r.load_deploy), ("rollback", r.load_rollback)):
        rows.append((f"5. failed requests during a {label} ({d['rate']:.0f} req/s)",
                     f"{d['failed']} failed", f"{d['sent']} sent", str(d["failed"]), "0",
                     yes(d["failed"] == 0)))  # fmt: skip
    return rows


def markdown_table(rows) -> str:
    head = "| measure | A | B | A/B or value | goal | met |\n|---|---|---|---|---|---|\n"
    return head + "".join("| " + " | ".join(row) + " |\n" for row in rows)


def plain_table(rows) -> str:
    header = ("measure", "A", "B", "A/B|value", "goal", "met")
    rows = [header, *[tuple(c.replace("**", "").replace("`", "") for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def samples(runs: list[Run], with_bytes: bool = False) -> str:
    if with_bytes:
        return ", ".join(f"{x.seconds:.2f} s / {fmt_bytes(x.rx)}" for x in runs)
    return ", ".join(f"{x.seconds:.2f}" for x in runs) + " s"


def report(r: Results, args: argparse.Namespace) -> str:
    facts = r.facts
    s = r.setup
    ld, lr = r.load_deploy, r.load_rollback
    pairs = [f"{a.seconds / b.seconds:.2f}×" for a, b in zip(r.first, r.raw, strict=False)]
    lines = [
        f"Run {facts['date']} by `bench/run`"
        + (f" ({' '.join(args.argv)})" if args.argv else "")
        + ".",
        "",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} RAM, kernel "
        f"{facts['kernel']}, {facts['os']}, Python {facts['python']}, pyinfra {facts['pyinfra']}; "
        f"load average {facts['loadavg_start']} at the start, {facts['loadavg_end']} at the end "
        f"({facts['other_servers']} other sandbox servers running). Target: one sandbox server "
        "(systemd-nspawn container on the same machine, real SSH), the web2py test stand-in.",
        "",
        "Medians. A and B of each row ran alternately in the same run; the ratio is what counts, "
        "absolute times depend on what else the machine was doing.",
        "",
        markdown_table(table_rows(r)),
        "Samples:",
        "",
        f"- no-op `app_deploy` of notes: {samples(r.noop)}; `exec -- true`: {samples(r.exec_true)}",
    ]
    if r.noop_big:
        lines.append(f"- no-op `app_deploy` of the generated app: {samples(r.noop_big)}")
    lines += [
        f"- generated app: {s['big_files']} files ({s['big_added_bytes'] / 1e3:.0f} kB of "
        f"generated text), package (tar.gz) {fmt_bytes(s['big_package_bytes'])}",
        f"- first deploy (time / bytes received by the server): {samples(r.first, True)}; "
        f"server-side duration_s {', '.join(f'{x:.2f}' for x in r.first_server_s)}",
        f"- raw tar|ssh + reload: {samples(r.raw, True)}; ratios per pair {', '.join(pairs)}",
        f"- one changed file: {samples(r.change, True)}; server-side duration_s "
        f"{', '.join(f'{x:.2f}' for x in r.change_server_s)}",
        f"- one changed file, `backup: false`: {samples(r.change_nobackup, True)}; server-side "
        f"duration_s {', '.join(f'{x:.2f}' for x in r.change_nobackup_server_s)}",
        f"- `systemctl reload web2py-uwsgi` alone over ssh: {samples(r.reload)}",
        f"- rollback: pyinfra {samples(r.rollback)}; server-side duration_s "
        f"{', '.join(f'{x:.2f}' for x in r.rollback_server_s)}; under load: pyinfra "
        f"{lr['run'].seconds:.2f} s, server {lr['server_s']:.2f} s",
        f"- load during the deploy (deploy from {ld['action_start_s']:.0f} s to "
        f"{ld['action_end_s']:.1f} s, pyinfra {ld['run'].seconds:.2f} s): {ld['summary']}",
        f"- load during the rollback (from {lr['action_start_s']:.0f} s to "
        f"{lr['action_end_s']:.1f} s): {lr['summary']}",
        f"- setup (not compared): sandbox up {s['up_s']:.1f} s, install_web2py "
        f"{s['install_s']:.1f} s, first app_deploy of notes (adoption) {s['adopt_s']:.1f} s",
    ]
    return "\n".join(lines) + "\n"


def write_results(text: str) -> None:
    block = f"{BEGIN}\n{text}{END}\n"
    if RESULTS.exists():
        old = RESULTS.read_text()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            RESULTS.write_text(head + block + ("\n" + tail if tail else ""))
            return
    RESULTS.write_text("# Benchmark results\n\nWritten by `bench/run` (see README.md).\n\n" + block)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument("--prefix", default="w2pb", help="sandbox server prefix (default w2pb)")
    p.add_argument("--reps", type=int, default=5, help="no-op / exec rounds (default 5)")
    p.add_argument("--big-reps", type=int, default=5, help="2,000-file app rounds (default 5)")
    p.add_argument("--files", type=int, default=2000, help="generated files (default 2000)")
    p.add_argument("--rollbacks", type=int, default=5, help="rollbacks without load (default 5)")
    p.add_argument("--rate", type=float, default=120.0, help="req/s during deploy (default 120)")
    p.add_argument("--load-seconds", type=float, default=30.0, help="min load time (default 30)")
    p.add_argument("--no-big-noop", action="store_true", help="skip the big app's no-op runs")
    p.add_argument("--keep", action="store_true", help="leave the server running afterwards")
    p.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    args = p.parse_args(argv)
    args.argv = argv
    if args.prefix in ("w2p", "w2pd", "w2pt", "w2pm"):
        p.error(f"--prefix {args.prefix}: used by others; pick your own")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    r = Results()
    r.facts = machine_facts()
    r.facts["other_servers"] = len(_other_servers(args.prefix))
    log(f"stand-in web2py zip -> {WEB2PY_ZIP.relative_to(ROOT)}")
    subprocess.run(
        [str(PYTHON), "-m", "web2py_standin", "build", str(WEB2PY_ZIP)],
        cwd=ROOT, check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    tag = secrets.token_hex(2)
    server = None
    with tempfile.TemporaryDirectory(prefix="w2pb-") as tmp:
        work = Path(tmp)
        try:
            log(f"sandbox up 1 --prefix {args.prefix}")
            started = time.monotonic()
            server = boot(args.prefix)
            r.setup["up_s"] = time.monotonic() - started
            b = Bench(server, "adm-" + secrets.token_urlsafe(18))
            log(f"{server.name} at {server.address}: install_web2py")
            run = b.pyinfra(
                "deploys/install_web2py.py", env={"WEB2PY_ADMIN_PASSWORD": b.admin_password},
                timeout=PROVISION_TIMEOUT,
            )  # fmt: skip
            r.setup["install_s"] = run.seconds
            log(f"  {run.seconds:.1f} s")

            notes_dir = work / "notes"
            shutil.copytree(NOTES, notes_dir)
            notes = {"notes": app_settings(notes_dir, "notes")}
            log("first app_deploy of notes (adopts the installed app)")
            r.setup["adopt_s"] = b.deploy(notes).seconds

            names = measure_big(b, r, work, args.big_reps, args.files, tag)
            big = None
            if not args.no_big_noop:
                big = {names[0]: app_settings(work / names[0], names[0])}
            measure_noop(b, r, notes, big, args.reps)
            measure_load_and_rollback(b, r, notes_dir, args.rate, args.load_seconds, args.rollbacks)
        finally:
            if server is not None and not args.keep:
                log(f"sandbox down {server.name}")
                sandbox("down", server.name, timeout=300)
    r.facts["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    rows = table_rows(r)
    print()
    print(plain_table(rows))
    print()
    text = report(r, args)
    if not args.no_write:
        write_results(text)
        log(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


def _other_servers(prefix: str) -> list[str]:
    try:
        servers = sandbox_state().get("servers", [])
    except (BenchError, ValueError, subprocess.TimeoutExpired):
        return []
    return [s["name"] for s in servers if not s["name"].startswith(f"{prefix}-")]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
