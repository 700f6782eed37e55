"""The voice and quantization the menu bar asks a newly started service to load.

Saved on each switch, so a Mac that starts the app at login loads the user's last choice
instead of loading q4 and then switching.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..checkpoint.catalogue import QUANTS, VOICES
from ..errors import AssistantError
from ..files import read_regular
from ..paths import data_dir

MAX_PREFS_BYTES = 4096  # a voice and a quantization


@dataclass(frozen=True)
class Prefs:
    voice: str = "moshiko"
    quant: str = "q4"


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
    return Prefs(
        voice=voice if voice in VOICES else Prefs.voice,
        quant=quant if quant in QUANTS else Prefs.quant,
    )


def save_prefs(prefs: Prefs) -> None:
    path = prefs_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(asdict(prefs)))
    os.replace(tmp, path)
