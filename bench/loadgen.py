"""Open-loop, fixed-rate HTTP load generator for the end-to-end tests and benchmarks.

Request k is sent at ``start + k / rate`` whatever happened to the earlier ones. A closed-loop
client (N workers, each waiting for its reply) slows down when the server stalls and so hides the
stall; here a stall turns into timeouts. If the client itself cannot keep up, the sends it made
late are counted (``late_sends``), so a test can tell client overload from server failures.

Every request uses a fresh connection ("Connection: close"): that is closest to many independent
users, and makes nginx accept, route and answer each one. Against uWSGI reloads it makes no
difference whether the client keeps connections alive, as the client only ever talks to nginx.

Safety: only loopback and the sandbox network (W2P_SANDBOX_SUBNET, default 10.213.0.0/16) can be
targeted, and names other than "localhost" are never resolved.

    python -m bench.loadgen http://10.213.0.10/notes --rate 100 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import math
import os
import resource
import ssl
import sys
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_SANDBOX_SUBNET = "10.213.0.0/16"
# The sandbox network must be private: a subnet like 0.0.0.0/0 would switch the safety check off.
PRIVATE_NETWORKS = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
LATE_THRESHOLD_S = 0.05
# First send a little after setup, so that setup time is not counted as lateness.
START_LEAD_S = 0.02
# Kept free for the event loop, stdout, pytest and whatever else shares the process.
SPARE_FDS = 64
USER_AGENT = "pyinfra-web2py-loadgen"
MAX_HEADERS = 200
LINGER_S = 1.0  # longest wait for the server to close after a complete answer


@dataclass(frozen=True)
class _Plan:
    """A checked request: everything run_load needs, resolved before anything is sent."""

    scheme: str
    address: str  # IP literal: connecting never needs a name lookup
    port: int
    server_name: str  # for SNI and certificate checks
    request: bytes
    rate: float
    count: int
    timeout: float
    expect_status: frozenset[int]
    expect_body: bytes | None
    max_in_flight: int
    verify_tls: bool
    late_threshold: float


@dataclass
class LoadResult:
    """What a run did. Latencies are of OK requests only, from actual send to full body, in ms."""

    planned: int
    sent: int
    ok: int
    failed: int
    failures: list[tuple[float, str]]  # (offset from start in s, kind), in send order
    by_kind: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    duration_s: float  # first send to last reply or timeout
    achieved_rate: float  # of the sends themselves, first to last
    late_sends: int
    max_late_ms: float

    def failures_between(self, start_s: float, end_s: float) -> list[tuple[float, str]]:
        return [f for f in self.failures if start_s <= f[0] < end_s]

    def summary(self) -> str:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.by_kind.items()))
        failed = f"{self.failed} failed" + (f" [{kinds}]" if kinds else "")
        return (
            f"{self.sent} sent, {self.ok} ok, {failed} "
            f"(p50 {_ms(self.p50_ms)}, p99 {_ms(self.p99_ms)}, max {_ms(self.max_ms)}, "
            f"{self.achieved_rate:.1f} req/s, {self.late_sends} late)"
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


# ---------------------------------------------------------------------------------------------
# Checking the target and the parameters


def sandbox_network(env: Mapping[str, str] | None = None) -> ipaddress.IPv4Network:
    env = os.environ if env is None else env
    text = env.get("W2P_SANDBOX_SUBNET") or DEFAULT_SANDBOX_SUBNET
    try:
        # strict=False: the sandbox writes the subnet as its bridge address, e.g. 10.213.0.1/24.
        network = ipaddress.IPv4Network(text.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"W2P_SANDBOX_SUBNET: not an IPv4 network: {text!r}") from exc
    if not any(network.subnet_of(p) for p in PRIVATE_NETWORKS):
        raise ValueError(f"W2P_SANDBOX_SUBNET: {text!r} is not inside a private IPv4 range")
    return network


def check_target(host: str, env: Mapping[str, str] | None = None) -> str:
    """The IP address to connect to for host; ValueError unless it is loopback or sandbox."""
    if host.lower() == "localhost":
        # Not resolved: /etc/hosts could send "localhost" anywhere, and ::1 may not listen.
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_loopback:
        return str(ip)
    network = sandbox_network(env)
    if ip is None:
        raise ValueError(
            f"loadgen: refusing {host!r}: only IP literals in 127.0.0.0/8, ::1, {network} "
            "or 'localhost' may be targeted (names are not resolved)"
        )
    if ip.version == 4 and ip in network:
        return str(ip)
    raise ValueError(
        f"loadgen: refusing {host}: not loopback or the sandbox network {network} "
        "(set W2P_SANDBOX_SUBNET to change it)"
    )


def _split_url(url: str) -> tuple[str, str, int, str]:
    """url -> (scheme, host, port, path with query)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"loadgen: {url!r}: only http:// and https:// URLs are supported")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"loadgen: {url!r}: no credentials in the URL; pass headers instead")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"loadgen: {url!r}: bad port") from exc
    if not parts.hostname:
        raise ValueError(f"loadgen: {url!r}: no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def _host_header(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return shown if port == default else f"{shown}:{port}"


def build_request(path: str, host_header: str, headers: dict[str, str] | None) -> bytes:
    fields = {"Host": host_header, "User-Agent": USER_AGENT, "Accept": "*/*"}
    lowered = {k.lower(): k for k in fields}
    for name, value in (headers or {}).items():
        if any(c in f"{name}{value}" for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"loadgen: bad header {name!r}")
        fields.pop(lowered.get(name.lower(), name), None)
        fields[name] = str(value)
    # Always last and never overridable: the response is read to EOF when it has no length.
    fields.pop("Connection", None)
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in fields.items()]
    text = "\r\n".join(lines) + "\r\nConnection: close\r\n\r\n"
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("loadgen: URL and headers must be ASCII (percent-encode them)") from None


