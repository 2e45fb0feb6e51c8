"""Fan-out: app_deploy of the example app to 20 sandbox servers against 1, side by side.

    .venv/bin/python -m bench.fanout             # boots w2pf-1..20 (own network), ~15 min
    .venv/bin/python -m bench.fanout --servers 8 --reps 1

Printed per run: wall time, the controller's own CPU seconds and peak memory (the pyinfra
process, from its rusage), and the servers' CPU (each sandbox server has its own cgroup: the
growth of its cpu.stat usage_usec). The servers share this machine's cores, so the floor of a
fan-out is the servers' CPU divided by the cores; the ratio wall / floor says how close to it
the controller gets. Runs alternate 1, N, 1, N with a new version each time (each deploys).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.cgroups import server_cgroups

ROOT = Path(__file__).resolve().parents[1]
PYINFRA = ROOT / ".venv" / "bin" / "pyinfra"
SANDBOX = ROOT / "bin" / "sandbox"
PREFIX = "w2pf"
NETWORK = {  # its own sandbox network: never the tests' default one
    "W2P_SANDBOX_BRIDGE": "w2pfan0",
    "W2P_SANDBOX_SUBNET": "10.213.70.0/24",
    "W2P_SANDBOX_PROXY_PORT": "3212",
    "W2P_SANDBOX_DIR": str(ROOT / ".sandbox-fanout"),
}
ENV = {**os.environ, **NETWORK}


def sandbox(*args: str, timeout: float = 900) -> str:
    return subprocess.run(
        [str(SANDBOX), *args], cwd=ROOT, env=ENV, check=True, timeout=timeout, text=True,
        capture_output=True, stdin=subprocess.DEVNULL,
    ).stdout  # fmt: skip


def server_cpu_usec(names: list[str]) -> int:
    """The servers' CPU time so far (cgroup v2 cpu.stat usage_usec, summed)."""
    total = 0
    for name in names:
        for directory in server_cgroups(NETWORK["W2P_SANDBOX_BRIDGE"], name):
            stat = directory / "cpu.stat"
            if stat.is_file():
                for line in stat.read_text().splitlines():
                    if line.startswith("usage_usec "):
                        total += int(line.split()[1])
    return total


def pyinfra(deploy: str, names: list[str], data: dict[str, str], env: dict | None = None) -> dict:
    """One pyinfra run: wall, controller CPU and peak memory, servers' CPU."""
    args = [str(PYINFRA), "-y", "inventories/sandbox.py", deploy]
    for key, value in data.items():
        args += ["--data", f"{key}={value}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = server_cpu_usec(names)
    started = time.monotonic()
    out = subprocess.run(
        args, cwd=ROOT, env={**ENV, **(env or {}), "W2P_SANDBOX_HOSTS": ",".join(names)},
        capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"bench.fanout: {deploy} on {len(names)} failed:\n{out.stdout[-3000:]}")
    return {
        "hosts": len(names),
        "wall": wall,
        "controller_cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "controller_peak_mb": after.ru_maxrss / 1024,  # the largest child so far
        "server_cpu": (server_cpu_usec(names) - cpu0) / 1e6,
    }


def set_version(app_dir: Path, version: str) -> None:
    util = app_dir / "modules" / "notes_util.py"
    text = util.read_text()
    start = text.index("VERSION = '") + len("VERSION = '")
    util.write_text(text[:start] + version + text[text.index("'", start) :])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=int, default=20)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="leave the servers running")
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    names = [f"{PREFIX}-{i}" for i in range(1, args.servers + 1)]
    sandbox("up", str(args.servers), "--prefix", PREFIX)
    try:
        with tempfile.TemporaryDirectory() as work:
            zip_path = ROOT / "build" / "web2py_src.zip"
            if not zip_path.is_file():
                build = [sys.executable, "-m", "web2py_standin", "build", "--framework", "gluon"]
                subprocess.run([*build, str(zip_path)], cwd=ROOT, check=True, timeout=600)
            env = {"WEB2PY_SRC_ZIP": str(zip_path), "WEB2PY_ADMIN_PASSWORD": "bench-" + "x" * 16}
            pyinfra("deploys/install_web2py.py", names, {}, env)
            app = Path(work) / "notes"
            shutil.copytree(ROOT / "examples" / "apps" / "notes", app)
            notes = {"path": str(app), "health_path": "/notes/default/health",
                     "health_text": "ok notes"}  # fmt: skip
            data = {"deploy_apps": json.dumps({"notes": notes})}
            set_version(app, "0.1")
            pyinfra("deploys/app_deploy.py", names, data)  # every server has a release
            rows: dict[int, list[dict]] = {1: [], args.servers: []}
            for rep in range(args.reps):
                for count in (1, args.servers):
                    set_version(app, f"1.{rep}.{count}")
                    rows[count].append(pyinfra("deploys/app_deploy.py", names[:count], data))
    finally:
        if not args.keep:
            sandbox("down", *names)
    one = {k: statistics.median(r[k] for r in rows[1]) for k in rows[1][0]}
    many = {k: statistics.median(r[k] for r in rows[args.servers]) for k in rows[1][0]}
    floor = many["server_cpu"] / cores
    print(f"| servers | wall s | controller CPU s | controller peak MB | servers' CPU s | "
          f"floor s (CPU/{cores} cores) | wall / floor |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in (one, many):
        row_floor = row["server_cpu"] / cores
        print(f"| {row['hosts']:.0f} | {row['wall']:.1f} | {row['controller_cpu']:.2f} | "
              f"{row['controller_peak_mb']:.0f} | {row['server_cpu']:.1f} | {row_floor:.1f} | "
              f"{row['wall'] / row_floor:.2f} |")  # fmt: skip
    extra = (many["controller_cpu"] - one["controller_cpu"]) / (args.servers - 1)
    print(f"\ncontroller CPU per extra host: {extra:.3f} s = "
          f"{100 * extra / one['controller_cpu']:.1f} % of a one-host run (goal ≤ 5 %); "
          f"server CPU per deploy: {many['server_cpu'] / args.servers:.2f} s (goal ≤ 1.5 s); "
          f"wall / floor at {args.servers}: {many['wall'] / floor:.2f} (goal ≤ 1.2)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
