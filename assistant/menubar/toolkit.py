"""The interface the menu is built through, so tests can replace rumps with a stand-in.

Callbacks take no arguments and are trusted never to raise (menu.py guards each one): a
toolkit just calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

Callback = Callable[[], None]


class MenuItem(Protocol):
    def set_title(self, title: str) -> None: ...

    def set_checked(self, checked: bool) -> None: ...

    def set_enabled(self, enabled: bool) -> None: ...

    def set_hidden(self, hidden: bool) -> None: ...


class Toolkit(Protocol):
    def item(self, title: str, callback: Callback | None = None) -> MenuItem:
        """A clickable item (disabled when `callback` is None)."""
        ...

    def submenu(self, title: str, children: Sequence[MenuItem]) -> MenuItem: ...

    def set_menu(self, entries: Sequence[MenuItem | None]) -> None:
        """The whole menu, top to bottom; None is a separator."""
        ...

    def set_title(self, title: str) -> None:
        """The text shown in the menu bar."""
        ...

    def every(self, seconds: float, callback: Callback) -> None:
        """Call `callback` on the UI thread every `seconds`, from when the app runs."""
        ...

    def notify(self, title: str, message: str) -> None: ...

    def set_hotkey(self, key_code: int, modifier_mask: int, callback: Callback) -> None:
        """Register a global shortcut (Carbon key code and modifier mask), replacing the one
        registered before; `callback` runs on the UI thread at each press. Raises on failure."""
        ...

    def clear_hotkey(self) -> None:
        """Unregister the global shortcut, if any."""
        ...

    def run(self) -> None:
        """Run the app until `quit`."""
        ...

    def quit(self) -> None: ...
