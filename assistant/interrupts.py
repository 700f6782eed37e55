"""Ctrl-C and SIGTERM: one line and a clean exit, whenever they arrive.

Installed first thing by the entry point (`__main__.entry`), before the command line's modules
import: only the interpreter's own start-up is left to Python's default treatment.

Both raise KeyboardInterrupt in the main thread, so everything that handles Ctrl-C (a
conversation ends, its session is saved and its trace closed) handles a `kill` the same way;
which signal it was is remembered for the exit code (130 or 143) and the message. Once the
command is over, a further signal during the interpreter's own shutdown ends the process at
once instead of printing a traceback from its threads.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

received: int | None = None  # the last SIGINT or SIGTERM, if any

_EXIT_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
_MESSAGES: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    global received
    received = signum
    raise KeyboardInterrupt


def _redeliver(unraisable: Any) -> None:
    """Python drops an exception raised where nothing can catch it (a weakref callback, a
    `__del__`): it only prints it. A signal's KeyboardInterrupt can land there, as in the
    callback importlib runs when a module lock is freed: a Ctrl-C during the imports was then
    lost, and the conversation ran to its end (3 starts in 105 under load). The signal is
    delivered again instead, from a thread: its handler then runs in the main thread once this
    hook has returned, at an ordinary line (from the hook itself it would be dropped again)."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt) and received is not None:
        with contextlib.suppress(RuntimeError):  # (no new thread in the interpreter's shutdown)
            # The low-level start: threading's waits for the thread, and the signal would
            # land in that wait, inside this hook.
            _thread.start_new_thread(_deliver, (received,))
            return
    _python_hook(unraisable)


def _deliver(signum: int) -> None:
    _thread.interrupt_main(signal.Signals(signum))


_python_hook: Callable[[Any], object] = sys.unraisablehook


def install() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt (main thread only, as Python requires).
    A signal the parent set to be ignored (a background job's SIGINT) stays ignored."""
    global _python_hook
    if threading.current_thread() is threading.main_thread():
        for sig in _EXIT_CODES:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _interrupt)
        if sys.unraisablehook is not _redeliver:
            _python_hook, sys.unraisablehook = sys.unraisablehook, _redeliver


def check() -> None:
    """Raise KeyboardInterrupt if a signal came and was swallowed on its way out: by a library's
    bare `except:` or `except BaseException`, or by a C function that clears every error
    (`PyObject_HasAttr`, a dict lookup's `__eq__`) while the handler ran. Called where
    start-up moves on to something long (after the imports, before a conversation), so that a
    Ctrl-C is never forgotten however it was lost (1 start in ~100 under load was)."""
    if received is not None and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


def exit_code() -> int:
    return _EXIT_CODES.get(received or signal.SIGINT, 130)


def message() -> str:
    return _MESSAGES.get(received or signal.SIGINT, "interrupted")


def caused_by_signal(e: BaseException) -> bool:
    """Whether `e` is the interruption itself, wrapped on its way out: by a native library
    (sphn, for one, turns the KeyboardInterrupt raised inside its Rust loop into its own
    exception with the Python error in its text), or by Python itself (a signal that lands
    while a class is created becomes "RuntimeError: Error calling __set_name__ ...", chained
    to the KeyboardInterrupt)."""
    if received is None:
        return False
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        if "KeyboardInterrupt" in f"{type(cause).__name__} {cause}":
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def finish(code: int) -> None:
    """Exit with `code`; a signal from now on (a slow shutdown) exits at once, quietly.

    After a signal, the exit skips the interpreter's own shutdown (once logs and streams are
    flushed): a KeyboardInterrupt that passed through a native library's embedded Python call
    (pyo3's `py.run`) marks CPython as killed by Ctrl-C, and its shutdown would then kill the
    process with SIGINT whatever exit code was decided. Everything of ours is closed by then.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe
            stream.flush()

    def now(signum: int, frame: FrameType | None) -> None:
        os._exit(_EXIT_CODES.get(signum, 130))

    if threading.current_thread() is threading.main_thread():
        for sig in _EXIT_CODES:
            signal.signal(sig, now)
    if received is not None:
        logging.shutdown()
        os._exit(code)
    sys.exit(code)
