"""The menu bar's preferences: the voice and quantization a newly started service loads,
whether it listens first, and the global mute shortcut.

Saved on each change, so a Mac that starts the app at login loads the user's last choice
instead of loading q4 and then switching. `mute_hotkey` may be any spelling hotkey.py reads
(the menu offers a few); an unreadable one falls back to the default.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..checkpoint.catalogue import QUANTS, VOICES
from ..errors import AssistantError, UsageError
from ..files import read_regular
from ..paths import data_dir
from .hotkey import DEFAULT_MUTE_HOTKEY, parse_hotkey

MAX_PREFS_BYTES = 4096  # a voice and a quantization


@dataclass(frozen=True)
class Prefs:
    voice: str = "moshiko"
    quant: str = "q4"
    listen_first: bool = False
    mute_hotkey: str = DEFAULT_MUTE_HOTKEY


def prefs_file() -> Path:
    return data_dir() / "menubar.json"


def load_prefs() -> Prefs:
    """The saved choice; the defaults when there is none or it is unreadable."""
    try:  # read like any file: a FIFO or a device there is never waited on
        raw = json.loads(read_regular(prefs_file(), MAX_PREFS_BYTES))
    except (AssistantError, ValueError, RecursionError):
        return Prefs()
    if not isinstance(raw, dict):
        return Prefs()
    voice, quant = raw.get("voice"), raw.get("quant")
    hotkey = raw.get("mute_hotkey")
    return Prefs(
        voice=voice if voice in VOICES else Prefs.voice,
        quant=quant if quant in QUANTS else Prefs.quant,
        listen_first=raw.get("listen_first") is True,
        mute_hotkey=hotkey if isinstance(hotkey, str) and _readable(hotkey) else Prefs.mute_hotkey,
    )


def _readable(spec: str) -> bool:
    try:
        parse_hotkey(spec)
    except UsageError:
        return False
    return True


def save_prefs(prefs: Prefs) -> None:
    path = prefs_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(asdict(prefs)))
    os.replace(tmp, path)
