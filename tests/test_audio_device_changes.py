"""Devices that come and go, on a fake PortAudio that behaves like the real one: it lists the
system's devices (and its defaults) only when it is initialised from zero, the way PortAudio's
CoreAudio backend does at `import sounddevice`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from assistant.audio import devices as dev
from assistant.audio.device_watch import (
    DeviceChange,
    InUse,
    device_change,
    device_changes,
    explain_loss,
)
from assistant.audio.devices import DeviceInfo, find_device, rescan_devices
from assistant.audio.file_backend import FileAudio
from assistant.checkpoint.resolve import CheckpointSpec
from assistant.conversation import chat as chat_module
from assistant.conversation.chat import Chat, ChatSettings
from assistant.errors import AudioError

MIC, SPEAKERS, AIRPODS = "MacBook Pro Microphone", "MacBook Pro Speakers", "AirPods Pro"


@dataclass
class System:
    """What CoreAudio knows right now: devices (name -> in, out channels) and the defaults."""

    devices: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {MIC: (1, 0), SPEAKERS: (0, 2)}
    )
    default_input: str = MIC
    default_output: str = SPEAKERS

    def connect_airpods(self) -> None:  # macOS makes new headphones the default both ways
        self.devices[AIRPODS] = (1, 2)
        self.default_input = self.default_output = AIRPODS

    def disconnect_airpods(self) -> None:
        del self.devices[AIRPODS]
        self.default_input, self.default_output = MIC, SPEAKERS


class FakePortAudio:
    """The part of sounddevice 0.5 the assistant uses, over a snapshot taken at initialisation."""

    def __init__(self, system: System) -> None:
        self.system = system
        self._initialized = 0
        self.enumerations = 0
        self._snapshot: list[tuple[str, int, int]] = []
        self._defaults = (-1, -1)
        self._initialize()
        fake = self

        class Default:
            @property
            def device(self) -> tuple[int, int]:
                return fake._defaults

        self.default = Default()

    def _initialize(self) -> None:
        if self._initialized == 0:  # PortAudio enumerates only from zero
            self.enumerations += 1
            self._snapshot = [(n, i, o) for n, (i, o) in self.system.devices.items()]
            names = [n for n, _, _ in self._snapshot]
            self._defaults = (
                names.index(self.system.default_input),
                names.index(self.system.default_output),
            )
        self._initialized += 1

    def _terminate(self) -> None:
        assert self._initialized > 0, "terminated more often than initialised"
        self._initialized -= 1

    def query_devices(self) -> list[dict[str, Any]]:
        return [
            {
                "index": i,
                "name": n,
                "hostapi": 0,
                "max_input_channels": ins,
                "max_output_channels": outs,
                "default_samplerate": 48000.0,
            }
            for i, (n, ins, outs) in enumerate(self._snapshot)
        ]

    def query_hostapis(self) -> list[dict[str, Any]]:
        return [{"name": "Core Audio"}]


@pytest.fixture
def system(monkeypatch: pytest.MonkeyPatch) -> tuple[System, FakePortAudio]:
    sys_ = System()
    pa = FakePortAudio(sys_)
    monkeypatch.setattr(dev, "sounddevice", lambda: pa)
    # Already imported (it enumerated at construction), whatever tests ran before in this process.
    monkeypatch.setitem(sys.modules, "sounddevice", pa)
    return sys_, pa


def info(index: int, name: str, inputs: int = 1, outputs: int = 0) -> DeviceInfo:
    return DeviceInfo(index, name, "Core Audio", inputs, outputs, 48000.0)


# --- the rescan ----------------------------------------------------------------------------------
def test_without_a_rescan_a_new_default_is_not_seen(system) -> None:
    sys_, _ = system
    sys_.connect_airpods()
    assert find_device(None, "input").name == MIC  # PortAudio's list from start-up
    rescan_devices()
    assert find_device(None, "input").name == AIRPODS
    assert find_device(None, "output").name == AIRPODS
    sys_.disconnect_airpods()
    rescan_devices()
    assert find_device(None, "output").name == SPEAKERS
    with pytest.raises(AudioError, match="no input device matches 'airpods'"):
        find_device("airpods", "input")


def test_rescan_undoes_every_initialisation(system) -> None:
    # Initialised twice (e.g. a second sounddevice user): one terminate would not re-enumerate.
    sys_, pa = system
    pa._initialize()
    sys_.connect_airpods()
    rescan_devices()
    assert pa._initialized == 2 and pa.enumerations == 2
    assert find_device(None, "input").name == AIRPODS


def test_a_failing_rescan_is_one_line(system, monkeypatch: pytest.MonkeyPatch) -> None:
    _, pa = system

    def broken() -> None:
        raise RuntimeError("Error initializing PortAudio", -9999)

    monkeypatch.setattr(pa, "_initialize", broken)
    with pytest.raises(AudioError, match="re-initialising PortAudio"):
        rescan_devices()


# --- what became of the devices in use -----------------------------------------------------------
def test_a_default_device_that_disconnected_names_the_new_one() -> None:
    airpods = info(2, AIRPODS, 1, 2)
    fresh = [
        DeviceInfo(0, MIC, "Core Audio", 1, 0, 48000.0, is_default_input=True),
        DeviceInfo(1, SPEAKERS, "Core Audio", 0, 2, 48000.0, is_default_output=True),
    ]
    change = device_change(InUse("input", airpods), fresh)
    assert change == DeviceChange("input", airpods, gone=True, now=fresh[0])
    assert change.message == (
        "the input device 'AirPods Pro' disconnected; the next conversation uses "
        "'MacBook Pro Microphone'"
    )


def test_a_named_device_that_disconnected_says_how_to_pick_another() -> None:
    usb = info(3, "USB Audio", 0, 2)
    fresh = [DeviceInfo(1, SPEAKERS, "Core Audio", 0, 2, 48000.0, is_default_output=True)]
    change = device_change(InUse("output", usb, "USB"), fresh)
    assert change is not None and change.gone and change.now is None
    assert change.message == (
        "the output device 'USB Audio' disconnected; connect it again or pick another with "
        "--output-device (see `assistant devices`)"
    )


def test_a_new_default_while_the_old_one_stays() -> None:
    mic = info(0, MIC)
    fresh = [
        info(0, MIC),
        DeviceInfo(1, AIRPODS, "Core Audio", 1, 2, 48000.0, is_default_input=True),
    ]
    change = device_change(InUse("input", mic), fresh)
    assert change is not None and not change.gone
    assert change.message == (
        "the default input device is now 'AirPods Pro' (was 'MacBook Pro Microphone'); "
        "the next conversation uses it"
    )
    # Asked for by name, it is still there: nothing to say.
    assert device_change(InUse("input", mic, "macbook"), fresh) is None


def test_matched_by_name_not_by_index() -> None:
    # Re-enumerating shifts indices: the same device at another index is the same device.
    mic = info(2, MIC)
    fresh = [
        info(0, "Studio Display Microphone"),
        DeviceInfo(1, MIC, "Core Audio", 1, 0, 48000.0, is_default_input=True),
    ]
    assert device_changes([InUse("input", mic)], fresh) == []


def test_explain_loss_only_for_audio_errors_and_never_raises() -> None:
    airpods = info(2, AIRPODS, 1, 2)
    in_use = [InUse("input", airpods), InUse("output", airpods)]
    fresh = [
        DeviceInfo(0, MIC, "Core Audio", 1, 0, 48000.0, is_default_input=True),
        DeviceInfo(1, SPEAKERS, "Core Audio", 0, 2, 48000.0, is_default_output=True),
    ]
    stalled = AudioError("the input stream stopped delivering audio")
    rescans: list[int] = []
    explained = explain_loss(
        stalled, in_use, rescan=lambda: rescans.append(1), listing=lambda: fresh
    )
    assert isinstance(explained, AudioError) and rescans == [1]
    assert str(explained) == (
        "the input device 'AirPods Pro' disconnected; the next conversation uses "
        "'MacBook Pro Microphone'; the output device 'AirPods Pro' disconnected; the next "
        "conversation uses 'MacBook Pro Speakers' (the conversation ended: the input stream "
        "stopped delivering audio)"
    )
    other = RuntimeError("codec failed")
    assert explain_loss(other, in_use, rescan=lambda: None, listing=lambda: fresh) is other

    def broken() -> None:
        raise AudioError("re-initialising PortAudio: boom")

    assert explain_loss(stalled, in_use, rescan=broken, listing=lambda: fresh) is stalled
    still_there = [DeviceInfo(0, AIRPODS, "Core Audio", 1, 2, 48000.0, True, True)]
    assert explain_loss(stalled, in_use, rescan=lambda: None, listing=lambda: still_there) is (
        stalled
    )


# --- a conversation through the fake device layer ------------------------------------------------
class DeviceAudio(FileAudio):
    """Stands in for DuplexAudio: opens the devices PortAudio lists (through find_device, like
    DuplexAudio) and feeds silence; `unplug` makes its input stream die after a few frames."""

    unplug: ClassVar[System | None] = None
    opened: ClassVar[list[tuple[str, str]]] = []

    def __init__(
        self, input_device: Any = None, output_device: Any = None, profile: Any = None
    ) -> None:
        # 0.16 s of silence and a 0.48 s tail: a conversation of 8 frames that ends by itself.
        super().__init__(np.zeros(3840, np.float32), realtime=False, tail_s=0.48)
        self._specs = (input_device, output_device)
        self.input_device: DeviceInfo | None = None
        self.output_device: DeviceInfo | None = None
        self._reads = 0

    def start(self) -> DeviceAudio:
        self.input_device = find_device(self._specs[0], "input")
        self.output_device = find_device(self._specs[1], "output")
        DeviceAudio.opened.append((self.input_device.name, self.output_device.name))
        super().start()
        return self

    def read_frame(self, timeout: float | None = 1.0) -> Any:
        self._reads += 1
        if DeviceAudio.unplug is not None and self._reads > 5:
            DeviceAudio.unplug.disconnect_airpods()
            DeviceAudio.unplug = None
            raise AudioError("the input stream stopped (device unplugged?)")
        return super().read_frame(timeout)


@pytest.mark.slow  # three short conversations through the full-size Mimi codec
def test_a_chat_follows_devices_between_conversations_and_explains_a_loss(
    system, monkeypatch: pytest.MonkeyPatch, tiny_checkpoint
) -> None:
    sys_, pa = system
    monkeypatch.setattr(chat_module, "DuplexAudio", DeviceAudio)
    DeviceAudio.opened = []
    settings = ChatSettings(
        checkpoint=CheckpointSpec(target=str(tiny_checkpoint("bf16"))),
        echo_cancellation=False,
    )
    chat = Chat(settings)
    chat.prepare()
    first = chat.run()
    assert first.error is None
    # AirPods connect between conversations: the next one opens them, without a restart.
    sys_.connect_airpods()
    DeviceAudio.unplug = sys_  # ... and they disconnect during it
    second = chat.run()
    assert DeviceAudio.opened == [(MIC, SPEAKERS), (AIRPODS, AIRPODS)]
    assert isinstance(second.error, AudioError)
    message = str(second.error)
    assert message.startswith(
        "the input device 'AirPods Pro' disconnected; the next conversation uses "
        "'MacBook Pro Microphone'; the output device 'AirPods Pro' disconnected"
    )
    assert "(the conversation ended: the input stream stopped (device unplugged?))" in message
    assert Path(second.session, "summary.json").is_file()  # the session was saved all the same
    third = chat.run()
    assert third.error is None and DeviceAudio.opened[-1] == (MIC, SPEAKERS)
    assert pa.enumerations == 1 + 3 + 1  # start-up, before each conversation, after the loss
