"""The menu bar never waits on the service on its UI thread: every call to the service goes to
a worker thread and comes back through `drain()` (background.py). Here with the real worker
and a service that answers slowly, as one busy loading a model does."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import ServiceNotRunningError
from assistant.menubar.background import BackgroundCalls
from assistant.menubar.launch_agent import LaunchAgent
from assistant.menubar.menu import MenuController
from assistant.menubar.service_process import ServiceLauncher
from tests.support.menubar_fakes import FakeClient, FakePopen, FakeToolkit

SLOW_S = 3.0  # a service's answer while it is busy (the client's timeout is 5 s)
UI_BUDGET_S = 0.1  # what a timer or a click may take on the UI thread


class SlowClient(FakeClient):
    """A scripted service that answers only when released, and notes the thread of each call."""

    def __init__(self, **status: Any) -> None:
        super().__init__(**status)
        self.threads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()

    def _call(self, name: str, *args: Any, **changes: Any) -> dict[str, Any]:
        self.threads.append(threading.current_thread().name)
        if not self.gate.wait(SLOW_S * 3):
            raise AssertionError("never released")
        return super()._call(name, *args, **changes)


@pytest.fixture
def app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[MenuController, FakeToolkit, SlowClient]:
    # Never a real `assistant serve`: the service here is the scripted one.
    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    client = SlowClient()
    tk = FakeToolkit()
    controller = MenuController(
        tk,
        connect=lambda: client,
        launcher=ServiceLauncher(lambda: client),
        agent=LaunchAgent(home=tmp_path, app=None),
        calls=BackgroundCalls(),
    )
    return controller, tk, client


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def drain_until(controller: MenuController, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SLOW_S * 3
    while not condition():
        assert time.monotonic() < deadline, "the answer never came back"
        controller.drain()
        time.sleep(0.01)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SLOW_S
    while not condition():
        assert time.monotonic() < deadline, "it never happened"
        time.sleep(0.001)


def test_a_slow_service_never_blocks_the_ui_thread(app) -> None:
    controller, tk, client = app
    client.gate.clear()  # the service takes its time from now on
    assert timed(controller.launch) < UI_BUDGET_S
    assert tk.title == "Moshi ⊘"  # nothing known yet
    # The timer fires while the first call waits: it neither blocks nor piles up polls.
    for _ in range(5):
        assert timed(controller.tick) < UI_BUDGET_S
    assert controller.calls.pending == 1
    # A click while the service is slow: back at once; the start waits for the answer.
    assert timed(tk.find("Start conversation").click) < UI_BUDGET_S
    wait_until(lambda: client.threads == ["menubar-calls"])  # the look is with the service
    controller.drain()
    assert tk.title == "Moshi ⊘"  # still nothing back
    assert client.threads == ["menubar-calls"]  # and the start has not gone out
    client.gate.set()
    drain_until(controller, lambda: tk.title.startswith("Moshi ●"))
    assert [c[0] for c in client.calls] == ["status", "live", "start"]


def test_no_call_to_the_service_is_made_on_the_ui_thread(app) -> None:
    controller, tk, client = app
    ui = threading.current_thread().name
    controller.launch()
    drain_until(controller, lambda: tk.title == "Moshi ○")
    steps: list[Callable[[], None]] = [
        tk.find("Start conversation").click,
        tk.find("Mute microphone (⌃⌥M)").click,
        tk.find("Quantization", "q8").click,
        tk.find("Stop conversation").click,
    ]
    for step in steps:
        controller.tick()
        step()
        drain_until(controller, lambda: controller.calls.pending == 0)
    assert [c[0] for c in client.actions] == ["start", "mute", "switch", "stop"]
    assert client.threads and ui not in client.threads
    assert set(client.threads) == {"menubar-calls"}
    assert tk.notifications == []


def test_quit_waits_for_the_service_off_the_ui_thread(app) -> None:
    controller, tk, client = app
    controller.launch()
    drain_until(controller, lambda: tk.title == "Moshi ○")
    controller.owned = True  # as if this app had started the service
    client.gate.clear()
    assert timed(tk.find("Quit Moshi Assistant").click) < UI_BUDGET_S
    assert not tk.quit_called  # the service is told first
    client.gate.set()
    drain_until(controller, lambda: tk.quit_called)
    assert client.actions == [("quit",)]


def test_a_failed_call_is_a_notification_on_the_ui_thread(app) -> None:
    controller, tk, client = app
    controller.launch()
    drain_until(controller, lambda: tk.title == "Moshi ○")
    client.refuse["switch"] = "cannot switch: model.q8.safetensors is not downloaded"
    tk.find("Quantization", "q8").click()
    drain_until(controller, lambda: bool(tk.notifications))
    assert tk.notifications == [
        (
            "Could not switch to q8",
            "the service refused: cannot switch: model.q8.safetensors is not downloaded",
        )
    ]
    assert tk.find("Quantization", "q4").checked


def test_start_while_looking_for_the_service_starts_exactly_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[FakePopen] = []

    def popen(args: list[str], **kwargs: Any) -> FakePopen:
        spawned.append(FakePopen(args, **kwargs))
        return spawned[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    gate = threading.Event()

    def connect() -> FakeClient:
        gate.wait(SLOW_S * 3)  # finding out that no service runs takes a while
        raise ServiceNotRunningError("the assistant service is not running")

    tk = FakeToolkit()
    controller = MenuController(
        tk,
        connect=connect,
        launcher=ServiceLauncher(connect),
        agent=LaunchAgent(home=tmp_path, app=None),
        calls=BackgroundCalls(),
    )
    controller.launch()
    tk.find("Start conversation").click()
    assert spawned == []  # not before the look says none runs
    gate.set()
    drain_until(controller, lambda: len(spawned) == 1)
    assert controller.start_pending and tk.state_line.endswith("starts when ready")
    controller.tick()
    drain_until(controller, lambda: controller.calls.pending == 0)  # whatever it asked, answered
    assert len(spawned) == 1


def test_the_mute_shortcut_shows_at_once_while_the_service_answers(app) -> None:
    """Pressed anywhere (the global shortcut), muting shows in the menu-bar title and the
    menu at once, before the busy service has answered, and stays when it has."""
    controller, tk, client = app
    controller.launch()
    drain_until(controller, lambda: tk.title == "Moshi ○")
    client.gate.clear()
    assert timed(tk.press_hotkey) < UI_BUDGET_S
    assert tk.title == "Moshi ○ 🔇" and tk.find("Mute microphone (⌃⌥M)").checked
    client.gate.set()
    drain_until(controller, lambda: ("mute", True) in client.actions)
    controller.drain()
    assert tk.title == "Moshi ○ 🔇" and client.state["muted"] is True
