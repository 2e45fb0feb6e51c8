# Sandbox servers on this machine (bin/sandbox up N): read from the sandbox state, so the group
# "sandbox" (this file's name) is whatever is running. group_data/sandbox.py applies to it.
#   W2P_SANDBOX_HOSTS=w2p-1,w2p-2   only these servers
#   W2P_SANDBOX_DIR=/path           another state dir (default: <repo>/.sandbox)
import json as _json
import os as _os
from pathlib import Path as _Path

_state_dir = _Path(
    _os.environ.get("W2P_SANDBOX_DIR") or _Path(__file__).resolve().parents[1] / ".sandbox"
)
_state_file = _state_dir / "state.json"
if not _state_file.is_file():
    raise RuntimeError(f"no sandbox state at {_state_file}: run `bin/sandbox up 1` first")
_servers = [
    s for s in _json.loads(_state_file.read_text())["servers"] if s.get("state") == "running"
]
if not _servers:
    raise RuntimeError(f"no sandbox server is running ({_state_file}): run `bin/sandbox up 1`")

_wanted = [n.strip() for n in _os.environ.get("W2P_SANDBOX_HOSTS", "").split(",") if n.strip()]
_unknown = sorted(set(_wanted) - {s["name"] for s in _servers})
if _unknown:
    raise RuntimeError(f"W2P_SANDBOX_HOSTS: no running sandbox server {', '.join(_unknown)}")

sandbox = [
    (
        s["name"],
        {
            "ssh_hostname": s["address"],
            "ssh_user": s["ssh_user"],
            "ssh_key": s["ssh_key"],
            "ssh_known_hosts_file": s["known_hosts"],
            "ssh_strict_host_key_checking": "yes",
            "_sudo": True,
            "sandbox_name": s["name"],
            "sandbox_release": s.get("release", "bookworm"),
        },
    )
    for s in _servers
    if not _wanted or s["name"] in _wanted
]
