"""The service's HTTP side under abuse (issue 11): each malformed request gets its answer, 500
at once leave `status` answering within a second, connections are bounded in number and idle
time, `quit` answers before it stops, and the port is free again at once after quit or kill.

All against a real `assistant serve` process, measured from outside it (raw sockets, /proc).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from assistant.errors import ServiceRefusedError
from assistant.service.client import ServiceClient
from assistant.service.connections import Limits
from assistant.service.http_policy import TOKEN_HINT
from tests.support.http_storm import (
    EXPECTED,
    ConnectionCounter,
    StatusProbe,
    exchange,
    quit_bytes,
    request_bytes,
    storm_from_a_process,
    unexpected,
)
from tests.support.service_harness import ServiceProcess, wait_for

LIMITS = Limits()  # what `assistant serve` runs with
SLOW_KINDS = {"idle", "kept_alive"}  # wait for the idle timeout
TIMED_OUT = {"half_header", "half_body"}  # wait for the request timeout


# Answer times are asserted (status within a second through a storm): run on an idle CPU.
pytestmark = pytest.mark.realtime


@pytest.fixture
def service():
    svc = ServiceProcess("--no-preload")
    yield svc
    svc.close()


def run_storm(svc: ServiceProcess, kinds: list[str], count: int) -> dict:
    """The storm from its own process (its threads do not slow the probe's clock)."""
    info = svc.client.info
    return storm_from_a_process(info.port, info.token, kinds, count, limit_s=120)


def test_each_malformed_request_gets_its_answer(service: ServiceProcess) -> None:
    """One of each kind (but those waiting for the idle timeout), all at once: each gets the
    status it should, never a silent hang-up or a hang, and the service is unharmed."""
    kinds = [k for k in EXPECTED if k not in SLOW_KINDS]
    report = run_storm(service, kinds, len(kinds))
    assert unexpected(report) == {}, report["outcomes"]
    assert all("503" not in r for r in report["outcomes"].values())
    seconds = report["seconds"]
    assert seconds["negative_length"]["max"] < 5  # the defect: it hung until the client gave up
    for kind in TIMED_OUT:
        timeout = LIMITS.request_timeout_s
        assert timeout - 0.5 < seconds[kind]["max"] < timeout + 5, kind
    assert service.client.status()["state"] == "idle"


def test_refusals_say_why_in_json(service: ServiceProcess) -> None:
    port, token = service.client.info.port, service.client.info.token

    def answer(data: bytes) -> tuple[int, str]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            raw = b""
            while not raw.endswith(b"}") and (chunk := s.recv(65536)):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Content-Type: application/json" in head
        return int(head.split()[1]), json.loads(body)["error"]

    def ask(kind: str) -> tuple[int, str]:
        return answer(request_bytes(kind, port, token))

    assert ask("non_ascii_token") == (401, TOKEN_HINT)
    assert ask("two_tokens") == (401, TOKEN_HINT)
    assert ask("two_hosts") == (
        403,
        f"unexpected Host header '127.0.0.1:{port}', 'evil.example'",
    )
    assert ask("foreign_origin") == (403, "requests from 'https://evil.example' are refused")
    assert ask("oversized_body") == (413, "body over 16384 bytes")
    assert ask("oversized_chunked_body") == (413, "body over 16384 bytes")
    assert ask("deep_json") == (
        400,
        "body is not JSON (nested 8000 levels deep; the format needs at most 8)",
    )
    assert ask("nan_json") == (400, "body is not JSON (non-finite number NaN)")
    assert ask("switch_to_passwd")[1].startswith("cannot switch: /etc/passwd: not a safetensors")
    other = request_bytes("status", port, token)
    assert answer(other.replace(b"/api/status", b"/api/reboot")) == (
        404,
        "no such endpoint: /api/reboot",
    )
    assert answer(other.replace(b"GET", b"PUT")) == (405, "PUT is not allowed on /api/status")


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_trickled_request_is_cut_off_counting_from_its_first_byte(
    service: ServiceProcess, part: str
) -> None:
    """A client that sends its request a line (or a byte) a second, each one resetting the
    idle clock, is answered 408 once the request timeout has passed since its first byte,
    while it is still sending; and the service is unharmed."""
    port, token = service.client.info.port, service.client.info.token
    head = ["POST /api/mute HTTP/1.1\r\n", f"Host: 127.0.0.1:{port}\r\n"]
    head += [f"Authorization: Bearer {token}\r\n", "Content-Length: 40\r\n"]
    pieces = [f"X-Slow-{i}: x\r\n" for i in range(30)] if part == "headers" else head
    if part == "body":
        pieces = ["".join(head) + "\r\n" + '{"muted": true'] + [" "] * 30
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if part == "headers":
            s.sendall("".join(head).encode())
        started = time.monotonic()
        for piece in pieces:
            try:
                s.sendall(piece.encode())
            except (BrokenPipeError, ConnectionResetError):
                break
            s.settimeout(0.7)  # a line every ~0.7 s (plus the read): never idle for 10 s
            try:
                answer = s.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            break
        took = time.monotonic() - started
        s.settimeout(10)  # the rest of the answer (its body may come in a packet of its own)
        with contextlib.suppress(ConnectionResetError):
            while answer and (more := s.recv(65536)):
                answer += more
    assert took < LIMITS.request_timeout_s + 3, took
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"did not arrive within 5 s" in answer
    assert service.client.status()["state"] == "idle"


@pytest.mark.slow
def test_500_at_once_leave_status_answering_within_a_second(service: ServiceProcess) -> None:
    """500 concurrent requests of every kind, idle and half-sent ones included, while a probe
    asks for the status ten times a second and a live feed stays open throughout."""
    info = service.client.info
    counter = ConnectionCounter(service.proc.pid, info.port)
    probe = StatusProbe(info.port, info.token)
    feed = LiveFeed(service.client)
    for thread in (counter, probe, feed):
        thread.start()
    try:
        report = run_storm(service, list(EXPECTED), 500)
    finally:
        answers, samples, events = probe.stop(), counter.stop(), feed.stop()
    assert unexpected(report) == {}, report["outcomes"]

    # Status answered every time, each within a second (measured from the caller's side).
    assert len(answers) > 50 and {a.result for a in answers} == {200}
    slowest = max(a.seconds for a in answers)
    print(f"status: {len(answers)} probes, slowest {slowest:.3f} s; open at most {max(samples)}")
    assert slowest < 1.0

    # Open connections stay within the limit; idle ones close after the idle timeout.
    assert max(samples) <= LIMITS.max_open
    for kind in SLOW_KINDS:
        assert LIMITS.idle_s - 0.5 < report["seconds"][kind]["min"], kind
        assert report["seconds"][kind]["max"] < LIMITS.idle_s + 5, kind
    # A live feed is busy, not idle: it outlived the idle timeout, one event each half second.
    assert events >= 2 * LIMITS.idle_s * 0.8
    assert counter.count() <= 2  # the storm's connections are all gone (the feed remains)


@pytest.mark.slow
def test_connections_beyond_the_limit_are_turned_away_and_status_still_answers(
    service: ServiceProcess,
) -> None:
    """More idle connections than the limit: the count stays bounded, the excess is answered
    503, and a caller asking for the status is served within a second, its place taken from
    the longest idle."""
    info = service.client.info
    counter = ConnectionCounter(service.proc.pid, info.port)
    probe = StatusProbe(info.port, info.token)
    holders = LIMITS.max_open + 150
    client_seconds: list[float] = []

    def ask_status() -> None:
        deadline = time.monotonic() + 30  # (the 503 check below fails if it never is)
        while max(counter.samples, default=0) < LIMITS.max_open and time.monotonic() < deadline:
            time.sleep(0.05)  # until the storm has reached the limit
        client = ServiceClient(info)  # retries a 503 from the connection limit
        for _ in range(5):
            started = time.monotonic()
            assert client.status()["state"] == "idle"
            client_seconds.append(time.monotonic() - started)
            time.sleep(0.5)

    asker = threading.Thread(target=ask_status)
    for thread in (counter, probe, asker):
        thread.start()
    try:
        report = run_storm(service, ["idle"], holders)
    finally:
        asker.join()
        answers, samples = probe.stop(), counter.stop()
    outcomes = report["outcomes"]["idle"]
    print(f"{holders} idle: {outcomes}; open at most {max(samples)}; client {client_seconds}")
    assert set(outcomes) <= {"closed", "503"}
    assert outcomes.get("503", 0) > 0  # the limit was reached
    assert max(samples) <= LIMITS.max_open + LIMITS.max_refusing
    assert {a.result for a in answers} <= {200, 503}
    assert all(a.seconds < 1.0 for a in answers)
    assert longest_refusal(answers) < LIMITS.evict_after_s + 1.0
    assert len(client_seconds) == 5 and max(client_seconds) < 2.0


def test_quit_answers_in_full_then_stops(service: ServiceProcess) -> None:
    port, token = service.client.info.port, service.client.info.token
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(quit_bytes(port, token))
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["stopping"] is True  # the whole body, then the connection closed
    assert service.proc.wait(timeout=30) == 0
    assert "Service stopped." in service.output()


def test_ctl_quit_waits_for_the_service_to_end(service: ServiceProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "ctl", "quit"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "The service stopped." in result.stdout, result.stderr
    assert result.stderr == ""
    assert service.proc.poll() is not None or service.proc.wait(timeout=1) == 0


def test_a_restart_on_the_same_port_right_after_quit_or_kill(tmp_path) -> None:
    """The old service's connections linger (TIME_WAIT) on the port; the new one binds anyway."""
    port = free_port()
    first = ServiceProcess("--no-preload", port=port)
    try:
        keep_alive_connections(first, 3)
        assert first.client.quit()["stopping"] is True
        assert first.client.wait_stopped(timeout=30)
        # What made a restart fail: the old connections left in TIME_WAIT on the port.
        assert lingering(port) is not False, "no connection left lingering: nothing tested"
        second = ServiceProcess("--no-preload", port=port)
    finally:
        first.close()
    try:
        assert second.client.status()["state"] == "idle"
        keep_alive_connections(second, 3)
        second.proc.kill()  # kill -9: nothing cleaned up
        second.proc.wait(timeout=10)
        assert lingering(port) is not False
        third = ServiceProcess("--no-preload", port=port)
    finally:
        second.close()
    try:
        assert third.client.status()["state"] == "idle"
    finally:
        third.close()


def test_live_feeds_are_bounded(service: ServiceProcess) -> None:
    info = service.client.info
    feed = request_bytes("status", info.port, info.token).replace(b"/api/status", b"/api/stream")
    feeds = [socket.create_connection(("127.0.0.1", info.port), timeout=10)]
    try:
        for s in feeds:
            s.sendall(feed)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            if len(feeds) < LIMITS.max_streams:
                feeds.append(socket.create_connection(("127.0.0.1", info.port), timeout=10))
        assert exchange(info.port, feed, timeout=10).result == 503
    finally:
        for s in feeds:
            s.close()

    def first_event() -> dict | None:
        try:
            with contextlib.closing(service.client.stream()) as events:  # type: ignore[type-var]
                return next(events)
        except ServiceRefusedError:
            return None

    # The places free once the feeds notice their watchers left (at their next event).
    event = wait_for(first_event, timeout=10, what="a free live feed")
    assert event is not None and event["status"]["state"] == "idle"


# --- helpers -------------------------------------------------------------------------------------
class LiveFeed(threading.Thread):
    """Follows /api/stream, counting events, until stopped."""

    def __init__(self, client: ServiceClient) -> None:
        super().__init__(daemon=True)
        self.client, self.events = client, 0
        self._done = threading.Event()

    def run(self) -> None:
        for _ in self.client.stream():
            self.events += 1
            if self._done.is_set():
                return

    def stop(self) -> int:
        self._done.set()
        self.join(timeout=10)
        return self.events


def longest_refusal(answers: list) -> float:
    """The longest stretch of time in which every status probe was turned away."""
    longest, since, t = 0.0, None, 0.0
    for a in answers:
        if a.result == 503:
            since = t if since is None else since
            longest = max(longest, t + a.seconds - since)
        else:
            since = None
        t += a.seconds + 0.1  # the probe's period
    return longest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keep_alive_connections(svc: ServiceProcess, n: int) -> None:
    """`n` connections that asked something and stay open: the service closes them itself."""
    info = svc.client.info
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", info.port), timeout=10)
        s.sendall(request_bytes("status", info.port, info.token))
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        threading.Thread(target=_close_when_closed, args=(s,), daemon=True).start()


def _close_when_closed(s: socket.socket) -> None:
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    finally:
        s.close()


def lingering(port: int) -> bool | None:
    """Connections of a closed listener still on the port (TIME_WAIT and friends); None where
    other processes' sockets cannot be listed (macOS without root)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            connections = psutil.net_connections(kind="tcp")
        except psutil.AccessDenied:
            return None
        states = {
            c.status
            for c in connections
            if c.laddr and c.laddr.port == port and c.status != psutil.CONN_LISTEN
        }
        if states & {psutil.CONN_TIME_WAIT, psutil.CONN_FIN_WAIT1, psutil.CONN_FIN_WAIT2}:
            return True
        time.sleep(0.05)
    return False
