"""The storm tool itself (tests/support/http_storm.py), against a stand-in server that answers
every request the same way: a storm that fails must not pass for the service's fault, or end
a benchmark with an unreadable error."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.http_storm import storm_from_a_process


@pytest.fixture
def answering_server() -> Iterator[tuple[int, list[bytes]]]:
    """A server on a free port answering each request 200 (its bytes kept) until the test ends."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                seen.append(data)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        server.close()
        thread.join(10)


def test_a_token_starting_with_a_dash_reaches_the_server(answering_server) -> None:
    """URL-safe tokens start with "-" once in 64: given as its own argument, argparse took it
    for an option and the storm ended at once (the bench's once-in-64 JSON error)."""
    port, seen = answering_server
    report = storm_from_a_process(port, "-Xy_z", ["status"], 2, timeout=10, limit_s=60)
    assert report["outcomes"] == {"status": {"200": 2}}
    assert len(seen) == 2 and all(b"Authorization: Bearer -Xy_z\r\n" in r for r in seen)


def test_a_storm_that_fails_says_why() -> None:
    """Its own error comes back, not a JSON error about its empty output."""
    with pytest.raises(
        RuntimeError, match=r"the storm ended with 1: (?s:.*)KeyError: 'no-such-kind'"
    ):
        storm_from_a_process(9, "token", ["no-such-kind"], 1, timeout=1, limit_s=60)