def _count(rate: float, duration: float | None, count: int | None) -> int:
    if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"loadgen: rate must be a positive number, got {rate!r}")
    if (duration is None) == (count is None):
        raise ValueError("loadgen: give exactly one of duration and count")
    if count is None:
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"loadgen: duration must be positive, got {duration!r}")
        count = round(rate * duration)
    if count < 1:
        raise ValueError(f"loadgen: nothing to send (count {count})")
    return count


def _in_flight_budget(wanted: int) -> int:
    """max_in_flight, capped by the open-file limit (raised if allowed) rather than by EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    # Running out of descriptors would look like server "connect" failures; waiting for a free
    # slot instead shows up as late sends, i.e. as client overload, which is what it is.
    return max(1, min(wanted, soft - SPARE_FDS))


def plan_load(
    url: str,
    rate: float,
    duration: float | None = None,
    count: int | None = None,
    timeout: float = 5.0,
    expect_status: Sequence[int] = (200,),
    expect_body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    max_in_flight: int = 2000,
    verify_tls: bool = False,
    late_threshold: float = LATE_THRESHOLD_S,
) -> _Plan:
    scheme, host, port, path = _split_url(url)
    address = check_target(host)
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"loadgen: timeout must be positive, got {timeout!r}")
    if not expect_status:
        raise ValueError("loadgen: expect_status is empty")
    if max_in_flight < 1:
        raise ValueError(f"loadgen: max_in_flight must be at least 1, got {max_in_flight}")
    if isinstance(expect_body, str):
        expect_body = expect_body.encode()
    return _Plan(
        scheme=scheme,
        address=address,
        port=port,
        server_name=host,
        request=build_request(path, _host_header(scheme, host, port), headers),
        rate=float(rate),
        count=_count(rate, duration, count),
        timeout=float(timeout),
        expect_status=frozenset(int(s) for s in expect_status),
        expect_body=expect_body,
        max_in_flight=max_in_flight,
        verify_tls=verify_tls,
        late_threshold=late_threshold,
    )


# ---------------------------------------------------------------------------------------------
# One request


class _BadResponse(Exception):
    pass


async def _read_headers(reader: asyncio.StreamReader) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    for _ in range(MAX_HEADERS):
        line = await reader.readuntil(b"\n")
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.partition(b":")
        if not sep:
            raise _BadResponse("header line without ':'")
        headers[name.strip().lower()] = value.strip()
    raise _BadResponse("too many headers")


async def _read_status(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    while True:
        parts = (await reader.readuntil(b"\n")).split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise _BadResponse("bad status line")
        status = int(parts[1])
        headers = await _read_headers(reader)
        if not 100 <= status < 200:  # interim responses are followed by the real one
            return status, headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    # nginx answers HTTP/1.1 requests in chunks when the upstream gave no length.
    body = bytearray()
    while True:
        size_text = (await reader.readuntil(b"\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadResponse("bad chunk size") from None
        if size == 0:
            await _read_headers(reader)  # trailers
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readuntil(b"\n")


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return await _read_chunked(reader)
    length = headers.get(b"content-length")
    if length is None:
        return await reader.read()
    if not length.isdigit():
        raise _BadResponse("bad Content-Length")
    return await reader.readexactly(int(length))


def _tls_context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()
    # The sandbox servers use self-signed certificates.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _connect(
    plan: _Plan, tls: ssl.SSLContext | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if tls is None:
        return await asyncio.open_connection(plan.address, plan.port)
    return await asyncio.open_connection(
        plan.address, plan.port, ssl=tls, server_hostname=plan.server_name
    )


async def _request(
    plan: _Plan, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> str | None:
    """Send the request and read the answer; None if it is as expected, else the failure kind."""
    writer.write(plan.request)
    await writer.drain()
    status, headers = await _read_status(reader)
    body = await _read_body(reader, headers)
    if status not in plan.expect_status:
        return f"status {status}"
    if plan.expect_body is not None and plan.expect_body not in body:
        return "body"
    return None


async def _linger(reader: asyncio.StreamReader) -> None:
    """Give the server a moment to close first, as it was asked to ("Connection: close").

    Whoever closes first keeps the port pair in TIME_WAIT for a minute. On the client that would
    use up its ephemeral ports (about 470 new connections a second to one server) and make
    connect() slow long before; on the server it costs nothing.
    """
    with contextlib.suppress(TimeoutError, OSError, asyncio.IncompleteReadError):
        async with asyncio.timeout(LINGER_S):
            while await reader.read(65536):
                pass


async def _exchange(
    plan: _Plan, tls: ssl.SSLContext | None, give_up_at: float
) -> tuple[str | None, float]:
    """One request on a fresh connection: (failure kind or None, loop time it was answered)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(give_up_at):
            reader, writer = await _connect(plan, tls)
    except TimeoutError:  # before OSError: a kernel ETIMEDOUT is a TimeoutError too
        return "timeout", loop.time()
    except ssl.SSLError:
        return "tls", loop.time()
    except OSError:
        return "connect", loop.time()
    try:
        try:
            async with asyncio.timeout_at(give_up_at):
                kind = await _request(plan, reader, writer)
        except TimeoutError:
            kind = "timeout"
        except (asyncio.IncompleteReadError, OSError):
            kind = "reset"
        except (_BadResponse, asyncio.LimitOverrunError, ValueError):
            kind = "protocol"
        done = loop.time()
        if kind != "timeout":
            await _linger(reader)
    finally:
        # abort, not close: no TLS close_notify exchange that could outlive the run.
        writer.transport.abort()
    return kind, done


