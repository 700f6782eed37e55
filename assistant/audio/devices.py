"""Audio devices through PortAudio (sounddevice): listing, choosing, checking 24 kHz support.

sounddevice is imported inside functions: importing it loads libportaudio (an OSError when it
is missing) and initialises PortAudio, which snapshots the devices that exist at that moment.

On macOS (PortAudio's "Core Audio" host API) nothing here opens a device: PortAudio's
`Pa_IsFormatSupported` opens a real stream there, which flips a Bluetooth headset into its
hands-free profile, and CoreAudio converts any rate anyway. Each device's transport (Bluetooth,
built-in, USB...) comes from CoreAudio itself (coreaudio.py), matched by name.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from ..errors import AudioError
from ..frames import SAMPLE_RATE

log = logging.getLogger(__name__)

Kind = Literal["input", "output"]

# PortAudio error codes (portaudio.h) that deserve their own message.
_PA_INVALID_CHANNEL_COUNT = -9998
_PA_INVALID_SAMPLE_RATE = -9997
_PA_INVALID_DEVICE = -9996
_PA_DEVICE_UNAVAILABLE = -9985

# PortAudio's name for macOS's host API: its streams convert any sample rate themselves, and
# probing one (Pa_IsFormatSupported) opens the device.
CORE_AUDIO = "Core Audio"


def sounddevice() -> ModuleType:
    """The sounddevice module, or an AudioError saying PortAudio is missing."""
    try:
        import sounddevice as sd
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioError(
            f"PortAudio is not installed: {e}",
            hint="on Linux: apt-get install libportaudio2; on macOS it ships with sounddevice",
        ) from None
    return sd


def audio_error(e: BaseException, what: str) -> AudioError:
    """Turn a PortAudio (or sounddevice) error about `what` into a one-line AudioError."""
    args: tuple[object, ...] = tuple(getattr(e, "args", ()))
    message = str(args[0]) if args else str(e)
    code = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    if code == _PA_DEVICE_UNAVAILABLE:
        return AudioError(
            f"{what} is busy or unavailable",
            hint="another application may be using it; close it or pick another device",
        )
    if code == _PA_INVALID_DEVICE or message.startswith("Error querying device"):
        return AudioError(f"{what} is not available (unplugged?)", hint="see `assistant devices`")
    if code == _PA_INVALID_SAMPLE_RATE:
        return AudioError(f"{what} does not support the requested sample rate")
    if code == _PA_INVALID_CHANNEL_COUNT:
        return AudioError(f"{what} does not support mono audio")
    return AudioError(f"{what}: {message}")


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool = False
    is_default_output: bool = False
    transport: str | None = None  # "bluetooth", "built-in", "usb"...; None: not known

    def has(self, kind: Kind) -> bool:
        channels = self.max_input_channels if kind == "input" else self.max_output_channels
        return channels > 0

    @property
    def label(self) -> str:
        return f"#{self.index} {self.name!r} ({self.hostapi})"

    @property
    def is_bluetooth(self) -> bool:
        return self.transport == "bluetooth"

    @property
    def converts_rates(self) -> bool:
        """The host API resamples to any rate itself (CoreAudio): nothing to probe."""
        return self.hostapi == CORE_AUDIO


def rescan_devices() -> None:
    """Make PortAudio enumerate the audio devices again, and read the system defaults afresh.

    PortAudio lists devices once, when it is initialised (at the first `import sounddevice`):
    a device plugged in or removed later (AirPods connecting), or a new system default, stays
    invisible to a long-running process until PortAudio is re-initialised. sounddevice 0.5 has
    no public call for that; its `_terminate()` / `_initialize()` pair is it. PortAudio counts
    initialisations and enumerates only when the count comes back from zero, so every one is
    undone and redone. Terminating closes every open stream: call this only while none is open
    (before a conversation opens its own)."""
    fresh = "sounddevice" not in sys.modules
    sd = sounddevice()
    if fresh:
        return  # importing it just enumerated them
    try:
        depth = int(getattr(sd, "_initialized", 1))
        for _ in range(depth):
            sd._terminate()
        for _ in range(max(depth, 1)):
            sd._initialize()
    except Exception as e:
        raise audio_error(e, "re-initialising PortAudio") from None


def list_devices(transports: Callable[[], dict[str, str]] | None = None) -> list[DeviceInfo]:
    """Every device PortAudio knows, with the system defaults marked, and on CoreAudio each
    one's transport (`transports`: device name -> kind; default: asked of CoreAudio).
    Nothing is opened."""
    sd = sounddevice()
    try:
        raw = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in, default_out = _defaults(sd)
    except Exception as e:
        raise audio_error(e, "listing audio devices") from None
    names = [str(hostapis[d["hostapi"]]["name"]) for d in raw]
    kinds = _transports(transports) if CORE_AUDIO in names else {}
    devices = []
    for d, hostapi in zip(raw, names, strict=True):
        index = int(d["index"])
        name = str(d["name"])
        devices.append(
            DeviceInfo(
                index=index,
                name=name,
                hostapi=hostapi,
                max_input_channels=int(d["max_input_channels"]),
                max_output_channels=int(d["max_output_channels"]),
                default_samplerate=float(d["default_samplerate"]),
                is_default_input=index == default_in,
                is_default_output=index == default_out,
                transport=kinds.get(name) if hostapi == CORE_AUDIO else None,
            )
        )
    return devices


def _transports(lookup: Callable[[], dict[str, str]] | None) -> dict[str, str]:
    """Device name -> transport kind from CoreAudio; {} when it cannot say (never fatal: the
    devices still work, only the Bluetooth rule has nothing to go on)."""
    if lookup is None:
        from .coreaudio import transport_kinds

        lookup = transport_kinds
    try:
        return lookup()
    except Exception as e:
        log.warning("cannot read the devices' transport types from CoreAudio: %s", e)
        return {}


def _defaults(sd: ModuleType) -> tuple[int, int]:
    # sd.default.device holds PortAudio's defaults unless the program set its own; -1 = none.
    default_in, default_out = sd.default.device
    return int(default_in if default_in is not None else -1), int(
        default_out if default_out is not None else -1
    )


def find_device(
    spec: str | int | None, kind: Kind, devices: list[DeviceInfo] | None = None
) -> DeviceInfo:
    """The device to use for `kind`: None = system default, int (or digits) = index, other
    strings = case-insensitive part of the name (an exact name wins over partial matches).
    Chosen from `devices` when given, else from PortAudio's list."""
    devices = list_devices() if devices is None else devices
    usable = [d for d in devices if d.has(kind)]
    if not usable:
        raise AudioError(f"no audio {kind} device found", hint="connect one, then retry")
    if spec is None:
        for d in usable:
            if d.is_default_input if kind == "input" else d.is_default_output:
                return d
        raise AudioError(
            f"there is no default {kind} device",
            hint=f"pick one with --{kind}-device; see `assistant devices`",
        )
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        for d in devices:
            if d.index == index:
                if not d.has(kind):
                    raise AudioError(f"device {d.label} has no {kind} channels")
                return d
        raise AudioError(f"no audio device #{index}; {kind} devices: {_names(usable)}")
    wanted = spec.strip().lower()
    exact = [d for d in usable if d.name.lower() == wanted]
    matches = exact or [d for d in usable if wanted in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioError(f"no {kind} device matches {spec!r}; {kind} devices: {_names(usable)}")
    raise AudioError(
        f"{spec!r} matches several {kind} devices: {_names(matches)}",
        hint="use more of the name, or the index",
    )


def _names(devices: list[DeviceInfo]) -> str:
    return ", ".join(f"#{d.index} {d.name!r}" for d in devices)


def supports_rate(device: DeviceInfo, kind: Kind, rate: int = SAMPLE_RATE) -> bool:
    """Whether PortAudio accepts a mono float32 stream at `rate` on this device. On CoreAudio
    it always does (CoreAudio converts) and nothing is asked: asking opens the device."""
    if device.converts_rates:
        return True
    sd = sounddevice()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=device.index, channels=1, dtype="float32", samplerate=rate)
    except Exception:  # PortAudioError or ValueError: not supported, whatever the reason
        return False
    return True


def open_rate(device: DeviceInfo, kind: Kind) -> int:
    """The rate to open the device at: 24 kHz when it can, else its default rate (the stream
    is then resampled), else an AudioError. CoreAudio: 24 kHz, nothing opened."""
    if device.converts_rates:
        return SAMPLE_RATE
    if supports_rate(device, kind, SAMPLE_RATE):
        return SAMPLE_RATE
    rate = round(device.default_samplerate)
    if rate > 0 and supports_rate(device, kind, rate):
        return rate
    raise AudioError(
        f"{kind} device {device.label} accepts neither {SAMPLE_RATE} Hz nor its default "
        f"{rate} Hz mono float32",
        hint="pick another device; see `assistant devices`",
    )
