"""Both sides of a conversation in time order, on the user's recording's clock.

Moshi's side comes from the conversation itself: each frame of `frames.jsonl` carries the text
piece the model gave for it, and its index places it in time (frame i starts at i x 80 ms of
`user.wav`). The user's side comes from speech recognition over the echo-cancelled microphone
(`transcriber.py`), word by word. Both are cut into lines at pauses longer than
UTTERANCE_GAP_S, the rule the live transcript uses.

    transcript.json  [{"speaker": "user"|"moshi", "start": s, "end": s, "text": ...,
                       "words": [{"start": s, "end": s, "text": ...}, ...]}, ...]
    transcript.txt   [   1.20s] You: ...  /  [   2.08s] Moshi: ...
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..conversation import session_files as files
from ..conversation.transcript import UTTERANCE_GAP_S
from ..errors import HistoryError
from ..files import read_regular
from ..frames import FRAME_SECONDS
from ..paths import private_opener

USER = "user"
MOSHI = "moshi"
SPEAKER_NAMES = {USER: "You", MOSHI: "Moshi"}
TRANSCRIPT_MAX_BYTES = 64 << 20  # hours of talk; far more than any real conversation
FRAMES_MAX_BYTES = 512 << 20
LIVE_TEXT_MAX_BYTES = 1 << 20


class TimedWord(Protocol):
    """A recognised word (assistant.stt.Word, or ours): seconds into the recording."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str


@dataclass
class Line:
    speaker: str
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "speaker": self.speaker,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "words": [
                {"start": round(w.start, 3), "end": round(w.end, 3), "text": w.text}
                for w in self.words
            ],
        }


def lines_from_words(speaker: str, words: Iterable[TimedWord]) -> list[Line]:
    """Words cut into lines at pauses longer than UTTERANCE_GAP_S."""
    lines: list[Line] = []
    for w in sorted(words, key=lambda w: w.start):
        text = w.text.strip()
        if not text:
            continue
        word = Word(float(w.start), max(float(w.end), float(w.start)), text)
        if lines and word.start - lines[-1].end <= UTTERANCE_GAP_S:
            line = lines[-1]
            line.words.append(word)
            line.end = max(line.end, word.end)
            line.text += " " + text
        else:
            lines.append(Line(speaker, word.start, word.end, text, [word]))
    return lines


def moshi_words(folder: Path) -> list[Word]:
    """Moshi's words with their times, from the frames it answered (`frames.jsonl`)."""
    pieces = sorted(_moshi_pieces(folder))
    words: list[Word] = []
    for t, piece in pieces:
        end = t + FRAME_SECONDS
        # A piece that starts with a space starts a word; the others continue the last one.
        if words and not piece[:1].isspace() and t - words[-1].end <= FRAME_SECONDS:
            last = words[-1]
            words[-1] = Word(last.start, end, last.text + piece)
        elif piece.strip():
            words.append(Word(t, end, piece.strip()))
    return words


def _moshi_pieces(folder: Path) -> Iterable[tuple[float, str]]:
    try:
        data = read_regular(folder / files.FRAMES, FRAMES_MAX_BYTES, HistoryError)
    except HistoryError:
        return
    for raw in data.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # a line cut by a crash: the others still count
        if not isinstance(record, dict):
            continue
        index, text = record.get("index"), record.get("text")
        if isinstance(index, bool) or not isinstance(index, int) or not isinstance(text, str):
            continue
        if 0 <= index < 1 << 40 and text:
            yield index * FRAME_SECONDS, text


def moshi_text_live(folder: Path) -> str:
    """Moshi's words from `transcript.txt` as the loop wrote it (no times), for a folder not
    transcribed yet: the listing must not read a long conversation's frames."""
    try:
        data = read_regular(folder / files.TRANSCRIPT_TXT, LIVE_TEXT_MAX_BYTES, HistoryError)
    except HistoryError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return " ".join(line.split("] ", 1)[-1] for line in text.splitlines())


def merge(*sides: list[Line]) -> list[Line]:
    """Both sides interleaved in time order."""
    return sorted((x for side in sides for x in side), key=lambda x: (x.start, x.speaker))


def write(folder: Path, lines: list[Line]) -> None:
    """transcript.json and transcript.txt, each replaced whole (private, 0600)."""
    _replace(folder / files.TRANSCRIPT_JSON, json.dumps([x.to_dict() for x in lines], indent=1))
    _replace(folder / files.TRANSCRIPT_TXT, as_text(lines))


def as_text(lines: list[Line]) -> str:
    return "".join(
        f"[{x.start:8.2f}s] {SPEAKER_NAMES.get(x.speaker, x.speaker)}: {x.text}\n" for x in lines
    )


def read(folder: Path) -> list[Line] | None:
    """The folder's transcript.json (None if there is none yet); HistoryError if damaged."""
    path = folder / files.TRANSCRIPT_JSON
    try:
        data = read_regular(path, TRANSCRIPT_MAX_BYTES, HistoryError)
    except HistoryError as e:
        if "no such" in e.message:
            return None
        raise HistoryError(f"transcript.json: {e.message}") from None
    try:
        raw = json.loads(data)
    except ValueError:
        raise HistoryError("transcript.json is damaged (not JSON)") from None
    if not isinstance(raw, list):
        raise HistoryError("transcript.json is damaged (not a list)")
    return [_line(item) for item in raw]


def _line(item: object) -> Line:
    if not isinstance(item, dict):
        raise HistoryError("transcript.json is damaged (an entry is not an object)")
    speaker, text = item.get("speaker"), item.get("text")
    start, end = _time(item.get("start")), _time(item.get("end"))
    if speaker not in (USER, MOSHI) or not isinstance(text, str) or start is None or end is None:
        raise HistoryError("transcript.json is damaged (an entry lacks speaker, times or text)")
    words = []
    for w in item.get("words") or []:
        if isinstance(w, dict) and isinstance(w.get("text"), str):
            ws, we = _time(w.get("start")), _time(w.get("end"))
            if ws is not None and we is not None:
                words.append(Word(ws, we, w["text"]))
    return Line(speaker, start, end, text, words)


def _time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and 0 <= value < 1e9 else None


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + files.PARTIAL_SUFFIX)
    try:
        with open(tmp, "w", encoding="utf-8", opener=private_opener) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise HistoryError(f"cannot write ({e.strerror or e})", path=path) from None
