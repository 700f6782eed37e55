"""The service's controller with stand-in chats (their model an object a weak reference can
watch): switching models frees the old one before the new one is built, and a conversation's
warnings reach the status.

Two models at once may not fit (q4 + q8 = 13 GB on a 16 GB Mac), so the controller must hold
no reference to the old model, not even in a local of the conversation thread, when it builds
the next.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistant.checkpoint.resolve import CheckpointSpec
from assistant.conversation.chat import ChatSettings
from assistant.service.controller import Controller


class Model:
    """Stands in for the MLX model: what must be gone before the next is built."""


@dataclass
class Outcome:
    session: Path
    error: BaseException | None
    loaded: Any  # like ChatOutcome.loaded: a reference to the model


class FakeChat:
    def __init__(self, settings: ChatSettings, events: Any = None) -> None:
        self.settings = settings
        self.model: Model | None = None
        self.card = None
        self.events = events
        self.metrics: Any = None
        self.running = threading.Event()
        self._stop = threading.Event()
        self.warn: list[str] = []  # what the conversation's loop will warn about

    def prepare(self) -> None:
        self.model = Model()

    def set_muted(self, muted: bool) -> None:
        pass

    def run(self, on_ready: Callable[[], None] | None = None) -> Outcome:
        for warning in self.warn:
            self.events.on_warning(warning)
        self.running.set()
        self._stop.wait(30)
        self.running.clear()
        return Outcome(Path("session"), None, loaded=self.model)

    def stop(self) -> None:
        self._stop.set()


class Builds:
    """The chat factory: records, at each build, whether earlier models were still alive. It
    keeps only weak references itself (so does the test)."""

    def __init__(self) -> None:
        self.chats: list[weakref.ref[FakeChat]] = []
        self.models: list[weakref.ref[Model]] = []
        self.alive_at_build: list[list[bool]] = []

    def __call__(self, settings: ChatSettings, events: Any = None) -> FakeChat:
        self.alive_at_build.append([ref() is not None for ref in self.models])
        chat = FakeChat(settings, events)
        chat.prepare = self._preparer(weakref.ref(chat))  # type: ignore[method-assign]
        self.chats.append(weakref.ref(chat))
        return chat

    def _preparer(self, ref: weakref.ref[FakeChat]) -> Callable[[], None]:
        def prepare() -> None:
            chat = ref()
            assert chat is not None
            FakeChat.prepare(chat)
            assert chat.model is not None
            self.models.append(weakref.ref(chat.model))

        return prepare

    def talking(self, count: int) -> bool:
        """`count` chats were built and the latest is in its conversation."""
        chat = self.chats[-1]() if len(self.chats) == count else None
        return chat is not None and chat.running.is_set()


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def controller(tiny_checkpoint) -> Iterator[tuple[Controller, Builds]]:
    builds = Builds()
    settings = ChatSettings(checkpoint=CheckpointSpec(target=str(tiny_checkpoint("q4"))))
    ctl = Controller(settings, chat_factory=builds)  # type: ignore[arg-type]
    yield ctl, builds
    ctl.shutdown()


def test_switch_while_talking_frees_the_old_model_before_building_the_new(
    controller: tuple[Controller, Builds], tiny_checkpoint
) -> None:
    ctl, builds = controller
    ctl.start()
    wait_for(lambda: builds.talking(1), "the first conversation")
    ctl.switch(None, None, str(tiny_checkpoint("q8")))
    wait_for(lambda: builds.talking(2), "the restart")
    # The old model was already unreachable when the new chat was made.
    assert builds.alive_at_build == [[], [False]]
    assert builds.chats[0]() is None
    assert ctl.state().value in ("listening", "speaking") and ctl.conversations == 2
    ctl.stop()
    wait_for(lambda: ctl.state().value == "idle", "idle")


def test_switch_while_idle_frees_the_old_model_first(
    controller: tuple[Controller, Builds], tiny_checkpoint
) -> None:
    ctl, builds = controller
    ctl.load()
    wait_for(lambda: builds.models and ctl.state().value == "idle", "the first model")
    ctl.switch(None, None, str(tiny_checkpoint("q8")))
    wait_for(lambda: len(builds.models) == 2 and ctl.state().value == "idle", "the second model")
    assert builds.alive_at_build == [[], [False]]


def test_the_service_stays_busy_between_the_two_conversations(
    controller: tuple[Controller, Builds], tiny_checkpoint
) -> None:
    # Between the old conversation and the new one the service stays busy: a start in that
    # window would otherwise open a second conversation thread.
    ctl, builds = controller
    ctl.start()
    wait_for(lambda: builds.talking(1), "the first conversation")
    ctl.switch(None, None, str(tiny_checkpoint("q8")))
    states = set()
    deadline = time.monotonic() + 20
    while not builds.talking(2):
        states.add(ctl.state().value)
        assert time.monotonic() < deadline, "the restart did not come"
        time.sleep(0.001)
    assert "idle" not in states and "error" not in states


def test_a_conversations_warnings_reach_the_status(controller: tuple[Controller, Builds]) -> None:
    ctl, builds = controller
    silent = "the microphone gave only digital silence for 3.0 s; ... allow Moshi Assistant"
    ctl.load()
    wait_for(lambda: builds.chats and ctl.state().value == "idle", "the model")
    chat = builds.chats[0]()
    assert chat is not None
    chat.warn = [silent, silent]
    del chat
    ctl.start()
    wait_for(lambda: builds.talking(1), "the conversation")
    assert ctl.status()["warnings"] == [silent]  # once, however often the loop says it
    ctl.stop()
    wait_for(lambda: ctl.state().value == "idle", "idle")
    assert ctl.status()["warnings"] == [silent]  # kept until the next conversation
