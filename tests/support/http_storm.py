"""Raw HTTP against a running service, for the tests and benchmarks/bench_service.py: each kind
of malformed request of issue 11 as bytes, a storm of many at once from their own process,
a status probe and a connection counter (both measuring from outside the service).

    python -m tests.support.http_storm --port P --token T [--count 500] [--kinds idle]

prints one JSON object: per kind, how each request ended (an HTTP status, "closed" by the
server without an answer, "reset", or "timeout") and how long it took.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# What each kind must get back. "closed": the server hangs up (idle or incomplete requests).
# Any kind may also be turned away with 503 when the connection limit is reached.
EXPECTED: dict[str, set[int | str]] = {
    "status": {200},
    "live": {200},
    "mute": {200},
    "negative_length": {400},
    "doubled_length": {400},
    "non_ascii_token": {401},
    "raw_byte_token": {401},
    "wrong_token": {401},
    "two_tokens": {401},
    "two_hosts": {403},
    "foreign_host": {403},
    "foreign_origin": {403},
    "oversized_body": {413},
    "oversized_chunked_body": {413},
    "not_json": {400},
    "deep_json": {400},
    "nan_json": {400},
    "unknown_field": {400},
    "switch_to_passwd": {422},
    "not_http": {400},
    "kept_alive": {"200+closed"},  # answered, then left open: closed when idle
    "idle": {"closed"},
    "half_header": {408},  # the request timeout counts from its first byte
    "half_body": {408},
}
# Kinds that send a whole request: they must get an HTTP status, never a silent hang-up.
ANSWERED = {k for k, v in EXPECTED.items() if "closed" not in v}
# Kinds that keep the connection open after their answer, until the server closes it.
LINGERING = {"kept_alive"}


def request_bytes(kind: str, port: int, token: str) -> bytes:
    """The bytes a client of `kind` sends (and then it waits for the answer)."""
    host = f"Host: 127.0.0.1:{port}\r\n"
    auth = f"Authorization: Bearer {token}\r\n"

    def req(method: str, path: str, headers: str = host + auth, body: bytes = b"") -> bytes:
        length = f"Content-Length: {len(body)}\r\n" if body else ""
        return f"{method} {path} HTTP/1.1\r\n{headers}{length}\r\n".encode() + body

    big = b'{"x": "' + b"a" * 20_000 + b'"}'
    chunk = b"a" * 8192
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    table: dict[str, Callable[[], bytes]] = {
        "status": lambda: req("GET", "/api/status"),
        "kept_alive": lambda: req("GET", "/api/status"),
        "live": lambda: req("GET", "/api/live"),
        "mute": lambda: req("POST", "/api/mute", body=b'{"muted": false}'),
        "negative_length": lambda: (
            f"POST /api/mute HTTP/1.1\r\n{host}{auth}Content-Length: -1\r\n\r\n"
            '{"muted": false}'.encode()
        ),
        "doubled_length": lambda: (
            f"POST /api/mute HTTP/1.1\r\n{host}{auth}Content-Length: 16\r\n"
            'Content-Length: 2\r\n\r\n{"muted": false}'.encode()
        ),
        "non_ascii_token": lambda: req("GET", "/api/status", host + "Authorization: Bearer é\r\n"),
        "raw_byte_token": lambda: (
            f"GET /api/status HTTP/1.1\r\n{host}".encode() + b"Authorization: Bearer \xff\r\n\r\n"
        ),
        "wrong_token": lambda: req("GET", "/api/status", host + "Authorization: Bearer nope\r\n"),
        "two_tokens": lambda: req("GET", "/api/status", host + auth + auth),
        "two_hosts": lambda: req("GET", "/api/status", host + "Host: evil.example\r\n" + auth),
        "foreign_host": lambda: req("GET", "/api/status", "Host: evil.example\r\n" + auth),
        "foreign_origin": lambda: req(
            "POST", "/api/stop", host + auth + "Origin: https://evil.example\r\n"
        ),
        "oversized_body": lambda: req("POST", "/api/mute", body=big),
        "oversized_chunked_body": lambda: (
            f"POST /api/mute HTTP/1.1\r\n{host}{auth}Transfer-Encoding: chunked\r\n\r\n".encode()
            + chunked
        ),
        "not_json": lambda: req("POST", "/api/mute", body=b"{not json"),
        "deep_json": lambda: req("POST", "/api/mute", body=b"[" * 8000 + b"]" * 8000),
        "nan_json": lambda: req("POST", "/api/switch", body=b'{"voice": NaN}'),
        "unknown_field": lambda: req("POST", "/api/mute", body=b'{"muted": true, "volume": 3}'),
        "switch_to_passwd": lambda: req(
            "POST", "/api/switch", body=b'{"checkpoint": "/etc/passwd"}'
        ),
        "not_http": lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),
        "idle": lambda: b"",
        "half_header": lambda: f"GET /api/status HTTP/1.1\r\n{host}X-Slow: ".encode(),
        "half_body": lambda: (
            f"POST /api/mute HTTP/1.1\r\n{host}{auth}Content-Length: 100\r\n\r\n".encode() + b'{"mu'
        ),
    }
    return table[kind]()


def quit_bytes(port: int, token: str) -> bytes:
    """POST /api/quit (not part of any storm: it ends the service)."""
    return (
        f"POST /api/quit HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@dataclass
class Outcome:
    result: int | str  # an HTTP status, or "closed" / "reset" / "timeout"
    seconds: float


def exchange(port: int, data: bytes, timeout: float = 30.0, linger: bool = False) -> Outcome:
    """Connect, send `data`, and read until a whole response or the server hangs up (with
    `linger`: after the response, wait for the server to close the connection too)."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.1, timeout - (time.monotonic() - started)))
            if data:
                s.sendall(data)
            result = _read_answer(s)
            if linger and isinstance(result, int):
                while s.recv(65536):
                    pass
                result = f"{result}+closed"
            return Outcome(result, time.monotonic() - started)
    except TimeoutError:
        return Outcome("timeout", time.monotonic() - started)
    except (ConnectionResetError, BrokenPipeError):
        return Outcome("reset", time.monotonic() - started)


