"""Text tokens with their steps -> words with times.

A word starts at the step its first piece comes out and ends at the step after its last
piece (where the padding, or the next word, follows); both are then moved back by the text
stream's offset (the model's audio delay plus the silence fed before the audio) and kept
inside the audio. A SentencePiece piece starting with "▁" begins a new word; any other piece
continues the current one, even after padding. Each word's text is decoded from its ids, so
byte pieces (accents) come out whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..frames import FRAME_SECONDS

WORD_START = "\u2581"  # SentencePiece's word-boundary marker


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the given audio
    end: float
    text: str


@dataclass
class WordBuilder:
    """Tokens in, one step at a time; a word comes out once the next one starts (or `close`).
    Ids in `silent_ids` are no text (padding, end of padding). Times are step * 80 ms -
    `offset_s`, kept within [0, the duration given]."""

    piece: Callable[[int], str]
    decode: Callable[[list[int]], str]
    silent_ids: frozenset[int]
    offset_s: float
    _first: int = 0
    _last: int = 0
    _ids: list[int] = field(default_factory=list)

    def add(self, step: int, token: int, duration_s: float) -> Word | None:
        """The word this token completes (a new word starting), if any."""
        if token in self.silent_ids:
            return None
        done = None
        if self._ids and self.piece(token).startswith(WORD_START):
            done = self.close(duration_s)
        if not self._ids:
            self._first = step
        self._ids.append(token)
        self._last = step
        return done

    def close(self, duration_s: float) -> Word | None:
        """The word under way, ended (None if there is none or it has no text)."""
        ids, self._ids = self._ids, []
        text = self.decode(ids).strip() if ids else ""
        if not text:
            return None
        start = _clamp(self._first * FRAME_SECONDS - self.offset_s, duration_s)
        end = _clamp((self._last + 1) * FRAME_SECONDS - self.offset_s, duration_s)
        return Word(start, max(start, end), text)


def words_from_tokens(
    tokens: Sequence[tuple[int, int]],
    *,
    piece: Callable[[int], str],
    decode: Callable[[list[int]], str],
    silent_ids: frozenset[int],
    offset_s: float,
    duration_s: float,
) -> list[Word]:
    """`tokens`: (step, text id) for every step."""
    builder = WordBuilder(piece, decode, silent_ids, offset_s)
    words = [w for step, token in tokens if (w := builder.add(step, token, duration_s))]
    last = builder.close(duration_s)
    return words + ([last] if last else [])


def _clamp(t: float, duration_s: float) -> float:
    return min(max(t, 0.0), duration_s)
