"""The Toolkit on rumps (macOS only, `pip install -e ".[menubar]"`).

Thin on purpose: it cannot run off a Mac, so every decision lives in menu.py, which the tests
drive through a stand-in. Everything here is a direct rumps (or AppKit) call.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import rumps

from .toolkit import Callback


def adopt_identity(name: str, bundle_id: str) -> None:
    """Run by the app's launcher, this Python is a child without a bundle of its own: give its
    main bundle the app's identifier and name, before rumps sets up the notification centre, so
    notifications come from "Moshi Assistant" (the identifier LaunchServices knows from the app)
    rather than from Python or, through AppleScript, Script Editor."""
    try:
        from Foundation import NSBundle
    except ImportError:
        return
    info = NSBundle.mainBundle().infoDictionary()
    if info is not None:
        info["CFBundleIdentifier"] = bundle_id
        info["CFBundleName"] = name


class RumpsItem:
    def __init__(self, title: str, callback: Callback | None = None) -> None:
        self._callback = callback
        self.native = rumps.MenuItem(title, callback=self._clicked if callback else None)

    def _clicked(self, _sender: object) -> None:
        if self._callback is not None:
            self._callback()

    def set_title(self, title: str) -> None:
        if self.native.title != title:
            self.native.title = title

    def set_checked(self, checked: bool) -> None:
        self.native.state = int(checked)

    def set_enabled(self, enabled: bool) -> None:
        # rumps greys out an item that has no callback (the NSMenu auto-enables the others).
        self.native.set_callback(self._clicked if enabled and self._callback else None)

    def set_hidden(self, hidden: bool) -> None:
        self.native._menuitem.setHidden_(hidden)  # rumps has no API for it: the NSMenuItem's


class RumpsToolkit:
    def __init__(self, name: str, bundle_id: str | None = None) -> None:
        self.name = name
        if bundle_id is not None:
            adopt_identity(name, bundle_id)
        self.app = rumps.App(name, title=name, quit_button=None)  # the menu has its own Quit
        self._timers: list[rumps.Timer] = []  # rumps keeps timers weakly
        self._hotkey: Any = None  # quickmachotkey's registered handler

    def item(self, title: str, callback: Callback | None = None) -> RumpsItem:
        return RumpsItem(title, callback)

    def submenu(self, title: str, children: Sequence[RumpsItem]) -> RumpsItem:
        parent = RumpsItem(title)
        for child in children:
            parent.native.add(child.native)
        return parent

    def set_menu(self, entries: Sequence[RumpsItem | None]) -> None:
        self.app.menu = [None if entry is None else entry.native for entry in entries]

    def set_title(self, title: str) -> None:
        if self.app.title != title:
            self.app.title = title

    def every(self, seconds: float, callback: Callback) -> None:
        timer = rumps.Timer(lambda _timer: callback(), seconds)
        timer.start()
        self._timers.append(timer)
        try:  # also while the menu is open (its event-tracking mode), so the state line moves
            from Foundation import NSRunLoop, NSRunLoopCommonModes

            NSRunLoop.currentRunLoop().addTimer_forMode_(timer._nstimer, NSRunLoopCommonModes)
        except (ImportError, AttributeError):
            pass

    def notify(self, title: str, message: str) -> None:
        try:
            rumps.notification(self.name, title, message)
        except RuntimeError:
            # No notification center without a bundle identifier (a bare venv python):
            # AppleScript can still post one.
            post = (
                "display notification (item 3 of argv) with title (item 1 of argv) "
                "subtitle (item 2 of argv)"
            )
            script = ["-e", "on run argv", "-e", post, "-e", "end run"]
            subprocess.run(
                ["osascript", *script, self.name, title, message],
                capture_output=True,
                timeout=10,
                check=False,
            )
        print(f"{self.name}: {title}: {message}", file=sys.stderr)  # and the log keeps it

    def set_hotkey(self, key_code: int, modifier_mask: int, callback: Callback) -> None:
        """Carbon's RegisterEventHotKey through quickmachotkey (no Accessibility permission):
        its handler sits on the event dispatcher that rumps' NSApplication run loop drains,
        so `callback` runs on the main thread."""
        try:
            from quickmachotkey import quickHotKey
        except ImportError:
            raise RuntimeError(
                'the mute shortcut needs quickmachotkey: pip install -e ".[menubar]"'
            ) from None
        self.clear_hotkey()

        def pressed() -> None:
            callback()

        self._hotkey = quickHotKey(virtualKey=key_code, modifierMask=modifier_mask)(pressed)

    def clear_hotkey(self) -> None:
        if self._hotkey is not None:
            self._hotkey.unregister()
            self._hotkey = None

    def run(self) -> None:
        try:  # a menu-bar app: no Dock icon, even when not started from the app bundle
            from AppKit import NSApplication, NSApplicationActivationPolicyAccessory

            NSApplication.sharedApplication().setActivationPolicy_(
                NSApplicationActivationPolicyAccessory
            )
        except ImportError:
            pass
        self.app.run()

    def quit(self) -> None:
        rumps.quit_application()
