"""One conversation's folder, written as it goes so a crash or a kill loses at most a second.

    user.wav         what the microphone heard (before echo cancellation)
    user_aec.wav     the same after echo cancellation: what Moshi heard (only with AEC on)
    moshi.wav        what Moshi said
    transcript.txt   Moshi's words, a line per utterance, each with its start time
    frames.jsonl     per-frame stage timestamps (see records.FrameRecord)
    metrics.jsonl    a metrics snapshot a second: recent and session percentiles, memory ...
    summary.json     the session's summary, rewritten every flush
    trace.json       a Chrome trace of every frame's stages (open it in ui.perfetto.dev)

A write failure (a full disk) stops the recording, not the conversation: it is reported once
through `error` and everything written before it stays valid.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.wav_writer import StreamingWavWriter
from ..errors import AssistantError
from ..telemetry.metrics import MetricsCollector
from ..telemetry.records import FrameRecord
from ..telemetry.trace import ChromeTrace
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
        self._user = StreamingWavWriter(folder / "user.wav")
        self._moshi = StreamingWavWriter(folder / "moshi.wav")
        self._cleaned = StreamingWavWriter(folder / "user_aec.wav") if echo_cancelled else None
        self._transcript = (folder / "transcript.txt").open("a", encoding="utf-8")
        self._frames = (folder / "frames.jsonl").open("a", encoding="utf-8")
        self._metrics_log = (folder / "metrics.jsonl").open("a", encoding="utf-8")
        self._trace = ChromeTrace(folder / "trace.json", time.monotonic() if t0 is None else t0)
        self._last_piece_t: float | None = None
        self._last_flush = time.monotonic()
        self._closed = False

    # --- called by the loop (one thread) ---------------------------------------------------
    def user_audio(self, pcm: np.ndarray) -> None:
        self._guard(self._user.write, pcm)

    def cleaned_audio(self, pcm: np.ndarray) -> None:
        if self._cleaned is not None:
            self._guard(self._cleaned.write, pcm)

    def moshi_audio(self, pcm: np.ndarray) -> None:
        self._guard(self._moshi.write, pcm)

    def text(self, seconds: float, piece: str) -> None:
        """Append one text piece said `seconds` into the conversation."""
        new_line = is_new_utterance(self._last_piece_t, seconds)
        prefix = ("\n" if self._last_piece_t is not None else "") + f"[{seconds:8.2f}s] "
        self._guard(self._transcript.write, (prefix if new_line else "") + piece)
        self._last_piece_t = seconds

    def frame(self, record: FrameRecord) -> None:
        self._guard(self._frames.write, json.dumps(record.to_dict()) + "\n")
        self._guard(self._trace.frame, record)

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        self._guard(self._user.flush)
        self._guard(self._moshi.flush)
        if self._cleaned is not None:
            self._guard(self._cleaned.flush)
        self._guard(self._transcript.flush)
        self._guard(self._frames.flush)
        self._guard(self._log_metrics)
        self._guard(self._trace.flush)
        self._guard(self._write_stats)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._last_piece_t is not None:
            self._guard(self._transcript.write, "\n")
        self.flush()
        writers = [w for w in (self._user, self._moshi, self._cleaned) if w is not None]
        closers = [w.close for w in writers] + [
            self._transcript.close,
            self._frames.close,
            self._metrics_log.close,
            self._trace.close,
        ]
        for closer in closers:
            # Failures were already reported by _guard; closing is best effort.
            with contextlib.suppress(OSError, AssistantError):
                closer()

    # --- internals ----------------------------------------------------------------------------
    def _log_metrics(self) -> None:
        if self._metrics is None:
            return
        now = time.monotonic()
        snap = self._metrics.snapshot()
        self._metrics_log.write(json.dumps(snap.to_dict()) + "\n")
        self._metrics_log.flush()
        self._trace.snapshot(now, snap)

    def _write_stats(self) -> None:
        tmp = self.folder / "summary.json.partial"
        tmp.write_text(json.dumps(self._stats(), indent=2, default=float) + "\n")
        os.replace(tmp, self.folder / "summary.json")

    def _guard(self, fn: Callable[..., object], *args: object) -> None:
        with self._lock:
            if self.error is not None:
                return
            try:
                fn(*args)
            except (OSError, AssistantError) as e:
                self.error = f"recording stopped: {e}"
