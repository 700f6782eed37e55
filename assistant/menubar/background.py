"""Calls to the service, made off the UI thread.

AppKit is driven from the main thread only, and an HTTP call to the service can take up to the
client's timeout (seconds, while the service is busy loading a model): made on the main thread
it would freeze the menu bar. So the menu hands each call to a worker thread and gets the result
back on the UI thread, where the menu's own timer drains finished calls every `DRAIN_S`.
Calls run one at a time, in the order they were made (a Start is answered before the next poll).

`InlineCalls` runs each call at once on the caller's thread: the tests use it to drive the menu
step by step.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
DRAIN_S = 0.1  # how soon a finished call shows in the menu

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result(Generic[T]):
    value: T | None = None
    error: Exception | None = None


class Calls(Protocol):
    def submit(self, call: Callable[[], T], done: Callable[[Result[T]], None]) -> None:
        """Make `call` off the UI thread; `done` gets its result on the UI thread."""
        ...

    def drain(self) -> int:
        """On the UI thread: hand finished calls their results; how many there were."""
        ...

    @property
    def pending(self) -> int:
        """Calls submitted and not yet drained."""
        ...


def _make(call: Callable[[], T]) -> Result[T]:
    try:
        return Result(value=call())
    except Exception as e:  # the menu reports it; the worker must go on
        return Result(error=e)


class BackgroundCalls:
    """One worker thread (a daemon: it never keeps the app from quitting)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Callable[..., None]]] = (
            queue.SimpleQueue()
        )
        self._done: queue.SimpleQueue[tuple[Callable[..., None], Result[object]]] = (
            queue.SimpleQueue()
        )
        self._pending = 0  # touched on the UI thread only
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, call: Callable[[], T], done: Callable[[Result[T]], None]) -> None:
        self._pending += 1
        self._jobs.put((call, done))
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="menubar-calls", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            call, done = self._jobs.get()
            self._done.put((done, _make(call)))

    def drain(self) -> int:
        count = 0
        while True:
            try:
                done, result = self._done.get_nowait()
            except queue.Empty:
                return count
            self._pending -= 1
            count += 1
            try:
                done(result)
            except Exception:  # `done` guards itself; this is the last line of defence
                log.exception("a menu-bar callback failed")


class InlineCalls:
    """Each call made at once, on the caller's thread, its result applied at once (tests)."""

    pending = 0

    def submit(self, call: Callable[[], T], done: Callable[[Result[T]], None]) -> None:
        done(_make(call))

    def drain(self) -> int:
        return 0
