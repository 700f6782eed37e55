"""Devices that come and go: what became of the devices a conversation used.

PortAudio cannot list devices while a stream is open (re-enumerating closes every stream), so
this is asked between conversations: right after one ended because its audio failed (a stream
died or stalled: AirPods disconnected, a USB interface pulled), or before the next starts.
Devices are matched by name and host API, never by index: indices shift when PortAudio
enumerates again.

    changes = device_changes(in_use, fresh_devices)     # pure: tests pass fake lists
    changes = rescan_and_compare(in_use)                # the real thing, streams closed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import AudioError
from .devices import DeviceInfo, Kind, find_device, list_devices, rescan_devices
from .routing import choose_input


@dataclass(frozen=True)
class InUse:
    """A device a conversation used, and how it was asked for (None: the system default)."""

    kind: Kind
    device: DeviceInfo
    spec: str | int | None = None


@dataclass(frozen=True)
class DeviceChange:
    kind: Kind
    was: DeviceInfo
    gone: bool  # no longer listed with channels of this kind
    now: DeviceInfo | None  # what the next conversation would use; None: nothing usable

    @property
    def message(self) -> str:
        was = f"the {self.kind} device {self.was.name!r}"
        if self.gone and self.now is not None:
            return f"{was} disconnected; the next conversation uses {self.now.name!r}"
        if self.gone:
            option = f"--{self.kind}-device"
            return (
                f"{was} disconnected; connect it again or pick another with {option} "
                "(see `assistant devices`)"
            )
        assert self.now is not None
        return (
            f"the default {self.kind} device is now {self.now.name!r} (was {self.was.name!r}); "
            "the next conversation uses it"
        )


def same_device(a: DeviceInfo, b: DeviceInfo) -> bool:
    return a.name == b.name and a.hostapi == b.hostapi


def device_change(in_use: InUse, devices: Sequence[DeviceInfo]) -> DeviceChange | None:
    """What changed for one device, judged from a fresh list; None when nothing did."""
    kind, was = in_use.kind, in_use.device
    gone = not any(same_device(d, was) and d.has(kind) for d in devices)
    try:
        now: DeviceInfo | None = find_device(in_use.spec, kind, list(devices))
        if kind == "input":  # as the next conversation picks it (no Bluetooth microphone)
            now = choose_input(in_use.spec, None, devices).device
    except AudioError:
        now = None
    if in_use.spec is not None and not gone:
        return None  # a device asked for by name or index, still there: nothing to say
    if gone or now is None or not same_device(now, was):
        return DeviceChange(kind, was, gone, now)
    return None


def device_changes(in_use: Sequence[InUse], devices: Sequence[DeviceInfo]) -> list[DeviceChange]:
    return [c for c in (device_change(u, devices) for u in in_use) if c is not None]


def rescan_and_compare(
    in_use: Sequence[InUse],
    *,
    rescan: Callable[[], None] = rescan_devices,
    listing: Callable[[], list[DeviceInfo]] = list_devices,
) -> list[DeviceChange]:
    """Re-enumerate (no stream may be open) and say what became of the devices in use."""
    rescan()
    return device_changes(in_use, listing())


def explain_loss(
    error: BaseException,
    in_use: Sequence[InUse],
    *,
    rescan: Callable[[], None] = rescan_devices,
    listing: Callable[[], list[DeviceInfo]] = list_devices,
) -> BaseException:
    """The error to report for a conversation whose audio failed: an AudioError naming the
    device that disappeared (and what the next conversation would use) when one did, else
    `error` itself. Never raises: a failing rescan leaves the original error."""
    if not isinstance(error, AudioError) or not in_use:
        return error
    try:
        changes = rescan_and_compare(in_use, rescan=rescan, listing=listing)
        lost = [c for c in changes if c.gone]
    except AudioError:
        return error
    if not lost:
        return error
    return AudioError("; ".join(c.message for c in lost), hint=f"the conversation ended: {error}")
