"""50 deploy / rollback / restore cycles while the app keeps writing rows and uploads: none lost.

Runs last (file name) on the plain-install server: it adopts the installed app into releases.
Restore with data is excluded by design (it puts back old data on purpose).
"""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
import uuid

import pytest

from .sandboxlib import ROOT, http_get, pyinfra
from .test_app_deploy import apps_data, set_version

CYCLES = 50


class Writer(threading.Thread):
    """Adds a note with an upload every ``interval`` seconds through nginx; records the titles
    the app confirmed (303 after the POST)."""

    def __init__(self, address: str, interval: float = 0.25):
        super().__init__(daemon=True)
        self.address, self.interval = address, interval
        self.confirmed: list[str] = []
        self.failed: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            title = f"row-{uuid.uuid4().hex[:12]}"
            try:
                if self.write(title):
                    self.confirmed.append(title)
                else:
                    self.failed.append(title)
            except OSError as error:
                self.failed.append(f"{title}: {error}")

    def write(self, title: str) -> bool:
        status, headers, body = http_get(self.address, "/notes/default/index")
        if status != 200:
            return False
        cookie = headers["set-cookie"].split(";")[0]
        formkey = body.split(b'name="_formkey" value="')[1].split(b'"')[0].decode()
        boundary = uuid.uuid4().hex
        parts = [
            ("title", None, title.encode()),
            ("body", None, b"written during the cycles"),
            ("_formkey", None, formkey.encode()),
            ("attachment", f"{title}.txt", f"upload of {title}".encode()),
        ]
        payload = b""
        for name, filename, value in parts:
            disposition = f'form-data; name="{name}"' + (
                f'; filename="{filename}"' if filename else ""
            )
            payload += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            payload += value + b"\r\n"
        payload += f"--{boundary}--\r\n".encode()
        conn = http.client.HTTPConnection(self.address, 80, timeout=10)
        try:
            conn.request(
                "POST", "/notes/default/index", body=payload,
                headers={"Cookie": cookie,
                         "Content-Type": f"multipart/form-data; boundary={boundary}"},
            )  # fmt: skip
            return conn.getresponse().status == 303
        finally:
            conn.close()


@pytest.fixture(scope="module")
def cycling_app(tmp_path_factory, installed):
    app_dir = tmp_path_factory.mktemp("cycles") / "notes"
    shutil.copytree(ROOT / "examples" / "apps" / "notes", app_dir)
    return app_dir, installed["hosts"][0]


def test_cycles_lose_no_rows_and_no_uploads(cycling_app):
    app_dir, server = cycling_app
    data = apps_data(app_dir, keep_releases=3, keep_backups=3)
    assert pyinfra("deploys/app_deploy.py", [server], data=data).returncode == 0
    writer = Writer(server.address)
    writer.start()
    started = time.monotonic()
    try:
        for cycle in range(CYCLES):
            set_version(app_dir, f"2.{cycle}.0")  # never the original 1.0.0
            run = pyinfra("deploys/app_deploy.py", [server], data=data, timeout=300)
            assert run.returncode == 0, f"cycle {cycle} deploy: {run.output[-2000:]}"
            action = ("rollback", "restore")[cycle % 2]
            if action == "rollback":
                run = pyinfra(
                    "deploys/rollback.py", [server], data={"rollback_app": "notes", **data},
                    timeout=300,
                )  # fmt: skip
            else:
                run = pyinfra(
                    "deploys/restore.py", [server],
                    data={"restore_app": "notes", "restore_backup": "latest", **data}, timeout=300,
                )  # fmt: skip
            assert run.returncode == 0, f"cycle {cycle} {action}: {run.output[-2000:]}"
    finally:
        writer.stop.set()
        writer.join(30)
    elapsed = time.monotonic() - started
    status, _, body = http_get(server.address, "/notes/default/api.json")
    assert status == 200
    stored = {note["title"]: note for note in json.loads(body)["notes"]}
    lost = [title for title in writer.confirmed if title not in stored]
    assert len(writer.confirmed) > CYCLES * 4, (len(writer.confirmed), elapsed)
    assert lost == [], f"{len(lost)} confirmed rows lost"
    assert all(stored[title]["has_attachment"] for title in writer.confirmed)
    # What this test guards is loss: every write the app confirmed must still be there. A write
    # that timed out was never confirmed, so it cannot be lost; availability during a deploy is
    # asserted strictly (0 failed) by the open-loop tests in test_app_deploy.py. One write in
    # ~1,300 was seen timing out here (10 s) across 150 switches: reported, kept visible, bounded.
    print(f"writes confirmed {len(writer.confirmed)}, failed {len(writer.failed)}: {writer.failed}")
    assert len(writer.failed) <= len(writer.confirmed) // 100, writer.failed[:5]
    uploads = server.run(
        "ls /srv/web2py-apps/notes/shared/uploads/ | wc -l && "
        "find /srv/web2py-apps/notes/shared/uploads -type f | wc -l"
    ).split()
    assert int(uploads[-1]) >= len(writer.confirmed)
    print(f"{CYCLES} cycles in {elapsed:.0f} s: {len(writer.confirmed)} rows and uploads, 0 lost")
