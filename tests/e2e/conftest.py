"""End-to-end fixtures: real sandbox servers, real pyinfra over SSH.

These tests never skip silently: if the machine cannot run them they fail, unless the user
explicitly sets W2P_SKIP_E2E=1 (never set in CI).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from .sandboxlib import ROOT, Server, e2e_prerequisites, pyinfra, sandbox_down, sandbox_up

PREFIX = "w2pt"
SERVER_COUNT = 3


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def web2py_zip() -> str:
    """A real web2py_src.zip when WEB2PY_SRC_ZIP is set, else a test distribution built fresh:
    web2py's real framework from PyPI (gluon 2.26.1, pydal, yatl; W2P_TEST_FRAMEWORK=gluon, the
    default) or the hand-written stand-in (W2P_TEST_FRAMEWORK=standin: for Python 3.12+, where
    gluon 2.26.1 does not run)."""
    given = os.environ.get("WEB2PY_SRC_ZIP")
    if given:
        return given
    framework = os.environ.get("W2P_TEST_FRAMEWORK") or "gluon"
    out = ROOT / "build" / "web2py_src.zip"
    subprocess.run(
        [sys.executable, "-m", "web2py_standin", "build", "--framework", framework, str(out)],
        check=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    return str(out)


@pytest.fixture(scope="session")
def e2e_ready() -> None:
    """Fails (never skips, unless W2P_SKIP_E2E=1) when this machine cannot run e2e tests."""
    why = e2e_prerequisites()
    if why:
        if os.environ.get("W2P_SKIP_E2E") == "1":
            pytest.skip(why)
        pytest.fail(f"{why} (set W2P_SKIP_E2E=1 to skip explicitly; CI never does)")


@pytest.fixture(scope="session")
def servers(web2py_zip, e2e_ready) -> list[Server]:
    started = sandbox_up(PREFIX, SERVER_COUNT)
    yield started
    sandbox_down([s.name for s in started])


@pytest.fixture(scope="session")
def admin_password() -> str:
    return "adm-" + secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def installed(servers, admin_password, web2py_zip):
    """install_web2py run on the first two servers in parallel, twice."""
    hosts = servers[:2]
    env = {"WEB2PY_ADMIN_PASSWORD": admin_password, "WEB2PY_SRC_ZIP": web2py_zip}
    first = pyinfra("deploys/install_web2py.py", hosts, env=env, extra=["-vvv"])
    assert first.returncode == 0, first.output[-6000:]
    second = pyinfra("deploys/install_web2py.py", hosts, env=env)
    assert second.returncode == 0, second.output[-6000:]
    return {"hosts": hosts, "first": first, "second": second, "env": env}


# The attack suite's server, shared by test_attacks.py and test_writable_paths.py.
from .attacklib import attacked  # noqa: E402, F401
