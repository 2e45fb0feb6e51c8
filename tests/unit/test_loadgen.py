"""bench.loadgen against small HTTP servers on 127.0.0.1, each run in a thread with its own loop."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import loadgen
from bench.loadgen import LoadResult, LoadRunner, check_target, run_load, start_load


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"hello world"
    delay: float = 0.0
    framing: str = "length"  # or "chunked" or "eof"
    hold: float = 0.0  # keep the connection open this long after the reply


# Decides the reply from (arrival index, seconds since the first request arrived).
Respond = Callable[[int, float], Reply]


def _encode(reply: Reply) -> bytes:
    head = f"HTTP/1.1 {reply.status} X\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    if reply.framing == "length":
        return f"{head}Content-Length: {len(reply.body)}\r\n\r\n".encode() + reply.body
    if reply.framing == "eof":
        return f"{head}\r\n".encode() + reply.body
    # Split inside the body, so that a check that does not decode the chunks would miss it.
    half = len(reply.body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (reply.body[:half], reply.body[half:]))
    return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n"


class Server:
    def __init__(self, respond: Respond, tls: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.tls = tls
        self.count = 0
        self.first: float | None = None
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            now = time.monotonic()
            self.first = self.first if self.first is not None else now
            reply = self.respond(self.count, now - self.first)
            self.count += 1
            if reply.delay:
                await asyncio.sleep(reply.delay)
            writer.write(_encode(reply))
            await writer.drain()
            if reply.hold:
                await asyncio.sleep(reply.hold)
        except (OSError, ssl.SSLError):
            pass  # the client gave up first: that is what some tests are about
        finally:
            writer.transport.abort()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@contextmanager
def serving(respond: Respond = lambda i, t: Reply()) -> Iterator[Server]:
    with Server(respond) as server:
        yield server


def offsets(result: LoadResult) -> list[float]:
    return [offset for offset, _ in result.failures]


# ---------------------------------------------------------------------------------------------
# Rate, and failures where the server fails


def test_steady_rate_is_kept_and_all_requests_succeed():
    with serving() as server:
        result = run_load(server.url("/a?b=c"), rate=200, duration=3, expect_body=b"hello")
        received = server.count
    assert (result.planned, result.sent, result.ok, result.failed) == (600, 600, 600, 0)
    assert received == 600
    assert abs(result.achieved_rate - 200) / 200 < 0.10
    assert 2.9 < result.duration_s < 3.5
    # A busy test machine can pause the process for 100 ms or so: a few late sends are not
    # overload, most of them would be.
    assert result.late_sends < 0.1 * result.sent, result.summary()
    assert result.p50_ms is not None and result.p50_ms <= result.p99_ms <= result.max_ms
    assert result.summary().startswith("600 sent, 600 ok, 0 failed (p50 ")


def test_open_loop_keeps_sending_through_a_stall():
    # Every request arriving in the second second waits 1 s, longer than the 0.5 s timeout.
    def respond(i: int, t: float) -> Reply:
        return Reply(delay=1.0 if 1.0 <= t < 2.0 else 0.0)

    with serving(respond) as server:
        result = run_load(server.url(), rate=100, duration=3, timeout=0.5)
        received = server.count
    assert result.sent == received == 300
    assert set(result.by_kind) == {"timeout"}
    assert 90 <= result.failed <= 110, result.summary()
    assert result.ok == result.sent - result.failed
    assert min(offsets(result)) >= 0.95 and max(offsets(result)) < 2.05
    # The sends went on at the full rate while nothing was answered: a closed-loop client
    # would have sent next to nothing in the second half of the stall.
    assert len(result.failures_between(1.5, 2.0)) >= 45
    assert abs(result.achieved_rate - 100) / 100 < 0.05
    assert result.late_sends < 0.1 * result.sent


def test_bad_gateway_window_is_reported_with_kind_and_time():
    def respond(i: int, t: float) -> Reply:
        return Reply(status=502 if 100 <= i < 200 else 200)

    with serving(respond) as server:
        result = run_load(server.url(), rate=200, count=300)
    assert result.by_kind == {"status 502": 100}
    assert (result.sent, result.ok, result.failed) == (300, 200, 100)
    # Requests 100..199 are sent at 0.5 s .. 0.995 s.
    assert min(offsets(result)) >= 0.47 and max(offsets(result)) <= 1.03
    assert result.failures_between(0.0, 0.47) == [] and result.failures_between(1.03, 9) == []


def test_body_check_decodes_every_framing():
    framings = ("length", "chunked", "eof")

    def respond(i: int, t: float) -> Reply:
        body = b"nothing to see" if i % 4 == 3 else b"<p>hello world</p>"
        return Reply(body=body, framing=framings[i % 3])

    with serving(respond) as server:
        result = run_load(server.url(), rate=200, count=24, expect_body="hello world")
    assert result.by_kind == {"body": 6}
    assert result.ok == 18


def test_expected_status_list_is_honoured():
    with serving(lambda i, t: Reply(status=302 if i % 2 else 200)) as server:
        strict = run_load(server.url(), rate=200, count=10)
        lenient = run_load(server.url(), rate=200, count=10, expect_status=(200, 302))
    assert strict.by_kind == {"status 302": 5}
    assert lenient.failed == 0


def test_closed_port_is_a_connect_failure():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_load(f"http://127.0.0.1:{port}/", rate=100, count=5, timeout=1)
    assert result.by_kind == {"connect": 5}
    assert result.p50_ms is None and "p50 -" in result.summary()


def test_a_server_slow_to_close_neither_fails_nor_slows_the_answers():
    # The client waits a little for the server to close first (keeps its ports out of
    # TIME_WAIT), but the answer counts from when it was complete, and the wait is bounded.
    with serving(lambda i, t: Reply(hold=0.2 if i % 2 else 30)) as server:
        began = time.monotonic()
        result = run_load(server.url(), rate=100, count=4, timeout=0.5)
        took = time.monotonic() - began
    assert (result.ok, result.failed) == (4, 0)
    assert result.max_ms < 100
    assert took < 0.03 + loadgen.LINGER_S + 0.4


def test_in_flight_cap_shows_as_late_sends_not_failures():
    with serving(lambda i, t: Reply(delay=0.3)) as server:
        result = run_load(server.url(), rate=100, count=8, timeout=2, max_in_flight=2)
    assert result.failed == 0 and result.sent == 8
    # Two at a time, 0.3 s each: the last pair starts about 0.9 s after it was due at 0.07 s.
    assert result.late_sends >= 4
    assert result.max_late_ms > 600


# ---------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def tls_server_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    folder: Path = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=x"],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_https_with_self_signed_certificate(tls_server_context: ssl.SSLContext):
    with Server(lambda i, t: Reply(), tls=tls_server_context) as server:
        unverified = run_load(server.url(), rate=100, count=10, expect_body=b"hello")
        verified = run_load(server.url(), rate=100, count=3, verify_tls=True)
    assert (unverified.ok, unverified.failed) == (10, 0)
    assert verified.by_kind == {"tls": 3}


# ---------------------------------------------------------------------------------------------
# Background use


def test_runner_returns_the_result_and_ends_by_itself():
    with serving() as server:
        with LoadRunner(server.url(), rate=100, duration=1.0) as load:
            assert load.running()
            time.sleep(0.3)  # stands for the deploy that runs meanwhile
        assert not load.running()
        result = load.result(timeout=0)
    assert (result.sent, result.ok) == (100, 100)


def test_runner_is_bounded_by_count_and_timeout_when_nothing_answers():
    with serving(lambda i, t: Reply(delay=30)) as server:
        began = time.monotonic()
        load = start_load(server.url(), rate=50, count=25, timeout=0.4)
        result = load.result(timeout=load.bound_s + 2)
        took = time.monotonic() - began
    assert result.by_kind == {"timeout": 25}
    assert took < 0.48 + 0.4 + 0.5  # last send at 0.48 s, its timeout, some slack


def test_runner_stop_ends_the_sends_early():
    with serving() as server:
        load = start_load(server.url(), rate=50, duration=60)
        time.sleep(0.5)
        load.stop()
        result = load.result(timeout=3)
    assert result.planned == 3000
    assert 15 <= result.sent <= 40 and result.failed == 0


def test_leaving_the_with_block_by_an_exception_stops_the_load():
    with serving() as server:
        began = time.monotonic()
        with pytest.raises(RuntimeError), LoadRunner(server.url(), rate=50, duration=60) as load:
            time.sleep(0.2)
            raise RuntimeError("deploy failed")
        assert time.monotonic() - began < 3
    assert load.result(timeout=0).sent < 50


# ---------------------------------------------------------------------------------------------
# Safety: only loopback and the sandbox network


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records (and blocks) any name lookup or connection attempt."""
    attempts: list[object] = []

    def record(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", record)
    monkeypatch.setattr(socket, "gethostbyname", record)
    monkeypatch.setattr(socket.socket, "connect", record)
    monkeypatch.setattr(socket.socket, "connect_ex", record)
    monkeypatch.setattr(asyncio, "open_connection", record)
    monkeypatch.delenv("W2P_SANDBOX_SUBNET", raising=False)
    return attempts


REFUSED = [
    "http://8.8.8.8/",
    "http://192.168.1.1/",
    "https://example.com/",
    "http://localhost.example.com/",
    "http://127.0.0.1.nip.io/",
    "http://10.214.0.1/",
    "http://0.0.0.0:8000/",
    "http://[2001:db8::1]/",
    "http://[fe80::1%25eth0]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refuses_targets_outside_loopback_and_sandbox(url: str, no_network: list[object]):
    with pytest.raises(ValueError, match="^loadgen: refusing") as info:
        run_load(url, rate=10, count=1)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="^loadgen: refusing"):
        start_load(url, rate=10, count=1)
    assert loadgen.main([url, "--rate", "10", "--count", "1"]) == 2
    assert no_network == []


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.8.9.10", "127.8.9.10"),
        ("::1", "::1"),
        ("localhost", "127.0.0.1"),
        ("LocalHost", "127.0.0.1"),
        ("10.213.0.10", "10.213.0.10"),
        ("10.213.255.1", "10.213.255.1"),
    ],
)
def test_accepts_loopback_and_default_sandbox(host: str, address: str, no_network: list[object]):
    assert check_target(host) == address


