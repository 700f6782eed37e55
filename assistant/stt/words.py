"""Text tokens with their steps -> words with times.

A word starts at the step its first piece comes out and ends at the step after its last
piece (where the padding, or the next word, follows); both are then moved back by the text
stream's offset (the model's audio delay plus the silence fed before the audio) and kept
inside the audio. A SentencePiece piece starting with "▁" begins a new word; any other piece
continues the current one. Each word's text is decoded from its ids, so byte pieces
(accents) come out whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..frames import FRAME_SECONDS

WORD_START = "\u2581"  # SentencePiece's word-boundary marker


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the given audio
    end: float
    text: str


def words_from_tokens(
    tokens: Sequence[tuple[int, int]],
    *,
    piece: Callable[[int], str],
    decode: Callable[[list[int]], str],
    silent_ids: frozenset[int],
    offset_s: float,
    duration_s: float,
) -> list[Word]:
    """`tokens`: (step, text id) for every step. Ids in `silent_ids` are no text (padding,
    end of padding). Times are step * 80 ms - `offset_s`, kept within [0, duration_s]."""
    groups: list[tuple[int, int, list[int]]] = []  # first step, last step, ids
    for step, token in tokens:
        if token in silent_ids:
            continue
        if not groups or piece(token).startswith(WORD_START):
            groups.append((step, step, [token]))
        else:
            first, _, ids = groups[-1]
            ids.append(token)
            groups[-1] = (first, step, ids)
    words = []
    for first, last, ids in groups:
        text = decode(ids).strip()
        if not text:
            continue
        start = _clamp(first * FRAME_SECONDS - offset_s, duration_s)
        end = _clamp((last + 1) * FRAME_SECONDS - offset_s, duration_s)
        words.append(Word(start, max(start, end), text))
    return words


def _clamp(t: float, duration_s: float) -> float:
    return min(max(t, 0.0), duration_s)
