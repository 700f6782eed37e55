"""Device listing and selection through real PortAudio (PulseAudio virtual devices on Linux)."""

from __future__ import annotations

import builtins
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from assistant.audio import devices as dev
from assistant.audio.devices import DeviceInfo, audio_error, find_device, list_devices, open_rate
from assistant.cli.devices import register
from assistant.errors import AudioError


def fake(index: int, name: str, inputs: int = 1, outputs: int = 1, **kw: object) -> DeviceInfo:
    return DeviceInfo(index, name, "Core Audio", inputs, outputs, 48000.0, **kw)  # type: ignore[arg-type]


MAC = [
    fake(0, "MacBook Pro Microphone", 1, 0, is_default_input=True),
    fake(1, "MacBook Pro Speakers", 0, 2, is_default_output=True),
    fake(2, "AirPods Pro", 1, 2),
    fake(3, "AirPods Pro (2)", 1, 2),
]


@pytest.fixture
def mac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "list_devices", lambda: list(MAC))


# --- selection rules (a fake device list shaped like a Mac's) --------------------------------


def test_default_index_and_name(mac: None) -> None:
    assert find_device(None, "input").index == 0
    assert find_device(None, "output").index == 1
    assert find_device(2, "output").name == "AirPods Pro"
    assert find_device("3", "input").index == 3
    assert find_device("macbook", "input").index == 0  # the speaker has no input channels
    assert find_device("MACBOOK PRO SPEAKERS", "output").index == 1
    assert find_device("airpods pro", "input").index == 2  # the exact name wins


def test_ambiguous_name_lists_the_candidates(mac: None) -> None:
    with pytest.raises(AudioError, match="several") as e:
        find_device("airpods", "output")
    assert "'AirPods Pro'" in str(e.value) and "'AirPods Pro (2)'" in str(e.value)


def test_missing_name_or_index_lists_what_exists(mac: None) -> None:
    with pytest.raises(AudioError, match="no input device matches 'usb'") as e:
        find_device("usb", "input")
    assert "MacBook Pro Microphone" in str(e.value)
    with pytest.raises(AudioError, match="no audio device #9"):
        find_device(9, "output")
    with pytest.raises(AudioError, match="has no input channels"):
        find_device(1, "input")


def test_no_devices_or_no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "list_devices", lambda: [])
    with pytest.raises(AudioError, match="no audio input device found"):
        find_device(None, "input")
    monkeypatch.setattr(dev, "list_devices", lambda: [fake(0, "USB Mic", 1, 0)])
    with pytest.raises(AudioError, match="no default input device"):
        find_device(None, "input")


def test_portaudio_missing_is_an_audio_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def failing(name: str, *args: Any, **kw: Any) -> object:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(AudioError, match="PortAudio is not installed: PortAudio library"):
        list_devices()


def test_portaudio_errors_become_one_line_messages() -> None:
    class PortAudioError(Exception):
        pass

    busy = audio_error(PortAudioError("Device unavailable", -9985), "input device #2 'USB'")
    assert str(busy).startswith("input device #2 'USB' is busy or unavailable")
    gone = audio_error(PortAudioError("Error querying device 7"), "output device #7")
    assert "not available (unplugged?)" in str(gone)
    other = audio_error(PortAudioError("Something odd", -9999), "starting")
    assert str(other) == "starting: Something odd"
    assert "\n" not in str(busy) + str(gone) + str(other)


# --- real PortAudio --------------------------------------------------------------------------


def test_lists_the_pulseaudio_devices_with_defaults(pulse: object) -> None:
    found = list_devices()
    names = [d.name for d in found]
    assert "pulse" in names and "default" in names
    default_in = find_device(None, "input")
    assert default_in.is_default_input and default_in.max_input_channels > 0
    assert find_device(None, "output").is_default_output
    assert all(d.hostapi for d in found)


def test_real_selection_by_name_index_ambiguity(pulse: object) -> None:
    by_name = find_device("puls", "input")
    assert by_name.name == "pulse"
    assert find_device(by_name.index, "output").name == "pulse"
    with pytest.raises(AudioError, match="several"):
        find_device("e", "output")  # "pulse" and "default"
    with pytest.raises(AudioError, match="no output device matches"):
        find_device("no such card", "output")


def test_24khz_is_native_on_the_virtual_devices(pulse: object) -> None:
    d = find_device(None, "input")
    assert dev.supports_rate(d, "input")
    assert open_rate(d, "input") == 24000
    assert open_rate(find_device(None, "output"), "output") == 24000


def test_open_rate_falls_back_to_the_default_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    alsa = DeviceInfo(0, "x", "ALSA", 1, 0, 48000.0)
    monkeypatch.setattr(dev, "supports_rate", lambda d, kind, rate=24000: rate == 48000)
    assert open_rate(alsa, "input") == 48000
    monkeypatch.setattr(dev, "supports_rate", lambda d, kind, rate=24000: False)
    with pytest.raises(AudioError, match="accepts neither 24000 Hz nor its default 48000 Hz"):
        open_rate(alsa, "input")


def test_devices_command_prints_a_table(pulse: object) -> None:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command, so `devices` stays a subcommand
    result = CliRunner().invoke(app, ["devices"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "pulse" in result.output and "default" in result.output
    assert "input, output" in result.output
    assert "yes" in result.output
