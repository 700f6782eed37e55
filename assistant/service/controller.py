"""The service's heart: one model, at most one conversation, driven from any thread.

Loading and conversations run on background threads so the control API always answers.
Requests that cannot be honoured (a start while one runs, a switch to files that are not
there) are refused with `ServiceRefusedError` before anything changes; failures while loading
or talking (a model that does not fit, a vanished microphone) are kept in `error`, shown by
`status()`, and the service carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from ..checkpoint.catalogue import QUANTS, VOICES
from ..checkpoint.resolve import CheckpointSpec, resolve
from ..conversation.chat import Chat, ChatSettings
from ..conversation.loop import LoopEvents
from ..conversation.transcript import SPEAKING_HOLD_S, Transcript
from ..errors import AssistantError, CodecFileError, ServiceRefusedError
from ..history.recognizer import after_conversation
from ..voice.loader import prepare
from ..voice.memory import release_freed_memory

log = logging.getLogger(__name__)
MAX_WARNINGS = 5  # the latest ones; each is said once


class State(str, Enum):
    IDLE = "idle"  # a model may be loaded; no conversation
    LOADING = "loading"
    LISTENING = "listening"
    SPEAKING = "speaking"
    ERROR = "error"  # the last load or conversation failed; see `error`


@dataclass(frozen=True)
class Choice:
    """What to load: a preset (voice and quantization) or an explicit checkpoint."""

    voice: str = "moshiko"
    quant: str | None = None  # None: q4 for presets, whatever a checkpoint folder holds
    checkpoint: str | None = None  # a folder or file; overrides voice

    def spec(self, base: CheckpointSpec) -> CheckpointSpec:
        return replace(base, target=self.checkpoint, voice=self.voice, quant=self.quant)


class Controller:
    def __init__(
        self,
        settings: ChatSettings,
        *,
        chat_factory: Callable[..., Chat] = Chat,  # (settings, events=...)
    ) -> None:
        self.base = settings
        spec = settings.checkpoint
        self.choice = Choice(spec.voice, spec.quant, spec.target)
        self._chat_factory = chat_factory
        self._lock = threading.RLock()
        self._chat: Chat | None = None  # the loaded model, reused by every conversation
        self._worker: threading.Thread | None = None  # loading or conversing
        self._loading = False
        self._talking = False
        self._muted = False
        self._want_restart = False
        self._cancelled = False
        self.error: str | None = None
        # What the conversation warned about (a silent microphone and whom to allow, a device
        # that moved): the menu bar and the dashboard show what the terminal would have.
        self.warnings: list[str] = []
        self.session: Path | None = None
        self.conversations = 0
        self.transcript = Transcript()
        self._last_text = 0.0

    # --- requests ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start a conversation (loading the model first if needed)."""
        with self._lock:
            if self._busy():
                raise ServiceRefusedError(f"already {self.state().value}; stop it first")
            self.error = None
            self._talking = True  # from now on: a conversation is on (loading first if need be)
            self._cancelled = False
            self._spawn(self._converse)

    def stop(self) -> None:
        """End the conversation; idempotent."""
        with self._lock:
            self._want_restart = False
            self._cancelled = True  # a conversation still loading its model will not start
            if self._chat is not None and self._talking:
                self._chat.stop()

    def set_muted(self, muted: bool) -> None:
        with self._lock:
            self._muted = muted
            if self._chat is not None:
                self._chat.set_muted(muted)

    def set_listen_first(self, on: bool) -> None:
        """Moshi silent until the user speaks, from the next conversation on."""
        with self._lock:
            self.base = replace(self.base, listen_first=on)
            if self._chat is not None:
                self._chat.set_listen_first(on)

    def switch(self, voice: str | None, quant: str | None, checkpoint: str | None) -> None:
        """Load another voice or quantization; a running conversation restarts on it.

        The new checkpoint is checked first (`_refuse_unloadable`); if it is not usable the
        request is refused and nothing changes."""
        choice = Choice(
            voice=voice or self.choice.voice,
            quant=quant or self.choice.quant,
            # A checkpoint folder holding several quantizations stays chosen; presets have none.
            checkpoint=checkpoint or self.choice.checkpoint,
        )
        if choice.voice not in VOICES:
            raise ServiceRefusedError(f"unknown voice {choice.voice!r}; use {VOICES}", status=400)
        if choice.quant is not None and choice.quant not in QUANTS:
            raise ServiceRefusedError(f"unknown quantization {choice.quant!r}", status=400)
        self._refuse_unloadable(choice)
        with self._lock:
            if self._loading:
                raise ServiceRefusedError("a model is loading; try again when it is done")
            was_talking = self._talking
            self.choice = choice
            self._want_restart = was_talking
            if was_talking:
                if self._chat is not None:
                    self._chat.stop()  # the conversation thread sees the new choice and reloads
            else:
                self._unload()  # no local may keep the old model alive past this
                self.error = None
                self._spawn(self._load_only)

    def _refuse_unloadable(self, choice: Choice) -> None:
        """Refuse a choice that could not load, before the running model is touched: the
        loader's own header checks (every file there, readable, of one architecture) and its
        memory verdict, with the files already on disk (a switch never downloads)."""
        try:
            files = resolve(choice.spec(self.base.checkpoint), download=False)
            prepare(files, check_memory=self.base.check_memory)
            if files.mimi is None:
                raise CodecFileError("no Mimi codec file beside the model", path=files.model)
        except (AssistantError, OSError) as e:  # OSError: unreadable (permissions, a lost disk)
            raise ServiceRefusedError(f"cannot switch: {e}", status=422) from None

    def load(self) -> None:
        """Load the chosen model in the background (at service start)."""
        with self._lock:
            if not self._busy() and self._chat is None:
                self._spawn(self._load_only)

    def shutdown(self, timeout: float = 10.0) -> None:
        self.stop()
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # --- what the API reports ---------------------------------------------------------------
    def state(self) -> State:
        with self._lock:
            if self._loading:
                return State.LOADING
            if self._talking:
                recent = time.monotonic() - self._last_text < SPEAKING_HOLD_S
                return State.SPEAKING if recent else State.LISTENING
            return State.ERROR if self.error else State.IDLE

    def status(self) -> dict[str, Any]:
        with self._lock:
            chat = self._chat
            card = chat.card if chat else None
            return {
                "state": self.state().value,
                "voice": card.voice if card and card.voice in VOICES else self.choice.voice,
                "quant": card.quantization if card else self.choice.quant or "q4",
                "checkpoint": self.choice.checkpoint,
                "muted": self._muted,
                "listen_first": self.base.listen_first,
                "model": asdict(card) if card else None,
                "error": self.error,
                "warnings": list(self.warnings),
                "session": str(self.session) if self.session else None,
                "conversations": self.conversations,
                "max_delay_ms": self.base.max_delay_ms,
            }

    def live(self) -> dict[str, Any]:
        """Status, the current metrics and the transcript's tail: what dashboards draw."""
        with self._lock:
            chat = self._chat
        metrics = chat.metrics.snapshot().to_dict() if chat is not None else None
        return {"status": self.status(), "metrics": metrics, "transcript": self.transcript.text}

    # --- workers ----------------------------------------------------------------------------
    def _busy(self) -> bool:
        return self._loading or self._talking

    def _spawn(self, target: Callable[[], None]) -> None:
        self._worker = threading.Thread(target=target, name="service-worker", daemon=True)
        self._worker.start()

    def _ensure_loaded(self) -> Chat:
        with self._lock:
            chat = self._chat
            if chat is not None:
                return chat
            self._loading = True
            settings = replace(self.base, checkpoint=self.choice.spec(self.base.checkpoint))
        try:
            events = LoopEvents(on_text=self._on_text, on_warning=self._on_warning)
            chat = self._chat_factory(settings, events=events)
            chat.prepare()
            chat.set_muted(self._muted)
        finally:
            with self._lock:
                self._loading = False
        with self._lock:
            self._chat = chat
        return chat

    def _load_only(self) -> None:
        try:
            self._ensure_loaded()
        except Exception as e:  # reported through status; the service stays up
            self._fail(e)

    def _converse(self) -> None:
        while self._talk_once():
            # A switch stopped that conversation. Its frame, which held the last references to
            # the old model (the chat, its outcome), is gone: dropping the model now frees it
            # before the new one loads.
            self._unload()

    def _talk_once(self) -> bool:
        """One conversation (loading the model first if needed). True when a switch asks to go
        on with the new model; `_talking` then stays set so no other start slips in between."""
        restart = False
        try:
            try:
                chat = self._ensure_loaded()
                with self._lock:
                    if self._cancelled:
                        return False
                    self._talking = True
                    self.transcript = Transcript()
                    self.warnings = []
                    self.conversations += 1
                outcome = chat.run(on_ready=None)
                self.session = outcome.session
                try:
                    after_conversation()  # the user's side, in the background; retention
                except Exception:  # never in the way of the service's own state
                    log.exception("after the conversation")
                if outcome.error is not None:
                    self._fail(outcome.error)
            except Exception as e:  # a model or device failure: reported, not fatal
                self._fail(e)
            with self._lock:
                restart = self._want_restart and not self.error
                self._want_restart = False
        finally:
            with self._lock:
                self._talking = restart
        return restart

    def _unload(self) -> None:
        """Drop the model before loading another: two at once may not fit (q4 + q8 = 13 GB).
        Frees it only if nothing else refers to it: callers hold no reference of their own."""
        with self._lock:
            self._chat = None
        release_freed_memory()

    def _on_warning(self, message: str) -> None:
        with self._lock:
            if message not in self.warnings:
                self.warnings = [*self.warnings[-(MAX_WARNINGS - 1) :], message]

    def _on_text(self, seconds: float, piece: str) -> None:
        self._last_text = time.monotonic()
        self.transcript.add(seconds, piece)

    def _fail(self, e: BaseException) -> None:
        log.error("%s", e, exc_info=e)  # the status says it in one line, the log in full
        with self._lock:
            self.error = str(e) if isinstance(e, AssistantError) else f"{type(e).__name__}: {e}"
