"""Finding what was said: every line of every conversation, both sides, with its time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import HistoryError
from . import transcripts
from .store import Conversation, list_conversations


@dataclass(frozen=True)
class Match:
    conversation: str
    speaker: str
    start: float
    text: str  # the whole line the words were found in

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.conversation,
            "speaker": self.speaker,
            "start": round(self.start, 2),
            "text": self.text,
        }


def lines_of(c: Conversation) -> list[transcripts.Line]:
    """Both sides when transcribed; Moshi's alone before that."""
    try:
        lines = transcripts.read(c.folder)
    except HistoryError:
        lines = None
    if lines is None:
        words = transcripts.moshi_words(c.folder)
        lines = transcripts.lines_from_words(transcripts.MOSHI, words)
    return lines


def search(text: str, root: Path | None = None, *, limit: int = 200) -> list[Match]:
    """Lines containing `text` (case and spacing ignored), newest conversation first."""
    needle = " ".join(text.lower().split())
    found: list[Match] = []
    if not needle:
        return found
    for c in list_conversations(root):
        if not c.is_conversation:
            continue
        for line in lines_of(c):
            if needle in " ".join(line.text.lower().split()):
                found.append(Match(c.id, line.speaker, line.start, line.text))
                if len(found) >= limit:
                    return found
    return found
