"""`assistant menubar`: one instance per user, the menu on rumps, run until Quit."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import sys
from collections.abc import Iterator
from typing import IO

from ..errors import AssistantError, PlatformError
from ..paths import data_dir

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

    with single_instance():
        toolkit = RumpsToolkit(APP_NAME)
        MenuController(toolkit).launch()
        toolkit.run()
