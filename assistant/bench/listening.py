"""The bench listens: speech recognition run on what each variant said, compared with the
text the variant itself meant to say (its own text stream), as the Moshi paper judges speech.

A low word error rate means the variant's voice still says its words clearly; quantization
that damages the audio codebooks but not the text shows here and nowhere else. The figure only
means something for published weights on both sides: random weights babble, and a random
speech recogniser hears babble, so the report says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..checkpoint.validate import load_text_tokenizer

if TYPE_CHECKING:
    from ..stt import SpeechToText

PADDING_IDS = (0, 3)  # Moshi's text stream: end of padding, padding (no text this step)
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Listening:
    said: str  # the variant's own text
    heard: str  # what speech recognition heard in its audio
    wer: float | None  # word error rate of `heard` against `said`; None: nothing was said
    meaningful: bool  # published weights on both sides

    def to_dict(self) -> dict[str, object]:
        return {
            "said": self.said,
            "heard": self.heard,
            "word_error_rate": None if self.wer is None else round(self.wer, 4),
            "meaningful": self.meaningful,
        }


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what both texts are compared on."""
    return _WORD.findall(text.lower())


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float | None:
    """(substitutions + deletions + insertions) / reference words; None for no reference."""
    if not reference:
        return None
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1] / len(reference)


def own_text(tokens: np.ndarray, tokenizer: Path) -> str:
    """The text a run's tokens spell (column 0 of [steps, 1 + dep_q])."""
    sp = load_text_tokenizer(tokenizer)
    size = sp.GetPieceSize()
    ids = [int(t) for t in tokens[:, 0] if int(t) not in PADDING_IDS and 0 <= int(t) < size]
    return "".join(sp.IdToPiece(i) for i in ids).replace("▁", " ").strip()


def listen(
    stt: SpeechToText, audio: np.ndarray, tokens: np.ndarray, tokenizer: Path, *, meaningful: bool
) -> Listening:
    said = own_text(tokens, tokenizer)
    heard = " ".join(w.text for w in stt.transcribe(audio))
    return Listening(said, heard, word_error_rate(words(said), words(heard)), meaningful)
