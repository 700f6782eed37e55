"""The user's side of each conversation, transcribed after it ends, in the background.

`transcribe_session` does one folder: speech recognition over the echo-cancelled microphone
(`user_aec.wav`, else `user.wav`), merged with Moshi's side into transcript.json and
transcript.txt, each written whole at the end. A folder without transcript.json is pending,
so a transcription that is killed loses nothing: the next run starts that folder again.

`run_pending` is the background worker (`assistant transcribe --pending`, started detached
at the end of each conversation): one at a time (a lock in the sessions folder), at the lowest
CPU priority, it works through the pending folders oldest first and pauses between frames
whenever a conversation is being recorded, so it never competes with a live one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..audio.sound_files import read_audio
from ..conversation import session_files as files
from ..errors import AssistantError, SessionBusyError, TranscriptionError
from ..paths import PRIVATE_FILE_MODE, sessions_dir
from . import transcripts
from .transcripts import MOSHI, USER, Line, TimedWord

log = logging.getLogger(__name__)

WORKER_LOCK = ".transcriber"  # in the sessions folder: one background worker at a time
IDLE_POLL_S = 0.25  # how often a paused worker looks whether the conversation has ended


class Recognizer(Protocol):
    """What the transcriber needs of a speech-to-text model (assistant.stt.SpeechToText)."""

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        progress: Callable[[float, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Sequence[TimedWord]: ...


def user_audio_path(folder: Path) -> Path:
    """What Moshi heard: the echo-cancelled microphone when there is one."""
    cleaned = folder / files.USER_AEC_WAV
    return cleaned if cleaned.exists() else folder / files.USER_WAV


def transcribe_session(
    folder: Path,
    stt: Recognizer,
    *,
    progress: Callable[[float, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Line]:
    """Transcribe one conversation's user side and write both sides; returns the lines."""
    try:
        with files.using(folder):
            path = user_audio_path(folder)
            try:
                samples = read_audio(path)
            except AssistantError as e:
                if "holds no samples" not in str(e):
                    raise TranscriptionError(f"cannot read the user's recording: {e}") from None
                samples = np.zeros(0, np.float32)
            words = stt.transcribe(samples, progress=progress, should_stop=should_stop)
            moshi = transcripts.lines_from_words(MOSHI, transcripts.moshi_words(folder))
            lines = transcripts.merge(transcripts.lines_from_words(USER, words), moshi)
            transcripts.write(folder, lines)
    except files.Busy as e:
        raise SessionBusyError(f"cannot transcribe {folder.name}: it is {e.what}") from None
    return lines


def pending(root: Path | None = None) -> list[Path]:
    """Finished conversations whose user side is not transcribed yet, oldest first."""
    root = sessions_dir() if root is None else root
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        folder = Path(entry.path)
        has_audio = (folder / files.USER_WAV).is_file()
        done = (folder / files.TRANSCRIPT_JSON).exists()
        if has_audio and not done and not files.is_recording(folder):
            found.append(folder)
    return found


@dataclass
class WorkerReport:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    paused_s: float = 0.0
    busy: bool = False  # another worker was running: this one did nothing


class BackgroundWorker:
    """Works through the pending conversations; see the module's docstring."""

    def __init__(
        self,
        load: Callable[[], Recognizer],
        root: Path | None = None,
        *,
        stop: Callable[[], bool] = lambda: False,
        yield_to_conversations: bool = True,
    ) -> None:
        self._load = load
        self._root = sessions_dir() if root is None else root
        self._stop = stop
        self._yield = yield_to_conversations
        self._stt: Recognizer | None = None
        self.report = WorkerReport()

    def run(self) -> WorkerReport:
        with self._exclusive() as alone:
            if not alone:
                self.report.busy = True
                return self.report
            while not self._stop():
                todo = [f for f in pending(self._root) if f.name not in self.report.failed]
                if not todo:
                    break
                self._one(todo[0])
        return self.report

    def _one(self, folder: Path) -> None:
        try:
            self._wait_while_recording()
            if self._stt is None:
                self._stt = self._load()
            log.info("transcribing %s", folder.name)
            transcribe_session(folder, self._stt, should_stop=self._should_stop)
            self.report.done.append(folder.name)
        except Stopped:
            raise
        except AssistantError as e:
            log.warning("%s: not transcribed: %s", folder.name, e)
            self.report.failed[folder.name] = str(e)
            if self._stt is None:  # no model: nothing else can be done either
                raise Stopped from None

    def _should_stop(self) -> bool:
        self._wait_while_recording()
        if self._stop():
            raise Stopped
        return False

    def _wait_while_recording(self) -> None:
        if not self._yield:
            return
        start = time.monotonic()
        while files.any_recording(self._root) and not self._stop():
            time.sleep(IDLE_POLL_S)
        self.report.paused_s += time.monotonic() - start

    @contextlib.contextmanager
    def _exclusive(self):  # type: ignore[no-untyped-def]
        self._root.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self._root / WORKER_LOCK, flags, PRIVATE_FILE_MODE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            with contextlib.suppress(Stopped):  # pending folders stay pending
                yield True
        finally:
            os.close(fd)


class Stopped(Exception):
    """The worker was asked to stop (or has no model): pending folders stay pending."""


def spawn_worker() -> subprocess.Popen[bytes] | None:
    """Start `assistant transcribe --pending` detached from this process (its own session, so
    the conversation's Ctrl-C does not reach it). None if it could not be started."""
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "assistant", "transcribe", "--pending"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as e:
        log.warning("could not start the background transcriber: %s", e)
        return None
