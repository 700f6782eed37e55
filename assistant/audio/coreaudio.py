"""CoreAudio's answer to "how is this device connected?" (macOS only; a thin ctypes layer).

PortAudio does not report a device's transport, and sounddevice exposes nothing of CoreAudio,
so the HAL is asked directly, as PortAudio itself does: for every audio device,
`kAudioObjectPropertyName` (the name PortAudio lists it under) and
`kAudioDevicePropertyTransportType`. Reading these properties opens no stream, so a Bluetooth
headset keeps its profile. Everything that decides anything on the answer lives in
routing.py and is tested with fake device lists; this file only reads CoreAudio.
"""

from __future__ import annotations

import ctypes
import sys

_CORE_AUDIO = "/System/Library/Frameworks/CoreAudio.framework/CoreAudio"
_CORE_FOUNDATION = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"


def fourcc(code: str) -> int:
    """A CoreAudio four-character constant ('dev#') as its UInt32."""
    return int.from_bytes(code.encode("ascii"), "big")


_SYSTEM_OBJECT = 1  # kAudioObjectSystemObject
_DEVICES = fourcc("dev#")  # kAudioHardwarePropertyDevices
_NAME = fourcc("lnam")  # kAudioObjectPropertyName (CFString)
_TRANSPORT = fourcc("tran")  # kAudioDevicePropertyTransportType
_SCOPE_GLOBAL = fourcc("glob")
_ELEMENT_MAIN = 0
_UTF8 = 0x08000100  # kCFStringEncodingUTF8

# kAudioDeviceTransportType* (AudioHardwareBase.h) -> the kinds the rest of the code knows.
TRANSPORTS = {
    "bltn": "built-in",
    "blue": "bluetooth",
    "blea": "bluetooth",  # Bluetooth LE
    "usb ": "usb",
    "airp": "airplay",
    "hdmi": "hdmi",
    "dprt": "displayport",
    "thun": "thunderbolt",
    "pci ": "pci",
    "fwir": "firewire",
    "virt": "virtual",
    "grup": "aggregate",
    "aggr": "aggregate",
    "ccwd": "continuity",  # an iPhone used as the Mac's microphone
    "cntd": "continuity",
}


def kind_of(transport: int) -> str:
    code = transport.to_bytes(4, "big").decode("ascii", errors="replace")
    return TRANSPORTS.get(code, "other")


class _Address(ctypes.Structure):
    _fields_ = [
        ("mSelector", ctypes.c_uint32),
        ("mScope", ctypes.c_uint32),
        ("mElement", ctypes.c_uint32),
    ]


def transport_kinds() -> dict[str, str]:
    """Every CoreAudio device's name -> its transport kind ("bluetooth", "built-in"...).
    Raises OSError off macOS or when CoreAudio refuses."""
    if sys.platform != "darwin":
        raise OSError("CoreAudio exists only on macOS")
    ca = ctypes.CDLL(_CORE_AUDIO)
    cf = ctypes.CDLL(_CORE_FOUNDATION)
    ca.AudioObjectGetPropertyDataSize.restype = ctypes.c_int32
    ca.AudioObjectGetPropertyData.restype = ctypes.c_int32
    cf.CFStringGetCString.restype = ctypes.c_bool
    cf.CFStringGetCString.argtypes = [
        ctypes.c_void_p,  # the CFString
        ctypes.c_char_p,
        ctypes.c_long,
        ctypes.c_uint32,  # the encoding
    ]
    cf.CFRelease.argtypes = [ctypes.c_void_p]

    def read(obj: int, selector: int, buffer: ctypes.Array | ctypes._SimpleCData) -> int:
        address = _Address(selector, _SCOPE_GLOBAL, _ELEMENT_MAIN)
        size = ctypes.c_uint32(ctypes.sizeof(buffer))
        status = ca.AudioObjectGetPropertyData(
            ctypes.c_uint32(obj), ctypes.byref(address), 0, None, ctypes.byref(size),
            ctypes.byref(buffer),
        )  # fmt: skip
        if status != 0:
            raise OSError(f"CoreAudio property {selector:#x} of object {obj}: status {status}")
        return size.value

    address = _Address(_DEVICES, _SCOPE_GLOBAL, _ELEMENT_MAIN)
    size = ctypes.c_uint32(0)
    status = ca.AudioObjectGetPropertyDataSize(
        ctypes.c_uint32(_SYSTEM_OBJECT), ctypes.byref(address), 0, None, ctypes.byref(size)
    )
    if status != 0:
        raise OSError(f"CoreAudio device list: status {status}")
    ids = (ctypes.c_uint32 * (size.value // 4))()
    read(_SYSTEM_OBJECT, _DEVICES, ids)
    kinds: dict[str, str] = {}
    for device in ids:
        name_ref = ctypes.c_void_p()
        transport = ctypes.c_uint32()
        try:
            read(device, _NAME, name_ref)
            read(device, _TRANSPORT, transport)
        except OSError:
            continue  # a device that went away meanwhile
        if not name_ref.value:
            continue
        text = ctypes.create_string_buffer(1024)
        ok = cf.CFStringGetCString(name_ref, text, len(text), _UTF8)
        cf.CFRelease(name_ref)
        if ok:
            kinds[text.value.decode("utf-8", errors="replace")] = kind_of(transport.value)
    return kinds