# ---------------------------------------------------------------------------------------------
# The schedule


@dataclass
class _Tally:
    start: float
    sent: int = 0
    first_send: float | None = None
    last_send: float = 0.0
    last_done: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    late_sends: int = 0
    max_late: float = 0.0

    def record_send(self, deadline: float, now: float, threshold: float) -> None:
        self.sent += 1
        if self.first_send is None:
            self.first_send = now
        self.last_send = max(self.last_send, now)
        late = now - deadline
        self.max_late = max(self.max_late, late)
        if late > threshold:
            self.late_sends += 1


async def _one(
    plan: _Plan,
    tls: ssl.SSLContext | None,
    deadline: float,
    tally: _Tally,
    slots: asyncio.Semaphore,
) -> None:
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    # Lateness is measured here, when the request really starts, not when it was scheduled.
    tally.record_send(deadline, sent_at, plan.late_threshold)
    try:
        kind, done = await _exchange(plan, tls, sent_at + plan.timeout)
    finally:
        slots.release()
    tally.last_done = max(tally.last_done, done)
    if kind is None:
        tally.latencies.append(done - sent_at)
    else:
        tally.failures.append((sent_at - tally.start, kind))


async def _wait_until(deadline: float, stop: threading.Event | None) -> None:
    loop = asyncio.get_running_loop()
    while (delay := deadline - loop.time()) > 0:
        # Short slices so that a stop request from another thread is seen at low rates too.
        await asyncio.sleep(min(delay, 0.1) if stop else delay)
        if stop and stop.is_set():
            return
    await asyncio.sleep(0)  # even when behind, let the started requests run


