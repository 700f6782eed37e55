"""The storm tool itself (tests/support/http_storm.py), against a stand-in server that answers
every request the same way: a storm that fails must not pass for the service's fault, or end
a benchmark with an unreadable error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.support.http_storm import storm_from_a_process


@pytest.fixture
def answering_server() -> Iterator[tuple[int, list[str]]]:
    """A server on a free port answering every GET with 200, until the test ends: its port,
    and the Authorization header of each request it got."""
    seen: list[str] = []

    class Answer200(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # not on the test's output
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer200)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_token_starting_with_a_dash_reaches_the_server(answering_server) -> None:
    """URL-safe tokens start with "-" once in 64: given as its own argument, argparse took it
    for an option and the storm ended at once (the bench's once-in-64 JSON error)."""
    port, seen = answering_server
    report = storm_from_a_process(port, "-Xy_z", ["status"], 2, timeout=10, limit_s=60)
    assert report["outcomes"] == {"status": {"200": 2}}
    assert seen == ["Bearer -Xy_z"] * 2


def test_a_storm_that_fails_says_why() -> None:
    """Its own error comes back, not a JSON error about its empty output."""
    with pytest.raises(
        RuntimeError, match=r"the storm ended with 1: (?s:.*)KeyError: 'no-such-kind'"
    ):
        storm_from_a_process(9, "token", ["no-such-kind"], 1, timeout=1, limit_s=60)
