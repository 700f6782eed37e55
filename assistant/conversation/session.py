"""One conversation's folder, written as it goes so a crash or a kill loses at most a second.

    user.wav         what the microphone heard (before echo cancellation)
    user_aec.wav     the same after echo cancellation: what Moshi heard (only with AEC on)
    moshi.wav        what Moshi said
    transcript.txt   Moshi's words, a line per utterance, each with its start time
    frames.jsonl     per-frame stage timestamps (see records.FrameRecord)
    metrics.jsonl    a metrics snapshot a second: recent and session percentiles, memory ...
    summary.json     the session's summary, rewritten every flush
    trace.json       a Chrome trace of every frame's stages (open it in ui.perfetto.dev)
    transcript.json  both sides, written after the conversation by the transcriber (history/)

The file names live in `session_files`; while it records, the writer holds the folder's lock
(so the history never deletes, and the transcriber never reads, a conversation in progress).

A write failure (a full disk) stops the recording, not the conversation: it is reported once
through `error` and every file stays as its last complete flush left it (WAV headers that match
their data, whole lines, a trace that opens, summary.json of that flush). The folder is 0700
and its files 0600: recordings and transcripts are the user's alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.wav_writer import StreamingWavWriter
from ..errors import AssistantError
from ..files import AppendOnlyFile
from ..paths import make_private, private_opener
from ..telemetry.metrics import MetricsCollector
from ..telemetry.records import FrameRecord
from ..telemetry.trace import ChromeTrace
from . import session_files as files
from .transcript import is_new_utterance

FLUSH_SECONDS = 1.0


class SessionWriter:
    def __init__(
        self,
        folder: Path,
        stats: Callable[[], dict[str, Any]],
        *,
        echo_cancelled: bool = False,
        metrics: MetricsCollector | None = None,
        t0: float | None = None,
    ) -> None:
        """`stats` gives summary.json's content; `metrics` feeds metrics.jsonl; `t0` is the
        trace's time zero (default: now)."""
        self.folder = folder
        self._stats = stats
        self._metrics = metrics
        self.error: str | None = None
        self._lock = threading.Lock()  # the loop's three workers all write here
        self._last_piece_t: float | None = None
        self._last_flush = time.monotonic()
        self._closed = False
        self._files: list[Any] = []  # everything opened, for close()
        self._cleaned: StreamingWavWriter | None = None
        self._lock_fds: list[int] = []
        # When the conversation started, as the history shows it (local time, with its offset).
        self.started = datetime.now().astimezone().isoformat(timespec="seconds")
        try:
            make_private(folder)
            self._lock_fds = files.hold_recording(folder)
            self._user = self._open(StreamingWavWriter, folder / files.USER_WAV)
            self._moshi = self._open(StreamingWavWriter, folder / files.MOSHI_WAV)
            self._cleaned = (
                self._open(StreamingWavWriter, folder / files.USER_AEC_WAV)
                if echo_cancelled
                else None
            )
            self._transcript = self._open(AppendOnlyFile, folder / files.TRANSCRIPT_TXT)
            self._frames = self._open(AppendOnlyFile, folder / files.FRAMES)
            self._metrics_log = self._open(AppendOnlyFile, folder / files.METRICS)
            start = time.monotonic() if t0 is None else t0
            self._trace = self._open(ChromeTrace, folder / files.TRACE, start)
        except files.Busy as e:
            self.error = f"recording stopped: {folder} is {e.what}"
            self._closed = True
        except (OSError, AssistantError) as e:
            # No room even to start: the conversation goes on without a recording.
            self.error = f"recording stopped: {e}"

    # --- called by the loop (one thread) ---------------------------------------------------
    def user_audio(self, pcm: np.ndarray) -> None:
        self._guard(lambda: self._user.write(pcm))

    def cleaned_audio(self, pcm: np.ndarray) -> None:
        cleaned = self._cleaned
        if cleaned is not None:
            self._guard(lambda: cleaned.write(pcm))

    def moshi_audio(self, pcm: np.ndarray) -> None:
        self._guard(lambda: self._moshi.write(pcm))

    def text(self, seconds: float, piece: str) -> None:
        """Append one text piece said `seconds` into the conversation."""
        new_line = is_new_utterance(self._last_piece_t, seconds)
        prefix = ("\n" if self._last_piece_t is not None else "") + f"[{seconds:8.2f}s] "
        self._guard(lambda: self._transcript.write((prefix if new_line else "") + piece))
        self._last_piece_t = seconds

    def frame(self, record: FrameRecord) -> None:
        self._guard(lambda: self._frames.write(json.dumps(record.to_dict()) + "\n"))
        self._guard(lambda: self._trace.frame(record))

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        self._guard(lambda: self._user.flush())
        self._guard(lambda: self._moshi.flush())
        cleaned = self._cleaned
        if cleaned is not None:
            self._guard(lambda: cleaned.flush())
        self._guard(lambda: self._transcript.flush())
        self._guard(lambda: self._frames.flush())
        self._guard(lambda: self._log_metrics())
        self._guard(lambda: self._trace.flush())
        self._guard(lambda: self._write_stats())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._last_piece_t is not None:
            self._guard(lambda: self._transcript.write("\n"))
        self.flush()
        for file in self._files:
            # Failures were already reported by _guard; closing is best effort, and a close
            # that cannot write leaves the file as its last flush did.
            with contextlib.suppress(OSError, AssistantError):
                file.close()
        files.release(self._lock_fds)
        self._lock_fds = []

    # --- internals ----------------------------------------------------------------------------
    def _open(self, kind: Callable[..., Any], path: Path, *args: object) -> Any:
        """A writer of `kind` on `path`, made private (0600) before anything is recorded."""
        file = kind(path, *args)
        self._files.append(file)
        make_private(path)
        return file

    def _log_metrics(self) -> None:
        if self._metrics is None:
            return
        now = time.monotonic()
        snap = self._metrics.snapshot()
        self._metrics_log.write(json.dumps(snap.to_dict()) + "\n")
        self._metrics_log.flush()
        self._trace.snapshot(now, snap)

    def _write_stats(self) -> None:
        """summary.json replaced whole, or (the disk full) left as the last flush wrote it."""
        tmp = self.folder / (files.SUMMARY + files.PARTIAL_SUFFIX)
        summary = {"started": self.started, **self._stats()}
        text = json.dumps(summary, indent=2, default=float) + "\n"
        try:
            with open(tmp, "w", encoding="utf-8", opener=private_opener) as f:
                f.write(text)
            os.replace(tmp, self.folder / files.SUMMARY)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _guard(self, write: Callable[[], object]) -> None:
        """Run one write unless the recording has stopped; the first failure stops it."""
        with self._lock:
            if self.error is not None:
                return
            try:
                write()
            except (OSError, AssistantError) as e:
                self.error = f"recording stopped: {e}"