async def _run(plan: _Plan, stop: threading.Event | None) -> _Tally:
    loop = asyncio.get_running_loop()
    tls = _tls_context(plan.verify_tls) if plan.scheme == "https" else None
    slots = asyncio.Semaphore(_in_flight_budget(plan.max_in_flight))
    tally = _Tally(start=loop.time() + START_LEAD_S)
    tasks: set[asyncio.Task[None]] = set()
    for k in range(plan.count):
        # Absolute deadlines: sleeping a fixed interval after each send would drift.
        deadline = tally.start + k / plan.rate
        await _wait_until(deadline, stop)
        await slots.acquire()
        if stop and stop.is_set():
            slots.release()
            break
        task = asyncio.create_task(_one(plan, tls, deadline, tally, slots))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return tally


def _percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))  # nearest-rank
    return ordered[rank - 1] * 1000


def _send_rate(sent: int, span: float) -> float:
    # n sends span n-1 intervals: 600 sends at 200/s take 2.995 s, not 3.
    return (sent - 1) / span if sent > 1 and span > 0 else float(sent)


def _result(plan: _Plan, tally: _Tally) -> LoadResult:
    ordered = sorted(tally.latencies)
    first = tally.first_send if tally.first_send is not None else tally.start
    failures = sorted(tally.failures)
    return LoadResult(
        planned=plan.count,
        sent=tally.sent,
        ok=len(ordered),
        failed=len(failures),
        failures=failures,
        by_kind=dict(Counter(kind for _, kind in failures)),
        p50_ms=_percentile(ordered, 50),
        p95_ms=_percentile(ordered, 95),
        p99_ms=_percentile(ordered, 99),
        max_ms=_percentile(ordered, 100),
        duration_s=max(0.0, tally.last_done - first),
        achieved_rate=_send_rate(tally.sent, tally.last_send - first),
        late_sends=tally.late_sends,
        max_late_ms=max(0.0, tally.max_late) * 1000,
    )


