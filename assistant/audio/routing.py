"""Which microphone to open when a Bluetooth headset is around.

Opening a Bluetooth headset's microphone (AirPods) switches it from its music profile to the
hands-free one: Moshi's voice drops to telephone quality, and the switch can stall the first
second. So when the system's default input is a Bluetooth device, or the output is one, and the
user named no input, the built-in microphone (else another wired one) is used and the user is
told in one line; `--input-device` with the headset's name overrides it. A non-Bluetooth
default input is kept as it is: it does not touch the headset's profile.

Pure: decided on DeviceInfo lists (their `transport` read from CoreAudio by devices.py), so
the tests pass fake lists of Bluetooth and built-in devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .devices import DeviceInfo, find_device

# Preferred stand-ins for a Bluetooth microphone, best first.
WIRED_ORDER = ("built-in", "usb", "thunderbolt", "pci", "firewire")


@dataclass(frozen=True)
class InputChoice:
    device: DeviceInfo
    message: str | None = None  # one line for the user when the default was not taken


def choose_input(
    spec: str | int | None, output: DeviceInfo | None, devices: Sequence[DeviceInfo]
) -> InputChoice:
    """The input device for a conversation playing to `output` (None: not known yet)."""
    listed = list(devices)
    default = find_device(spec, "input", listed)
    if spec is not None or not default.is_bluetooth:
        return InputChoice(default)
    # The default input is Bluetooth (with a Bluetooth output or not): it would change profile.
    wired = [d for d in listed if d.has("input") and d.transport in WIRED_ORDER]
    if not wired:
        return InputChoice(
            default,
            f"{default.name!r} is the only microphone: it is Bluetooth, so it switches to its "
            "hands-free (telephone-quality) profile while the assistant listens",
        )
    mic = min(wired, key=lambda d: WIRED_ORDER.index(d.transport or ""))
    headset = output if output is not None and output.is_bluetooth else default
    return InputChoice(
        mic,
        f"listening through {mic.name!r}, not the Bluetooth {default.name!r}: its microphone "
        f"would switch {headset.name!r} to telephone quality "
        f"(--input-device {default.name!r} to use it anyway)",
    )


def choose_devices(
    specs: tuple[str | int | None, str | int | None], devices: Sequence[DeviceInfo]
) -> tuple[InputChoice, DeviceInfo]:
    """The input (with its message) and the output for the given `--input-device` and
    `--output-device` values (None: the system default)."""
    output = find_device(specs[1], "output", list(devices))
    return choose_input(specs[0], output, devices), output
