"""Stand-ins for the menu-bar tests: a toolkit that records the menu (for rumps), a scripted
service client, a fake `assistant serve` process, and the controller wired to them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import ServiceNotRunningError, ServiceRefusedError
from assistant.menubar.background import InlineCalls
from assistant.menubar.launch_agent import LaunchAgent
from assistant.menubar.menu import MenuController
from assistant.menubar.service_process import ServiceLauncher
from assistant.service.info import ServiceInfo


# --- the stand-in toolkit ------------------------------------------------------------------------
@dataclass
class FakeItem:
    title: str
    callback: Callable[[], None] | None = None
    enabled: bool = True
    checked: bool = False
    hidden: bool = False
    children: list[FakeItem] = field(default_factory=list)

    def set_title(self, title: str) -> None:
        self.title = title

    def set_checked(self, checked: bool) -> None:
        self.checked = checked

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled

    def set_hidden(self, hidden: bool) -> None:
        self.hidden = hidden

    def click(self) -> None:
        # What a user can do: a greyed-out or hidden item cannot be clicked.
        assert self.callback is not None and self.enabled and not self.hidden, self
        self.callback()


class FakeToolkit:
    def __init__(self) -> None:
        self.title = ""
        self.menu: list[FakeItem | None] = []
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.notifications: list[tuple[str, str]] = []
        self.quit_called = False
        self.hotkey: tuple[int, int, Callable[[], None]] | None = None  # code, mask, callback
        self.refuse_hotkey: str | None = None  # set: registering fails with this reason

    def item(self, title: str, callback: Callable[[], None] | None = None) -> FakeItem:
        return FakeItem(title, callback, enabled=callback is not None)

    # (Any: the items are the FakeItems this toolkit made, where the protocol says MenuItem.)
    def submenu(self, title: str, children: Sequence[Any]) -> FakeItem:
        return FakeItem(title, children=list(children))

    def set_menu(self, entries: Sequence[Any]) -> None:
        self.menu = list(entries)

    def set_title(self, title: str) -> None:
        self.title = title

    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        self.timers.append((seconds, callback))

    def notify(self, title: str, message: str) -> None:
        self.notifications.append((title, message))

    def set_hotkey(self, key_code: int, modifier_mask: int, callback: Callable[[], None]) -> None:
        if self.refuse_hotkey is not None:
            raise RuntimeError(self.refuse_hotkey)
        self.hotkey = (key_code, modifier_mask, callback)

    def clear_hotkey(self) -> None:
        self.hotkey = None

    def run(self) -> None:
        raise AssertionError("the tests drive the timer themselves")

    def quit(self) -> None:
        self.quit_called = True

    # --- for the tests
    def press_hotkey(self) -> None:
        """The global shortcut pressed, whatever app is in front."""
        assert self.hotkey is not None, "no shortcut registered"
        self.hotkey[2]()

    def tick(self) -> None:
        for _, callback in self.timers:
            callback()

    def find(self, *path: str) -> FakeItem:
        entries: Sequence[FakeItem | None] = self.menu
        item = None
        for title in path:
            item = next(e for e in entries if e is not None and e.title == title)
            entries = item.children
        assert item is not None
        return item

    @property
    def state_line(self) -> str:
        assert self.menu[0] is not None
        return self.menu[0].title

    def structure(self) -> list[Any]:
        def describe(e: FakeItem | None) -> Any:
            if e is None:
                return "---"
            return (e.title, [c.title for c in e.children]) if e.children else e.title

        return [describe(e) for e in self.menu]


# --- the scripted service ------------------------------------------------------------------------
class FakeClient:
    def __init__(self, pid: int = 4242, **status: Any) -> None:
        self.info = ServiceInfo(pid, 8737, "secret-token")
        self.state: dict[str, Any] = {
            "state": "idle",
            "voice": "moshiko",
            "quant": "q4",
            "checkpoint": None,
            "muted": False,
            "listen_first": False,
            "model": None,
            "error": None,
            "session": None,
            "conversations": 0,
            "max_delay_ms": 500.0,
        } | status
        self.metrics: dict[str, Any] | None = None
        self.calls: list[tuple[Any, ...]] = []
        self.refuse: dict[str, str] = {}
        self.fail: dict[str, Exception] = {}
        self.alive = True

    @property
    def actions(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] not in ("status", "live")]

    def _call(self, name: str, *args: Any, **changes: Any) -> dict[str, Any]:
        self.calls.append((name, *args))
        if not self.alive:
            raise ServiceNotRunningError(f"no answer from the assistant service at {self.info.url}")
        if name in self.fail:
            raise self.fail[name]
        if name in self.refuse:
            raise ServiceRefusedError(f"the service refused: {self.refuse[name]}")
        self.state.update(changes)
        return dict(self.state)

    def status(self) -> dict[str, Any]:
        return self._call("status")

    def live(self) -> dict[str, Any]:
        return {"status": self._call("live"), "metrics": self.metrics, "transcript": ""}

    def start(self) -> dict[str, Any]:
        return self._call("start", state="listening")

    def stop(self) -> dict[str, Any]:
        return self._call("stop", state="idle")

    def mute(self, muted: bool) -> dict[str, Any]:
        return self._call("mute", muted, muted=muted)

    def listen_first(self, on: bool) -> dict[str, Any]:
        return self._call("listen_first", on, listen_first=on)

    def switch(
        self, voice: str | None = None, quant: str | None = None, checkpoint: str | None = None
    ) -> dict[str, Any]:
        changes = {k: v for k, v in (("voice", voice), ("quant", quant)) if v}
        return self._call("switch", voice, quant, **changes)

    def quit(self) -> dict[str, Any]:
        return self._call("quit")


def metrics(p50: float = 52.4, count: int = 40, last: float | None = 55.0) -> dict[str, Any]:
    window = {"count": count, "mean": p50, "p50": p50, "p95": p50 + 9, "p99": p50 + 12, "max": 90}
    step = {"last": last, "window": window, "session": window}
    return {"stages": {"step": step}, "real_time_factor": 0.65, "frames": {"finished": count}}


class FakePopen:
    """`assistant serve` as started by the menu bar: records how, exits when told to."""

    def __init__(self, args: list[str], **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.pid = 777
        self.returncode: int | None = None
        self.terminated = False

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.terminated = True
        self.returncode = -15


class Harness:
    """The controller on the stand-in toolkit, with a service that is there or not."""

    def __init__(self, home: Path, client: FakeClient | None, app: Path | None = None) -> None:
        self.tk = FakeToolkit()
        self.client = client
        self.now = 0.0
        self.launcher = ServiceLauncher(self.connect, clock=lambda: self.now, timeout_s=30)
        self.agent = LaunchAgent(home=home, app=app)  # app: run as "Moshi Assistant.app"
        # Calls made at once, so each step of a test sees its effect (the threaded version is
        # tested on its own in test_menubar_threads.py).
        self.controller = MenuController(
            self.tk,
            connect=self.connect,
            launcher=self.launcher,
            agent=self.agent,
            calls=InlineCalls(),
        )
        self.controller.launch()

    def connect(self) -> FakeClient:
        if self.client is None:
            raise ServiceNotRunningError("the assistant service is not running")
        return self.client
