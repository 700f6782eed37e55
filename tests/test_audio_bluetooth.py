"""A Mac's devices without a Mac: a fake PortAudio (sounddevice) on the "Core Audio" host API
that fails the test if anything is opened or probed, and a fake CoreAudio transport lookup
with Bluetooth, built-in and USB devices."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from assistant.audio import devices as dev
from assistant.audio.device_watch import InUse, device_changes
from assistant.audio.devices import DeviceInfo, list_devices, open_rate
from assistant.audio.routing import choose_devices, choose_input
from assistant.cli.devices import register

MIC, SPEAKERS, AIRPODS, USB = "MacBook Pro Microphone", "MacBook Pro Speakers", "AirPods", "USB Mic"
TRANSPORTS = {MIC: "built-in", SPEAKERS: "built-in", AIRPODS: "bluetooth", USB: "usb"}


class FakeCoreAudioPortAudio:
    """sounddevice as it looks on a Mac, minus everything that would open a device."""

    def __init__(self, devices: list[tuple[str, int, int]], default: tuple[int, int]) -> None:
        self._devices = devices
        self.default = SimpleNamespace(device=default)

    def query_devices(self) -> list[dict[str, Any]]:
        return [
            {
                "index": i,
                "name": name,
                "hostapi": 0,
                "max_input_channels": ins,
                "max_output_channels": outs,
                "default_samplerate": 48000.0,
            }
            for i, (name, ins, outs) in enumerate(self._devices)
        ]

    def query_hostapis(self) -> list[dict[str, Any]]:
        return [{"name": "Core Audio"}]

    def _opens(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a device was opened (Pa_IsFormatSupported opens one on CoreAudio)")

    check_input_settings = check_output_settings = InputStream = OutputStream = _opens


def mac_with(default_in: str, default_out: str, *extra: str) -> list[DeviceInfo]:
    names = [MIC, SPEAKERS, AIRPODS, *extra]
    channels = {MIC: (1, 0), SPEAKERS: (0, 2), AIRPODS: (1, 2), USB: (1, 0)}
    sd = FakeCoreAudioPortAudio(
        [(n, *channels[n]) for n in names], (names.index(default_in), names.index(default_out))
    )
    return _listed(sd)


def _listed(sd: FakeCoreAudioPortAudio) -> list[DeviceInfo]:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(dev, "sounddevice", lambda: sd)
        return list_devices(transports=lambda: dict(TRANSPORTS))


@pytest.fixture
def airpods_mac(monkeypatch: pytest.MonkeyPatch) -> FakeCoreAudioPortAudio:
    """AirPods are the default input and output, as macOS makes them when they connect."""
    sd = FakeCoreAudioPortAudio([(MIC, 1, 0), (SPEAKERS, 0, 2), (AIRPODS, 1, 2)], (2, 2))
    monkeypatch.setattr(dev, "sounddevice", lambda: sd)
    monkeypatch.setattr("assistant.audio.coreaudio.transport_kinds", lambda: dict(TRANSPORTS))
    return sd


def test_devices_carry_their_coreaudio_transport(airpods_mac: FakeCoreAudioPortAudio) -> None:
    found = {d.name: d for d in list_devices()}
    assert found[AIRPODS].is_bluetooth and found[AIRPODS].is_default_input
    assert found[MIC].transport == "built-in" and not found[MIC].is_bluetooth


def test_a_failing_transport_lookup_leaves_the_devices_usable() -> None:
    sd = FakeCoreAudioPortAudio([(MIC, 1, 0)], (0, -1))

    def broken() -> dict[str, str]:
        raise OSError("CoreAudio refused")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(dev, "sounddevice", lambda: sd)
        (only,) = list_devices(transports=broken)
    assert only.name == MIC and only.transport is None


def test_nothing_is_opened_to_probe_rates_on_coreaudio(
    airpods_mac: FakeCoreAudioPortAudio,
) -> None:
    for d in list_devices():
        for kind in ("input", "output"):
            if d.has(kind):
                assert dev.supports_rate(d, kind)
                assert open_rate(d, kind) == 24000


def test_devices_command_lists_without_opening_anything(
    airpods_mac: FakeCoreAudioPortAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.console import console

    # Wide enough for every column: the shared console fixes its width when it is made, and
    # an earlier test in the same process may have made it under COLUMNS=80.
    monkeypatch.setattr(console, "_width", 200)
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "converted" in result.output and "bluetooth" in result.output
    assert "built-in" in result.output


def test_a_bluetooth_default_input_gives_way_to_the_built_in_microphone() -> None:
    devices = mac_with(AIRPODS, AIRPODS)
    choice, output = choose_devices((None, None), devices)
    assert output.name == AIRPODS  # Moshi still plays in the AirPods, in their music profile
    assert choice.device.name == MIC
    assert choice.message is not None and "\n" not in choice.message
    assert AIRPODS in choice.message and "--input-device" in choice.message


def test_a_bluetooth_microphone_with_speakers_also_gives_way() -> None:
    choice, output = choose_devices((None, None), mac_with(AIRPODS, SPEAKERS))
    assert (choice.device.name, output.name) == (MIC, SPEAKERS)


def test_the_users_choice_is_kept() -> None:
    choice, _ = choose_devices(("airpods", None), mac_with(AIRPODS, AIRPODS))
    assert choice.device.name == AIRPODS and choice.message is None


def test_a_wired_default_input_is_kept_with_a_bluetooth_output() -> None:
    choice, output = choose_devices((None, None), mac_with(USB, AIRPODS, USB))
    assert output.is_bluetooth and choice.device.name == USB and choice.message is None


def test_without_a_built_in_microphone_another_wired_one_is_taken() -> None:
    devices = [d for d in mac_with(AIRPODS, AIRPODS, USB) if d.name != MIC]
    choice = choose_input(None, None, devices)
    assert choice.device.name == USB


def test_a_bluetooth_microphone_alone_is_used_and_explained() -> None:
    devices = [d for d in mac_with(AIRPODS, AIRPODS) if d.name != MIC]
    choice = choose_input(None, None, devices)
    assert choice.device.name == AIRPODS
    assert choice.message is not None and "hands-free" in choice.message


def test_not_a_device_change_when_the_rule_picks_the_same_microphone() -> None:
    devices = mac_with(AIRPODS, AIRPODS)
    used = next(d for d in devices if d.name == MIC)
    assert device_changes([InUse("input", used)], devices) == []
    # Without the AirPods, the default input is the built-in one: still no change to report.
    assert device_changes([InUse("input", used)], mac_with(MIC, SPEAKERS)) == []
