"""`assistant menubar`: one instance per user, the menu on rumps, run until Quit."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import signal
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from ..app_settings import APP_BUNDLE_ID, app_bundle
from ..errors import AssistantError, PlatformError
from ..paths import data_dir
from .launch_agent import menubar_log

if TYPE_CHECKING:
    from .menu import MenuController
    from .toolkit import Toolkit

QUIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)

NOT_MACOS = (
    "the menu bar app is macOS-only; on Linux run `assistant serve` and open the dashboard "
    "with `assistant ctl open`"
)


@contextlib.contextmanager
def single_instance() -> Iterator[IO[str]]:
    """Hold the menu bar's lock: a second app (login item plus a click) would add a second icon."""
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / "menubar.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise AssistantError("the menu bar app is already running") from None
    try:
        yield handle
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def run_menubar() -> None:
    """Show the menu-bar app until its Quit item (macOS with the `menubar` extra)."""
    if sys.platform != "darwin":
        raise PlatformError(NOT_MACOS)
    if importlib.util.find_spec("rumps") is None:
        raise PlatformError(
            "the menu bar app needs rumps, which is not installed",
            hint='install it with `pip install -e ".[menubar]"`',
        )
    from .menu import APP_NAME, MenuController
    from .rumps_toolkit import RumpsToolkit

    bundled = app_bundle() is not None
    if bundled:
        log_to_file()
    with single_instance():
        # As the app, notifications carry its identity; from a terminal there is none to take.
        toolkit = RumpsToolkit(APP_NAME, bundle_id=APP_BUNDLE_ID if bundled else None)
        run_app(MenuController(toolkit), toolkit)


def run_app(controller: MenuController, toolkit: Toolkit) -> None:
    """Launch the menu and run the toolkit until Quit; SIGTERM and SIGINT take Quit's path."""
    with quit_on_signals(controller):
        controller.launch()
        toolkit.run()


@contextlib.contextmanager
def quit_on_signals(controller: MenuController) -> Iterator[None]:
    """SIGTERM (the launcher forwards the app's) and SIGINT (Ctrl-C in a terminal) ask the
    menu to quit as its Quit item does: the service this app started is stopped, so nothing
    (~6 GB, the microphone) outlives the app. The handler only sets a flag: Python runs it
    between bytecodes on the main thread, which the UI's 0.1 s drain timer keeps visiting."""

    def handler(signum: int, frame: object) -> None:
        controller.request_quit()

    previous = {s: signal.signal(s, handler) for s in QUIT_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def log_to_file() -> None:
    """Opened from Finder or at login, the app's output goes nowhere: append it to the log."""
    if sys.stderr is not None and sys.stderr.isatty():
        return
    path = menubar_log()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for stream in (1, 2):
        os.dup2(fd, stream)
    os.close(fd)
