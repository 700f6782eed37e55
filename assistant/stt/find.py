"""Which STT checkpoint: a folder given, or the published one in the Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint.stt_hub import MAKE_COMMAND, cached_folder, is_stt_name, not_downloaded_error
from ..errors import CheckpointError


def find_stt_checkpoint(spec: str | None) -> Path:
    """A folder (`spec` names one), or the catalogue's STT (`spec` None or its name, e.g.
    `stt-1b-en_fr`) from the hub cache. Nothing is read beyond existence here; `SpeechToText.load`
    validates. Absent: one line saying how to get it."""
    if spec is None or is_stt_name(spec):
        folder = cached_folder()
        if folder is None:
            raise not_downloaded_error()
        return folder
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(
            "not a folder: an STT checkpoint is a folder holding config.json, the model, the "
            "Mimi codec and the text tokenizer",
            path=path,
        )
    raise CheckpointError(
        "no such folder, and not the catalogue's STT name (stt-1b-en_fr); get it with "
        f"`assistant download --stt` or make a synthetic one with `{MAKE_COMMAND}`",
        path=path,
    )