def _read_answer(s: socket.socket) -> int | str:
    buffer = b""
    while True:
        head, sep, rest = buffer.partition(b"\r\n\r\n")
        if sep:
            status = int(head.split(b" ", 2)[1])
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")[1:]
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            while length is not None and len(rest) < length:
                more = s.recv(65536)
                if not more:
                    break
                rest += more
            return status
        data = s.recv(65536)
        if not data:
            return "closed"
        buffer += data


@dataclass
class StormReport:
    outcomes: dict[str, Counter] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "outcomes": {k: {str(r): n for r, n in c.items()} for k, c in self.outcomes.items()},
            "seconds": {
                k: {"min": min(v), "median": statistics.median(v), "max": max(v)}
                for k, v in self.seconds.items()
            },
        }


def storm(port: int, token: str, kinds: list[str], count: int, timeout: float) -> StormReport:
    """`count` requests at once, cycling through `kinds`, one thread each."""
    plan = [kinds[i % len(kinds)] for i in range(count)]
    ready = threading.Barrier(count)

    def one(kind: str) -> tuple[str, Outcome]:
        data = request_bytes(kind, port, token)
        ready.wait()
        return kind, exchange(port, data, timeout, linger=kind in LINGERING)

    outcomes: dict[str, Counter] = defaultdict(Counter)
    seconds: dict[str, list[float]] = defaultdict(list)
    with ThreadPoolExecutor(count) as pool:
        for kind, outcome in pool.map(one, plan):
            outcomes[kind][outcome.result] += 1
            seconds[kind].append(outcome.seconds)
    return StormReport(dict(outcomes), dict(seconds))


def storm_from_a_process(
    port: int,
    token: str,
    kinds: list[str],
    count: int,
    timeout: float = 30.0,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    limit_s: float | None = None,
) -> dict:
    """`storm` run by `python -m tests.support.http_storm` (its threads do not slow the
    caller's clocks): its report; RuntimeError with the process's own message if it fails."""
    # --token=...: a token may start with "-" (URL-safe base64), which argparse would take for
    # an option if it came as its own argument (and the storm would end at once, exit 2).
    args = ["--port", str(port), f"--token={token}", "--count", str(count)]
    args += ["--kinds", ",".join(kinds), "--timeout", str(timeout)]
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.http_storm", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=limit_s,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the storm ended with {result.returncode}: {result.stderr.strip()}")
    report: dict = json.loads(result.stdout)
    return report


def unexpected(report: dict) -> dict[str, dict[str, int]]:
    """Outcomes a kind must not have (a 503 at the connection limit is always allowed)."""
    bad = {}
    for kind, results in report["outcomes"].items():
        allowed = {str(r) for r in EXPECTED[kind]} | {"503"}
        wrong = {r: n for r, n in results.items() if r not in allowed}
        if wrong:
            bad[kind] = wrong
    return bad


# --- measuring from outside ----------------------------------------------------------------------
class StatusProbe(threading.Thread):
    """Asks for /api/status on a new connection every `period_s`; records each answer's time."""

    def __init__(self, port: int, token: str, period_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.data = request_bytes("status", port, token)
        self.port, self.period_s = port, period_s
        self.answers: list[Outcome] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.answers.append(exchange(self.port, self.data, timeout=10.0))
            self._done.wait(self.period_s)

    def stop(self) -> list[Outcome]:
        self._done.set()
        self.join()
        return self.answers


class ConnectionCounter(threading.Thread):
    """Samples how many connections the service process holds on its port."""

    def __init__(self, pid: int, port: int, period_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.port, self.period_s = port, period_s
        self.samples: list[int] = []
        self._done = threading.Event()

    def count(self) -> int:
        return sum(
            1
            for c in self.process.net_connections(kind="tcp")
            if c.laddr and c.laddr.port == self.port and c.status != psutil.CONN_LISTEN
        )

    def run(self) -> None:
        while not self._done.is_set():
            self.samples.append(self.count())
            self._done.wait(self.period_s)

    def stop(self) -> list[int]:
        self._done.set()
        self.join()
        return self.samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--kinds", default=",".join(EXPECTED))
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    report = storm(args.port, args.token, args.kinds.split(","), args.count, args.timeout)
    json.dump(report.to_dict(), sys.stdout)
    print()


if __name__ == "__main__":
    main()
