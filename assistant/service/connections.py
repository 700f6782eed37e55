"""Bounds on the service's connections and requests: how many connections may be open, how
long one may sit idle, how long a request may take to arrive, how large and deep its body may
be. Every limit the service grants its callers is a field of `Limits`, here, and in the README.

aiohttp closes a keep-alive connection left idle after a response, but it neither counts
connections nor closes one that never completes a request (a client that connects and sends
nothing, or half a header). `ConnectionGuard` wraps aiohttp's protocol factory to do both:

- a connection that has received nothing and answered nothing for `idle_s` is closed;
- a request must arrive whole (headers and body) within `request_timeout_s` of its first
  byte, however it trickles in: a client that sends a header line a second (each one resets
  the idle clock) is answered 408 and closed;
- at most `max_open` connections are served. A new one beyond that takes the place of the
  longest-idle one if it has been idle for `evict_after_s` (no local client waits that long
  between connecting and asking); otherwise it is answered 503 and closed (reset at once
  when `max_refusing` are being refused already: a flood costs no more descriptors).

A connection is "answering" while a handler runs for it (`ConnectionGuard.answering`, used by
a middleware): a live feed then counts as busy, not idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What the service grants its callers."""

    max_open: int = 512  # connections served at once
    idle_s: float = 10.0  # an idle connection is closed after this long
    evict_after_s: float = 1.0  # when full, one idle this long gives its place to a new one
    max_refusing: int = 256  # refused connections drained at once; more are reset at once
    refusal_linger_s: float = 1.0  # how long a refused one may take to read its 503
    request_timeout_s: float = 5.0  # headers and body, from the request's first byte
    max_body: int = 16 * 1024  # bytes of a request body
    max_json_depth: int = 8  # nesting of a JSON body (a flat object needs 1)
    max_streams: int = 16  # live feeds (server-sent events) at once


FULL_NOTE_EVERY_S = 10.0  # the log says "full" at most this often

REFUSAL_BODY = json.dumps({"error": "too many connections; try again in a second"}).encode()
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(REFUSAL_BODY)).encode() + b"\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\n" + REFUSAL_BODY
)


def too_slow(limits: Limits) -> bytes:
    """The 408 a request gets when it has not arrived whole within the request timeout."""
    body = json.dumps(
        {"error": f"the request did not arrive within {limits.request_timeout_s:g} s"}
    ).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )


class ConnectionGuard:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        self._refusing = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._full_noted = -FULL_NOTE_EVERY_S
        # For the log line at shutdown.
        self.refused = 0
        self.evicted = 0
        self.idle_closed = 0
        self.too_slow = 0

    def factory(self, serve: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` wrapping aiohttp's (`runner.server`)."""
        return lambda: _Connection(self, serve)

    @contextlib.contextmanager
    def answering(self, transport: asyncio.BaseTransport | None) -> Iterator[None]:
        """Mark the connection busy while a handler runs for it."""
        conn = self._open.get(transport) if transport is not None else None
        if conn is None:
            yield
            return
        conn.busy += 1
        try:
            yield
        finally:
            conn.busy -= 1
            conn.last_active = time.monotonic()
            conn.request_started = None  # answered: the next byte starts the next request

    def request_deadline(self, transport: asyncio.BaseTransport | None) -> float:
        """When the request on `transport` must have arrived whole (monotonic seconds)."""
        conn = self._open.get(transport) if transport is not None else None
        started = conn.request_started if conn is not None else None
        return (time.monotonic() if started is None else started) + self.limits.request_timeout_s

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        """Stop sweeping and close what is still open (aiohttp has answered what it could)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for conn in list(self._open.values()):
            self._drop(conn)

    # --- the connections' side ----------------------------------------------------------------
    def _admit(self, conn: _Connection, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.limits.max_open:
            self._note_full()
            idle = [c for c in self._open.values() if not c.busy]
            oldest = min(idle, key=lambda c: c.last_active, default=None)
            if oldest is None or time.monotonic() - oldest.last_active < self.limits.evict_after_s:
                self.refused += 1
                return False
            self.evicted += 1
            self._drop(oldest)
        self._open[transport] = conn
        return True

    def _note_full(self) -> None:
        now = time.monotonic()
        if now - self._full_noted >= FULL_NOTE_EVERY_S:
            self._full_noted = now
            logger.warning(
                "%d connections open (the limit): closing idle ones, refusing new ones",
                len(self._open),
            )

    def _forget(self, conn: _Connection) -> None:
        if conn.transport is not None:
            self._open.pop(conn.transport, None)

    def _drop(self, conn: _Connection) -> None:
        """Close a connection now; it stops counting at once, not when the loop gets to it."""
        self._forget(conn)
        if conn.transport is not None:
            conn.transport.close()

    async def _sweep(self) -> None:
        period = min(1.0, self.limits.idle_s / 4, self.limits.request_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            cutoff, late = now - self.limits.idle_s, now - self.limits.request_timeout_s
            for conn in list(self._open.values()):
                if conn.busy:
                    continue  # a handler runs: it keeps its own time (the body's deadline)
                if conn.request_started is not None and conn.request_started <= late:
                    self.too_slow += 1
                    if conn.transport is not None:
                        conn.transport.write(too_slow(self.limits))
                    self._drop(conn)
                elif conn.last_active <= cutoff:
                    self.idle_closed += 1
                    self._drop(conn)


class _Connection(asyncio.Protocol):
    """One client connection: counted and timed here, served by aiohttp's protocol."""

    def __init__(self, guard: ConnectionGuard, serve: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._serve = serve
        self._inner: asyncio.Protocol | None = None
        self._refusing: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.last_active = time.monotonic()
        self.busy = 0
        # The first byte of the request being received (None: between requests).
        self.request_started: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # what create_server hands a protocol
        self.transport = transport
        if self._guard._admit(self, transport):
            self._inner = self._serve()
            self._inner.connection_made(transport)
        else:
            self._refuse(transport)

    def _refuse(self, transport: asyncio.Transport) -> None:
        """Answer 503, then read and drop what the client sends until it hangs up: closing
        with its request unread would reset the connection and lose the answer."""
        guard = self._guard
        if guard._refusing >= guard.limits.max_refusing:
            transport.abort()
            return
        guard._refusing += 1
        transport.write(REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
        loop = asyncio.get_running_loop()
        self._refusing = loop.call_later(guard.limits.refusal_linger_s, transport.close)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.request_started is None and not self.busy:
            self.request_started = self.last_active
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        return None  # refusing: the client has read its answer; close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refusing is not None:
            self._refusing.cancel()
            self._guard._refusing -= 1
        self._guard._forget(self)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
