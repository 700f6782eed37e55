"""Speech to text on MLX: Kyutai's STT model (`kyutai/stt-1b-en_fr-mlx`) through moshi_mlx.

    find.py         a folder, or the published checkpoint in the Hugging Face cache
    loader.py       validated (headers, memory, codec values), then loaded onto MLX
    encoder.py      audio -> Mimi codes, frame by frame, for any length
    transcriber.py  SpeechToText: samples in, words with times out (greedy, as Kyutai decodes);
                    LiveTranscription: the same, fed as the audio arrives
    words.py        text tokens and their steps -> Word(start, end, text)

The file formats (config, layout, validation, the hub, synthetic checkpoints) live in
`checkpoint` (`stt_*.py`, `synthetic/stt.py`).
"""

from ..errors import TranscriptionStopped
from .find import find_stt_checkpoint
from .transcriber import LiveTranscription, SpeechToText
from .words import Word

__all__ = [
    "LiveTranscription",
    "SpeechToText",
    "TranscriptionStopped",
    "Word",
    "find_stt_checkpoint",
]
