"""Moshi's words as they arrive: the utterance rule and the recent transcript.

Shared by the session's `transcript.txt`, the live terminal dashboard and the service, so a
line break means the same thing everywhere.
"""

from __future__ import annotations

import threading

UTTERANCE_GAP_S = 1.0  # this much silence in Moshi's text starts a new transcript line
SPEAKING_HOLD_S = 1.0  # "speaking" while Moshi's last word is this recent
TRANSCRIPT_CHARS = 4000  # enough for any screen; an hour-long talk must not grow memory


def is_new_utterance(previous_s: float | None, seconds: float) -> bool:
    """Whether a piece said at `seconds` starts a new line (the first one always does)."""
    return previous_s is None or seconds - previous_s > UTTERANCE_GAP_S


class Transcript:
    """The recent transcript, fed piece by piece from the model's thread."""

    def __init__(self, limit: int = TRANSCRIPT_CHARS) -> None:
        self._text = ""
        self._last_t: float | None = None
        self._limit = limit
        self._lock = threading.Lock()

    def add(self, seconds: float, piece: str) -> None:
        with self._lock:
            if self._last_t is not None and is_new_utterance(self._last_t, seconds):
                self._text += "\n"
            self._last_t = seconds
            self._text = (self._text + piece)[-self._limit :]

    @property
    def text(self) -> str:
        with self._lock:
            return self._text
