import subprocess
from pathlib import Path

from sandbox import cgroups

HYBRID_CGROUP = "9:name=systemd:/\n4:memory:/process_api/6f6b\n1:cpu:/\n0::/\n"
HYBRID_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_a_hybrid_host_gives_the_v2_and_the_name_systemd_hierarchies():
    found = cgroups.hierarchies(HYBRID_CGROUP, HYBRID_MOUNTS)
    assert sorted(found) == [
        (Path("/sys/fs/cgroup/systemd"), "/"),
        (Path("/sys/fs/cgroup/unified"), "/"),
    ]


def test_a_unified_host_gives_our_own_cgroup_under_its_mount():
    found = cgroups.hierarchies(
        "0::/user.slice/user-0.slice/session-3.scope\n",
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
    )
    assert found == [(Path("/sys/fs/cgroup"), "/user.slice/user-0.slice/session-3.scope")]


def test_a_mounted_subtree_is_read_from_its_root():
    found = cgroups.hierarchies(
        "0::/machine/ci\n", "30 23 0:26 /machine /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    )
    assert found == [(Path("/sys/fs/cgroup"), "/ci")]


def test_each_server_is_started_inside_its_own_cgroups(tmp_path):
    directories = [
        tmp_path / "unified" / "w2p-sandbox" / "w2p-1",
        tmp_path / "systemd" / "w2p-sandbox" / "w2p-1",
    ]
    cgroups.create(directories)
    argv, env = cgroups.wrap(["sh", "-c", "echo started $$"], directories)
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10, check=True)
    pid = out.stdout.split()[1]
    assert out.stdout == f"started {pid}\n"  # exec: the pid that joined is the command's
    assert [(d / "cgroup.procs").read_text() for d in directories] == [f"{pid}\n", f"{pid}\n"]


def test_a_cgroup_that_cannot_be_joined_stops_the_boot(tmp_path):
    argv, env = cgroups.wrap(["sh", "-c", "echo started"], [tmp_path / "missing"])
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)
    assert out.returncode == 125 and "started" not in out.stdout


def test_remove_goes_bottom_up_and_reports_what_is_busy(tmp_path):
    mine = tmp_path / "w2p-sandbox" / "w2p-1"
    (mine / "payload" / "system.slice" / "nginx.service").mkdir(parents=True)
    (mine / "supervisor").mkdir()
    assert cgroups.remove([mine, tmp_path / "gone"]) == []
    assert not mine.exists()

    (mine / "payload").mkdir(parents=True)
    (mine / "payload" / "busy").write_text("")  # stands for a cgroup with a process
    assert cgroups.remove([mine]) == [mine / "payload", mine]