def test_sandbox_subnet_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    # Written like the sandbox writes it: the bridge address with its prefix.
    monkeypatch.setenv("W2P_SANDBOX_SUBNET", "10.99.0.1/24")
    assert check_target("10.99.0.20") == "10.99.0.20"
    with pytest.raises(ValueError, match="10.99.0.0/24"):
        check_target("10.213.0.10")


@pytest.mark.parametrize("subnet", ["0.0.0.0/0", "8.8.8.0/24", "10.0.0.0/7", "not-a-net"])
def test_a_public_or_bad_sandbox_subnet_is_refused(subnet: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("W2P_SANDBOX_SUBNET", subnet)
    with pytest.raises(ValueError, match="^W2P_SANDBOX_SUBNET: "):
        check_target("8.8.8.8")
    assert check_target("127.0.0.1") == "127.0.0.1"  # loopback never depends on it


# ---------------------------------------------------------------------------------------------
# Parameters, request, summary, command line


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 10}, "exactly one of duration and count"),
        ({"rate": 10, "duration": 1, "count": 5}, "exactly one of duration and count"),
        ({"rate": 0, "count": 5}, "rate must be a positive number"),
        ({"rate": 10, "duration": 0.01}, "nothing to send"),
        ({"rate": 10, "count": 1, "timeout": 0}, "timeout must be positive"),
        ({"rate": 10, "count": 1, "headers": {"X": "a\r\nEvil: 1"}}, "bad header"),
    ],
)
def test_bad_parameters_are_refused_before_sending(kwargs, message, no_network):
    with pytest.raises(ValueError, match=message):
        run_load("http://127.0.0.1:9/", **kwargs)
    assert no_network == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "http://u:p@127.0.0.1/", "http:///x"])
