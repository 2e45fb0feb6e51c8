"""Controller scale: plan and run deploys/app_deploy.py for many hosts, the network and the
servers replaced by an instant stand-in, to measure the controller's own cost per host.

    .venv/bin/python -m bench.scale                  # 1, 200 and 1,000 hosts: a table
    .venv/bin/python -m bench.scale --hosts 200      # one count (a child process: its peak memory)

The stand-in (a pyinfra connector for the benchmark only, ``@benchfake/NAME``) answers every
command at once with success and no output, and takes every upload: facts come back empty, so
each host plans a first deploy of the example app, and the run executes it against nothing.
What is left is the controller: pyinfra's planning, our settings, the package built once, the
per-host diff and operations, the roll-out bookkeeping. Nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNTS = (1, 200, 1000)
GOAL_SECONDS, GOAL_BYTES = 60.0, 2 << 30  # 1,000 hosts planned in ≤ 60 s and ≤ 2 GiB


def _fake_connector():
    """A pyinfra connector whose commands all succeed at once, with no output."""
    from pyinfra.connectors.base import BaseConnector
    from pyinfra.connectors.util import CommandOutput

    class BenchFakeConnector(BaseConnector):
        handles_execution = True

        @staticmethod
        def make_names_data(name: str | None = None) -> Iterator[tuple[str, dict, list[str]]]:
            yield f"@benchfake/{name}", {}, []

        def run_shell_command(self, command, print_output=False, print_input=False, **kwargs):
            return True, CommandOutput([])

        def put_file(self, filename_or_io, remote_filename, remote_temp_filename=None,
                     print_output=False, print_input=False, **kwargs):  # fmt: skip
            return True

        def get_file(self, remote_filename, filename_or_io, remote_temp_filename=None,
                     print_output=False, print_input=False, **kwargs):  # fmt: skip
            return True

    return BenchFakeConnector


def run_one(hosts: int) -> dict:
    """Run pyinfra in this process for ``hosts`` stand-in hosts; its seconds and peak memory."""
    import pyinfra.api.connectors as connectors
    import pyinfra.api.inventory as inventory_module

    fake = _fake_connector()
    real = connectors.get_all_connectors
    connectors.get_all_connectors = lambda: {**real(), "benchfake": fake}
    # the inventory module holds its own references to both lookups
    inventory_module.get_all_connectors = connectors.get_all_connectors
    inventory_module.get_execution_connectors = connectors.get_execution_connectors
    with tempfile.TemporaryDirectory() as work:
        inventory = Path(work) / "fleet.py"
        names = [f"@benchfake/web{i:04d}" for i in range(hosts)]
        inventory.write_text(f"fleet = {names!r}\n")
        app = {"notes": {"path": str(ROOT / "examples" / "apps" / "notes")}}
        argv = [
            "pyinfra", "-y", str(inventory), "deploys/app_deploy.py",
            "--data", f"deploy_apps={json.dumps(app)}",
            "--data", 'rollout_batches=[1, "25%", "100%"]',
        ]  # fmt: skip
        os.chdir(ROOT)
        sys.argv = argv
        from pyinfra_cli.main import main as pyinfra_main  # sets pyinfra.is_cli, as `pyinfra`

        started = time.monotonic()
        try:
            pyinfra_main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code or 0
        seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"hosts": hosts, "seconds": round(seconds, 2), "peak_bytes": peak, "exit": code}


def measure(counts: tuple[int, ...]) -> list[dict]:
    """Each count in a fresh child process (its own peak memory), one after another."""
    rows = []
    for n in counts:
        out = subprocess.run(
            [sys.executable, "-m", "bench.scale", "--hosts", str(n), "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"bench.scale: {n} hosts failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def table(rows: list[dict]) -> str:
    """The figures, with per-host growth against the smallest count."""
    base = rows[0]
    lines = [
        "| hosts | seconds | s/host over 1 host | peak memory | MB/host over 1 host | exit |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        extra = max(r["hosts"] - base["hosts"], 1)
        lines.append(
            f"| {r['hosts']} | {r['seconds']:.1f} | "
            f"{(r['seconds'] - base['seconds']) / extra:.3f} | {r['peak_bytes'] / 2**20:.0f} MB | "
            f"{(r['peak_bytes'] - base['peak_bytes']) / extra / 2**20:.2f} | {r['exit']} |"
        )
    big = rows[-1]
    met = big["seconds"] <= GOAL_SECONDS and big["peak_bytes"] <= GOAL_BYTES
    lines.append(
        f"\nGoal: {big['hosts']} hosts in ≤ {GOAL_SECONDS:.0f} s and ≤ 2 GiB: "
        f"{'met' if met else 'NOT met'}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, help="one count, in this process")
    p.add_argument("--json", action="store_true", help="print the one count's figures as JSON")
    args = p.parse_args(argv)
    if args.hosts:
        result = run_one(args.hosts)
        print(json.dumps(result) if args.json else result)
        return 0 if result["exit"] == 0 else 1
    print(table(measure(COUNTS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
