"""Drive the stand-in's ``wsgihandler.application`` in a child process.

Importing wsgihandler changes the process (chdir, sys.path, an import hook),
exactly like uWSGI's ``chdir=<web2py root>`` + ``module=wsgihandler:application``,
so tests run it in a separate Python process and talk JSON lines to it::

    with StandinProcess(web2py_root) as web:
        r = web.get("/welcome/default/index")
        assert r.status == 200 and "Welcome to web2py" in r.text

The handler must have been copied to the root (``<root>/wsgihandler.py``),
as installers do. The server half of this file uses only the standard library.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

__all__ = ["StandinProcess", "Response"]


@dataclass
class Response:
    status: int
    reason: str
    header_list: list[tuple[str, str]]
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headers = {k.lower(): v for k, v in self.header_list}

    @property
    def text(self) -> str:
        return self.body.decode("utf8", "replace")

    def json(self):
        return json.loads(self.body)

    @property
    def set_cookies(self) -> list[str]:
        return [v for k, v in self.header_list if k.lower() == "set-cookie"]


class StandinProcess:
    """A child Python process serving WSGI requests from ``<root>/wsgihandler.py``."""

    def __init__(
        self, root: Path | str, python: str = sys.executable, python_args: tuple[str, ...] = ()
    ) -> None:
        self.root = Path(root)
        self.cookies: dict[str, str] = {}
        self.proc = subprocess.Popen(
            [python, *python_args, str(Path(__file__).resolve()), str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def __enter__(self) -> StandinProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)

    def _call(self, message: dict) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"stand-in process died (exit code {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def meta(self) -> dict:
        return self._call({"cmd": "meta"})

    def request(
        self,
        path: str,
        method: str = "GET",
        data: dict | bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        https: bool = False,
        remote_addr: str = "127.0.0.1",
        server_port: int | None = None,
        environ: dict | None = None,
        use_cookies: bool = True,
    ) -> Response:
        parts = urlsplit(path)
        body = b""
        if isinstance(data, dict):
            body = urlencode(data, doseq=True).encode()
            content_type = content_type or "application/x-www-form-urlencoded"
        elif data is not None:
            body = data
        port = server_port or (443 if https else 80)
        env = {
            "REQUEST_METHOD": method,
            "PATH_INFO": parts.path or "/",
            "QUERY_STRING": parts.query,
            "SERVER_NAME": "localhost",
            "SERVER_PORT": str(port),
            "HTTP_HOST": "localhost",
            "REMOTE_ADDR": remote_addr,
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "https" if https else "http",
            "CONTENT_LENGTH": str(len(body)),
        }
        if https:
            env["HTTPS"] = "on"
        if content_type:
            env["CONTENT_TYPE"] = content_type
        if use_cookies and self.cookies:
            env["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for key, value in (headers or {}).items():
            env["HTTP_" + key.upper().replace("-", "_")] = value
        env.update(environ or {})
        reply = self._call({"environ": env, "body": base64.b64encode(body).decode()})
        response = Response(
            reply["status"],
            reply["reason"],
            [tuple(h) for h in reply["headers"]],
            base64.b64decode(reply["body"]),
        )
        if use_cookies:
            for raw in response.set_cookies:
                jar = SimpleCookie()
                jar.load(raw)
                for name, morsel in jar.items():
                    self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **kw) -> Response:
        return self.request(path, "GET", **kw)

    def post(self, path: str, data: dict | bytes | None = None, **kw) -> Response:
        return self.request(path, "POST", data=data, **kw)


def serve(root: str) -> None:  # runs in the child process
    out = sys.stdout
    sys.stdout = sys.stderr  # app code that prints must not corrupt the protocol
    sys.path.insert(0, root)
    import wsgihandler  # noqa: F401  (chdir + sys.path + gluon import, as under uWSGI)

    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message.get("cmd") == "meta":
                import os

                import pydal

                reply = {"pydal": pydal.__file__, "cwd": os.getcwd(), "sys_path0": sys.path[0]}
            else:
                reply = _handle(wsgihandler.application, message)
        except Exception as e:  # report driver failures to the parent
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def _handle(application, message: dict) -> dict:
    environ = dict(message["environ"])
    body = base64.b64decode(message["body"])
    environ.update(
        {
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
    )
    started: dict = {}

    def start_response(status, headers, exc_info=None):
        started["status"], started["headers"] = status, headers

    chunks = application(environ, start_response)
    data = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    code, _, reason = started["status"].partition(" ")
    return {
        "status": int(code),
        "reason": reason,
        "headers": started["headers"],
        "body": base64.b64encode(data).decode(),
    }


if __name__ == "__main__":
    serve(sys.argv[1])


def install_zip(zip_path: Path, dest: Path) -> Path:
    """Unpack a web2py source zip into ``dest`` as the deploys install it (the handler copied
    next to ``applications/``) and return the web2py root."""
    import shutil
    import zipfile

    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    root = Path(dest) / "web2py"
    shutil.copy(root / "handlers" / "wsgihandler.py", root / "wsgihandler.py")
    return root


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process a test started (by its PID only): TERM, then KILL, bounded."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
