# Data for the sandbox group (inventories/sandbox.py): throwaway servers on this machine.
import os

# The test stand-in web2py (bin/demo builds it); a real web2py_src.zip when WEB2PY_SRC_ZIP is set.
web2py_source = os.environ.get("WEB2PY_SRC_ZIP") or "build/web2py_src.zip"
web2py_apps = {"notes": "examples/apps/notes"}
deploy_apps = {
    "notes": {
        "path": "examples/apps/notes",
        "health_path": "/notes/default/health",
        "health_text": "ok notes",
    },
}
