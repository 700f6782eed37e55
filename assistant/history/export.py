"""One file a user can share: a zip with the transcript in Markdown and the conversation's audio.

The zip is written beside its destination and renamed into place, private (0600) like the
recordings it comes from; an existing file is replaced only when asked.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path

from ..conversation import session_files as files
from ..errors import HistoryError
from ..paths import private_opener
from . import transcripts
from .audio import conversation_wav
from .store import Conversation


def markdown(c: Conversation, lines: list[transcripts.Line] | None) -> str:
    started = c.started.strftime("%Y-%m-%d %H:%M") if c.started else "unknown time"
    head = [f"# Conversation {c.id}", "", f"- Started: {started}"]
    if c.duration_s is not None:
        head.append(f"- Duration: {c.duration_s:.0f} s")
    if c.voice or c.quant:
        head.append(f"- Voice: {c.voice or '?'} ({c.quant or '?'})")
    head.append("- Audio: conversation.wav (left: you, right: Moshi)")
    head += ["", "## Transcript", ""]
    if lines is None:
        head.append("_Your side is not transcribed yet; Moshi's side follows._")
        head.append("")
        lines = transcripts.lines_from_words(transcripts.MOSHI, transcripts.moshi_words(c.folder))
    for x in lines:
        name = transcripts.SPEAKER_NAMES.get(x.speaker, x.speaker)
        head.append(f"**{name}** [{_clock(x.start)}]: {x.text}  ")
    return "\n".join(head) + "\n"


def export(c: Conversation, dest: Path, *, replace: bool = False) -> Path:
    """Write `dest` (a .zip); refuses to replace an existing file unless `replace`."""
    if dest.exists() and not replace:
        raise HistoryError("exists already (add --force to replace it)", path=dest)
    sources = {c.folder / n for n in (files.USER_WAV, files.USER_AEC_WAV, files.MOSHI_WAV)}
    if dest.exists() and any(_same(dest, s) for s in sources):
        raise HistoryError("is one of the conversation's own recordings", path=dest)
    lines = transcripts.read(c.folder)
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with open(tmp, "wb", opener=private_opener) as raw, zipfile.ZipFile(raw, "w") as z:
            z.writestr(f"{c.id}/transcript.md", markdown(c, lines))
            z.writestr(f"{c.id}/conversation.wav", conversation_wav(c.folder))
        os.replace(tmp, dest)
    except OSError as e:
        raise HistoryError(f"cannot write ({e.strerror or e})", path=dest) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return dest


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"