def run_plan(plan: _Plan, stop: threading.Event | None = None) -> LoadResult:
    # A fresh event loop in its own thread: the caller's thread may already run a loop (pyinfra's
    # gevent hub, a test framework), and asyncio.run() refuses to nest.
    box: dict[str, _Tally | BaseException] = {}

    def main() -> None:
        try:
            box["tally"] = asyncio.run(_run(plan, stop))
        except BaseException as error:  # re-raised in the caller's thread
            box["error"] = error

    thread = threading.Thread(target=main, name="loadgen-loop", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return _result(plan, box["tally"])


def run_load(
    url: str,
    rate: float,
    duration: float | None = None,
    count: int | None = None,
    timeout: float = 5.0,
    expect_status: tuple[int, ...] = (200,),
    expect_body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    max_in_flight: int = 2000,
    verify_tls: bool = False,
    *,
    late_threshold: float = LATE_THRESHOLD_S,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Send GET url at a fixed rate (open loop) and report; blocks for about duration + timeout.

    Raises ValueError (before sending anything) for bad parameters or a target that is not
    loopback or the sandbox network. Must not be called from a running event loop; use
    start_load for background load.
    """
    plan = plan_load(
        url,
        rate,
        duration=duration,
        count=count,
        timeout=timeout,
        expect_status=expect_status,
        expect_body=expect_body,
        headers=headers,
        max_in_flight=max_in_flight,
        verify_tls=verify_tls,
        late_threshold=late_threshold,
    )
    return run_plan(plan, stop)


# ---------------------------------------------------------------------------------------------
# Background use


class LoadRunner:
    """run_load in a thread with its own event loop.

        with LoadRunner(url, rate=100, duration=30) as load:
            subprocess.run([...pyinfra deploy...], check=True)
        result = load.result()

    The parameters are checked in the caller's thread (ValueError there, nothing sent). The run
    always ends by itself: after its last send, every request is answered or given up within
    timeout + LINGER_S (see bound_s). Leaving the with block by an exception stops the sends.
    """

    def __init__(self, url: str, rate: float, **kwargs: Any) -> None:
        self.plan = plan_load(url, rate, **kwargs)
        self._stop = threading.Event()
        self._result: LoadResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="loadgen", daemon=True)

    def _main(self) -> None:
        try:
            self._result = run_plan(self.plan, self._stop)
        except BaseException as exc:  # handed to the joining thread by result()
            self._error = exc

    @property
    def bound_s(self) -> float:
        """Upper bound on the run time if the client keeps up: all sends, a timeout, a linger."""
        last_send = START_LEAD_S + (self.plan.count - 1) / self.plan.rate
        return last_send + self.plan.timeout + LINGER_S

    def start(self) -> LoadRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Send nothing more; requests in flight still finish or time out."""
        self._stop.set()

    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float | None = None) -> LoadResult:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"loadgen: still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def __enter__(self) -> LoadRunner:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.stop()
        self._thread.join()


def start_load(url: str, rate: float, **kwargs: Any) -> LoadRunner:
    """Start run_load(url, rate, **kwargs) in the background; collect it with .result()."""
    return LoadRunner(url, rate, **kwargs).start()


# ---------------------------------------------------------------------------------------------
# Command line


def _status_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of status codes: {text!r}") from None


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description="Open-loop fixed-rate HTTP GET load against loopback or the sandbox.",
    )
    p.add_argument("url")
    p.add_argument("--rate", type=float, required=True, help="requests per second")
    how_long = p.add_mutually_exclusive_group(required=True)
    how_long.add_argument("--duration", type=float, help="seconds of sending")
    how_long.add_argument("--count", type=int, help="number of requests")
    p.add_argument("--timeout", type=float, default=5.0, help="per request, total (default 5)")
    p.add_argument("--expect-status", type=_status_list, default=(200,), metavar="CODES")
    p.add_argument("--expect-body", metavar="TEXT", help="text every body must contain")
    p.add_argument("--header", type=_header, action="append", default=[], metavar="'K: V'")
    p.add_argument("--max-in-flight", type=int, default=2000)
    p.add_argument("--verify-tls", action="store_true")
    p.add_argument("--show-failures", type=int, default=10, metavar="N")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result = run_load(
            args.url,
            args.rate,
            duration=args.duration,
            count=args.count,
            timeout=args.timeout,
            expect_status=args.expect_status,
            expect_body=args.expect_body,
            headers=dict(args.header),
            max_in_flight=args.max_in_flight,
            verify_tls=args.verify_tls,
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(result.summary())
    for offset, kind in result.failures[: args.show_failures]:
        print(f"  failed at {offset:7.3f} s: {kind}", file=sys.stderr)
    if result.late_sends:
        print(
            f"  warning: {result.late_sends} sends more than {LATE_THRESHOLD_S * 1000:.0f} ms "
            f"late (client overloaded; max {result.max_late_ms:.0f} ms)",
            file=sys.stderr,
        )
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
