"""The controller-scale benchmark runs (a few stand-in hosts) and its table says what it met."""

import json
import subprocess
import sys

from bench.scale import ROOT, table


def test_a_few_stand_in_hosts_deploy_in_rollout_order():
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--hosts", "3", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["hosts"] == 3 and result["exit"] == 0 and result["peak_bytes"] > 0
    # every stand-in host went through its batch: the fleet summary names each one updated
    assert (out.stdout + out.stderr).count(" updated: notes") == 3


def test_table_reports_growth_and_the_goal():
    rows = [
        {"hosts": 1, "seconds": 0.5, "peak_bytes": 50 << 20, "exit": 0},
        {"hosts": 1000, "seconds": 70.0, "peak_bytes": 150 << 20, "exit": 0},
    ]
    text = table(rows)
    assert "| 1000 | 70.0 | 0.070 | 150 MB | 0.10 | 0 |" in text
    assert "NOT met" in text
