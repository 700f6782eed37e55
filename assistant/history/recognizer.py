"""Which speech-to-text model transcribes, and what happens after each conversation.

The model is a spec (a folder or a catalogue name): the caller's, else ASSISTANT_STT from the
environment or the settings file, else Kyutai's published model in the Hugging Face cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..app_settings import preference, setting
from ..checkpoint.hub_cache import repo_folder
from ..checkpoint.stt_config import STT_REPO
from ..errors import AssistantError
from .retention import apply_retention
from .transcriber import Recognizer, spawn_worker

log = logging.getLogger(__name__)


def stt_spec(option: str | None = None) -> str | None:
    return option or setting("ASSISTANT_STT")


def find_model(spec: str | None = None) -> Path:
    """The model's folder, or a one-line error saying how to get one."""
    from ..stt import find_stt_checkpoint

    return find_stt_checkpoint(stt_spec(spec))


def load(folder: Path) -> Recognizer:
    from ..stt import SpeechToText

    return SpeechToText.load(folder)


def available(spec: str | None = None) -> bool:
    chosen = stt_spec(spec)
    if chosen is None and not repo_folder(STT_REPO).is_dir():
        # The usual answer at the end of each conversation, found without importing the
        # finder (the hub's client: ~0.1 s of CPU).
        return False
    try:
        find_model(chosen)
    except AssistantError:
        return False
    return True


def after_conversation() -> None:
    """At the end of each conversation (chat, service): the retention setting, then the
    background worker for the user's side, when there is a model and the settings allow it."""
    try:
        pruned = apply_retention(preference("retention"))
        if pruned.deleted:
            log.info("retention: deleted %d old conversations", len(pruned.deleted))
    except AssistantError as e:
        log.warning("retention: %s", e)
    if preference("transcribe") != "off" and available():
        spawn_worker()
