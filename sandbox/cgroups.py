"""A cgroup of its own for each server.

systemd-nspawn with ``--keep-unit --register=no`` (no systemd on the host to ask for a scope)
puts the container under the caller's own cgroup, in ``<own>/payload``. Servers booted by one
caller therefore shared one cgroup tree: every container's ``system.slice/nginx.service`` was the
same directory. Stopping nginx on one server read the other servers' nginx processes there as pid
0 ("Failed to kill control group …: Input/output error") and a start right after could fail
with ``status=219/CGROUP``; worse, a SIGKILL through ``cgroup.kill`` would reach the other
servers. So each nspawn is started inside ``<own>/w2p-sandbox/<bridge>/<server>`` in every
hierarchy it uses: the cgroup v2 one and, on a hybrid host, the v1 ``name=systemd`` one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PARENT = "w2p-sandbox"


def hierarchies(proc_cgroup: str, mountinfo: str) -> list[tuple[Path, str]]:
    """(mount point, our path inside that mount) for the v2 hierarchy and v1 name=systemd,
    from the texts of /proc/self/cgroup and /proc/self/mountinfo; those not mounted are left
    out."""
    own: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            own["cgroup2"] = path
        elif "name=systemd" in controllers.split(","):
            own["name=systemd"] = path
    found: list[tuple[Path, str]] = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, (fstype, _source, options) = before.split(), after.split()[:3]
        root, point = fields[3], fields[4].encode().decode("unicode_escape")
        key = fstype if fstype == "cgroup2" else None
        if fstype == "cgroup" and "name=systemd" in options.split(","):
            key = "name=systemd"
        if key not in own:
            continue
        path = own.pop(key)
        if root != "/" and (path == root or path.startswith(root + "/")):
            path = path[len(root) :]  # a mount of a subtree shows paths from its root
        found.append((Path(point), path))
    return found


def sandbox_cgroups(sandbox: str) -> list[Path]:
    """The directories that hold one sandbox's servers, one per hierarchy; ``sandbox`` (its
    bridge) keeps two sandboxes with the same server names apart."""
    found = hierarchies(
        Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )
    return [point / path.strip("/") / PARENT / sandbox for point, path in found]


def server_cgroups(sandbox: str, name: str) -> list[Path]:
    """The directories of this server's cgroup, one per hierarchy."""
    return [directory / name for directory in sandbox_cgroups(sandbox)]


def create(directories: list[Path]) -> None:
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)


# Run by sh right before it execs nspawn (so nspawn starts inside, and its pid stays the one
# recorded); no preexec_fn: servers boot from several threads at once.
JOIN_THEN_EXEC = (
    'for d in $W2P_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 125; done; exec "$@"'
)


def wrap(argv: list[str], directories: list[Path]) -> tuple[list[str], dict[str, str]]:
    """argv and environment that start argv inside the given cgroups."""
    return ["sh", "-c", JOIN_THEN_EXEC, "sh", *argv], {
        "W2P_CGROUPS": " ".join(str(d) for d in directories)
    }


def remove(directories: list[Path]) -> list[Path]:
    """Remove the cgroups bottom-up once nothing runs in them; returns those still busy."""
    busy = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for sub, _dirs, _files in sorted(os.walk(directory), key=lambda w: -len(w[0])):
            try:
                os.rmdir(sub)  # a cgroup directory goes with its pseudo-files, if empty
            except OSError:
                busy.append(Path(sub))
        with contextlib.suppress(OSError):  # the sandbox's and PARENT, once empty
            directory.parent.rmdir()
            directory.parent.parent.rmdir()
    return busy