def test_bad_urls_are_refused(url: str, no_network: list[object]):
    with pytest.raises(ValueError, match="^loadgen: "):
        run_load(url, rate=10, count=1)


def test_request_bytes():
    request = loadgen.build_request("/app/default/index?x=1", "[::1]:8000", {"cookie": "a=b"})
    assert request == (
        b"GET /app/default/index?x=1 HTTP/1.1\r\nHost: [::1]:8000\r\n"
        b"User-Agent: pyinfra-web2py-loadgen\r\nAccept: */*\r\ncookie: a=b\r\n"
        b"Connection: close\r\n\r\n"
    )
    overridden = loadgen.build_request("/", "x", {"host": "web2py.test", "Connection": "keep"})
    assert b"\r\nhost: web2py.test\r\n" in overridden and b"Host: x" not in overridden
    assert overridden.count(b"Connection") == 1 and b"Connection: close" in overridden


def test_summary_line():
    result = LoadResult(
        planned=3000, sent=3000, ok=2998, failed=2, failures=[(1.5, "timeout"), (1.6, "reset")],
        by_kind={"timeout": 1, "reset": 1}, p50_ms=4.12, p95_ms=9.0, p99_ms=12.0, max_ms=40.0,
        duration_s=30.1, achieved_rate=100.0, late_sends=0, max_late_ms=2.0,
    )  # fmt: skip
    assert result.summary() == (
        "3000 sent, 2998 ok, 2 failed [reset: 1, timeout: 1] "
        "(p50 4.1 ms, p99 12.0 ms, max 40.0 ms, 100.0 req/s, 0 late)"
    )


def test_command_line(capsys: pytest.CaptureFixture[str]):
    with serving(lambda i, t: Reply(status=502 if i == 3 else 200)) as server:
        code = loadgen.main([server.url(), "--rate", "100", "--count", "3", "--expect-body", "hi"])
        assert capsys.readouterr().out.startswith("3 sent, 0 ok, 3 failed [body: 3]")
        assert code == 1
        code = loadgen.main([server.url(), "--rate", "100", "--count", "3", "--header", "A: b"])
        assert code == 1
        out, err = capsys.readouterr()
        assert out.startswith("3 sent, 2 ok, 1 failed [status 502: 1]")
        assert "status 502" in err
        assert loadgen.main([server.url(), "--rate", "100", "--count", "2"]) == 0
        assert capsys.readouterr().out.startswith("2 sent, 2 ok, 0 failed (")
