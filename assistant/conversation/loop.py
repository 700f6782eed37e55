"""The conversation loop: capture -> echo cancel -> encode -> model step -> decode -> playback.

Three worker threads, so codec work overlaps model work (rustymimi and MLX release the GIL):

    encoder:  read a captured frame, cancel the echo of what was just played, Mimi-encode
    model:    one engine step per frame (the only thread touching MLX)
    decoder:  Mimi-decode Moshi's codes, hand the frame to the speaker

Audio callbacks live in the audio layer and never wait on any of this. Queues between workers
are bounded by the lag policy: when the model falls behind, the oldest user frames are dropped
(and counted) instead of letting the delay grow. A worker that fails stops the loop and its
error is raised from `run()` after everything recorded so far is saved.

Each frame's delay is measured, not estimated: from the capture time of its first sample
(PortAudio's ADC time) to the moment the first sample of Moshi's audio for it is heard (the
speaker's DAC time, reported by the playout buffer when that sample actually plays). A frame
is handed on to the metrics and the session once that is known.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..audio.aec import Canceller, ReferenceTimeline
from ..audio.interface import AudioIO
from ..audio.speech_onset import SpeechOnset
from ..frames import FRAME_MS, FRAME_SAMPLES
from ..telemetry.histogram import Histogram
from ..telemetry.metrics import MetricsCollector
from ..telemetry.model_card import ModelCard
from ..telemetry.records import FrameRecord, LoopCounters
from ..telemetry.summary import SessionSummary, summarize
from .lag import LagPolicy

if TYPE_CHECKING:
    from .session import SessionWriter

log = logging.getLogger(__name__)
_END = object()  # end of input: flows through the queues to stop each worker in turn


class Codec(Protocol):
    def encode(self, frame: np.ndarray) -> np.ndarray | None: ...
    def decode(self, codes: np.ndarray) -> np.ndarray: ...


class Engine(Protocol):
    def step(self, user_codes: np.ndarray) -> Any: ...  # StepResult


@dataclass
class LoopEvents:
    """Callbacks for the UI; called from worker threads, so they must be quick."""

    on_text: Callable[[float, str], None] | None = None
    on_frame: Callable[[FrameRecord], None] | None = None
    on_warning: Callable[[str], None] | None = None


class ConversationLoop:
    def __init__(
        self,
        audio: AudioIO,
        codec: Codec,
        engine: Engine,
        *,
        echo: Canceller | None = None,
        session: SessionWriter | None = None,
        policy: LagPolicy | None = None,
        events: LoopEvents | None = None,
        silence_check: Callable[[np.ndarray], str | None] | None = None,
        output_check: Callable[[np.ndarray], str | None] | None = None,
        metrics: MetricsCollector | None = None,
        listen_first: bool = False,
    ) -> None:
        self.audio, self.codec, self.engine = audio, codec, engine
        # A file read as fast as the loop goes has no clock to keep up with: wait, never drop.
        self._realtime = audio.realtime
        self.echo, self.session = echo, session
        self.policy = policy or LagPolicy()
        self.events = events or LoopEvents()
        self.silence_check = silence_check
        self.output_check = output_check
        self.counters = LoopCounters()
        # Muted: the microphone's frames are replaced by silence before anything sees them
        # (recording included); Moshi keeps talking and listening to silence.
        self.muted = False
        # Every finished frame goes here: the one set of per-stage histograms, which the lag
        # control, the dashboard and the summary all read.
        self.metrics = metrics or MetricsCollector()
        self.started: float | None = None
        self._model_q: queue.Queue = queue.Queue()
        self._decode_q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._stopped = False
        self._warned_drops = self._warned_recording = False
        self._lock = threading.Lock()  # guards the model queue's drop-oldest and counters
        self._downstream = 0  # frames encoded and not yet decoded (queued or in the works)
        self._error: BaseException | None = None
        self._timeline = ReferenceTimeline()  # what the speaker played, by time: the echo
        self._threads: list[threading.Thread] = []
        self._on_speaker: dict[int, FrameRecord] = {}  # queued for the speaker, not yet heard
        self._speaker_lock = threading.Lock()
        # Listen first: Moshi's streams are held silent (the engine's `hold`) until the frame
        # in which the microphone first carries speech; the encoder finds it, the model thread
        # lets go at that frame.
        self.listen_first = listen_first
        self._onset = SpeechOnset() if listen_first else None
        self._first_speech: int | None = None  # index of the frame where the user spoke
        self.holding = listen_first

    # --- control -------------------------------------------------------------------------------
    def run(self, duration_s: float | None = None) -> None:
        """Run until the input ends, `duration_s` passes, `stop()` is called or a worker fails."""
        self.started = time.monotonic()
        if self.listen_first:
            self.engine.hold = True  # type: ignore[attr-defined]
        for name, target in (
            ("encoder", self._encoder),
            ("model", self._model),
            ("decoder", self._decoder),
        ):
            t = threading.Thread(target=self._guarded, args=(target,), name=name, daemon=True)
            self._threads.append(t)
            t.start()
        try:
            while any(t.is_alive() for t in self._threads):
                if duration_s is not None and time.monotonic() - self.started >= duration_s:
                    break
                if self._stop.wait(0.05):
                    break
                self._collect_heard()
                if self.session is not None:
                    self.session.maybe_flush()
                self._report_once()
        finally:
            self.stop()
        if self._error is not None:
            raise self._error

    def request_stop(self) -> None:
        """Ask `run()` to finish (from any thread); it stops the workers and saves the session."""
        self._stop.set()

    def stop(self) -> None:
        """Stop the workers and save the session; safe to call more than once."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        for q in (self._model_q, self._decode_q):
            q.put(_END)
        for t in self._threads:
            t.join(timeout=5.0)
        if self.listen_first:
            self.engine.hold = False  # type: ignore[attr-defined]
        self._collect_heard(final=True)
        if self.session is not None:
            self.session.close()

    @property
    def timings(self) -> dict[str, Histogram]:
        """Per-stage session histograms (encode, step, decode, delay), from the collector."""
        return self.metrics.session_histograms()

    def summary(
        self, model: ModelCard | None = None, codec: dict[str, Any] | None = None
    ) -> SessionSummary:
        return summarize(
            self.metrics.snapshot(),
            replace(self.counters, errors=list(self.counters.errors)),
            max_delay_ms=self.policy.max_delay_ms,
            audio=audio_counters(self.audio),
            model=model,
            codec=codec,
        )

    def stats(self) -> dict[str, Any]:
        """The summary as summary.json holds it."""
        return self.summary().to_dict()

    # --- workers -------------------------------------------------------------------------------
    def _guarded(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as e:  # any failure must stop the loop, not hang it
            log.error("the %s worker failed", threading.current_thread().name, exc_info=e)
            if self._error is None:
                self._error = e
            self.counters.errors.append(f"{type(e).__name__}: {e}")
            self._stop.set()

    def _encoder(self) -> None:
        index = 0
        while not self._stop.is_set():
            frame = self.audio.read_frame(timeout=0.1)
            if frame is None:
                if self.audio.finished:
                    self._model_q.put(_END)
                    return
                continue
            record = FrameRecord(index=index, captured=frame.t_capture)
            index += 1
            self.counters.frames_captured += 1
            mic = np.asarray(frame.samples, dtype=np.float32)
            if self.muted:
                mic = np.zeros_like(mic)
            if self.session is not None:
                self.session.user_audio(mic)
            self._check_silence(mic)
            onset = self._onset
            record.encode_start = time.monotonic()
            cleaned = mic
            if self.echo is not None:
                # Every frame, even one about to be dropped: the canceller adapts continuously.
                self._timeline.take_in(self.audio, len(frame.samples))
                # Lined up by sample position: the two streams' timestamps wander apart.
                cleaned = self.echo.process(mic, self._timeline.reference_for(frame))
                if self.session is not None:
                    self.session.cleaned_audio(cleaned)
            if onset is not None and self._first_speech is None and onset.feed(cleaned):
                self._first_speech = record.index  # before the frame is queued for the model
            if self._stale(record):
                continue
            codes = self.codec.encode(cleaned)
            record.encode_end = time.monotonic()
            if codes is not None:
                self._enqueue_for_model(record, codes)

    def _enqueue_for_model(self, record: FrameRecord, codes: np.ndarray) -> None:
        if not self._realtime:
            # No clock to keep up with: back-pressure instead of dropping.
            record.model_queue_depth = self._model_q.qsize()
            while self._model_q.qsize() >= self.policy.max_model_backlog:
                if self._stop.wait(0.002):
                    return
            self._model_q.put((record, codes))
            with self._lock:
                self._downstream += 1
            return
        dropped = False
        with self._lock:
            record.model_queue_depth = self._model_q.qsize()
            while self._model_q.qsize() >= self.policy.max_model_backlog:
                try:
                    old = self._model_q.get_nowait()
                except queue.Empty:
                    break
                if old is _END:  # stopping: keep the marker, drop nothing more
                    self._model_q.put(_END)
                    break
                old = old[0]
                old.dropped = dropped = True
                self.counters.dropped_input += 1
                self._downstream -= 1
                self._emit_frame(old)
            self._model_q.put((record, codes))
            self._downstream += 1
        if dropped:
            self.audio.expect_hole()

    def _model(self) -> None:
        while True:
            item = self._next(self._model_q)
            if item is _END:
                self._decode_q.put(_END)
                return
            record, codes = item
            if self._too_late(record):
                with self._lock:
                    self._downstream -= 1
                continue
            heard = self._first_speech
            if self.holding and heard is not None and record.index >= heard:
                self.holding = False
                self.engine.hold = False  # type: ignore[attr-defined]
                log.info("listen first: the user spoke (frame %d); Moshi may answer", heard)
            record.step_start = time.monotonic()
            result = self.engine.step(codes)
            record.step_end = time.monotonic()
            record.model_step = result.step
            self.counters.frames_stepped += 1
            if result.piece is not None:
                record.text = result.piece
                seconds = result.step * FRAME_MS / 1000.0
                if self.session is not None:
                    self.session.text(seconds, result.piece)
                if self.events.on_text:
                    self.events.on_text(seconds, result.piece)
            self._decode_q.put((record, result.audio_codes))

    def _decoder(self) -> None:
        silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        while True:
            item = self._next(self._decode_q)
            if item is _END:
                return
            record, codes = item
            record.decode_start = time.monotonic()
            # Decode every frame, even one about to be dropped: the codec's state is streaming.
            pcm = silence if codes is None else np.asarray(self.codec.decode(codes), np.float32)
            record.decode_end = time.monotonic()
            with self._lock:
                self._downstream -= 1
            check = self.output_check if codes is not None else None
            if check is not None and (warning := check(pcm)):
                self._warn(warning)
            record.playout_depth = round(self.audio.playout_depth(), 2)
            heard_in = self.audio.heard_in_s()
            if self._late_for_speaker(record, heard_in):
                record.dropped = True
                self.counters.dropped_output += 1
                self._emit_frame(record)
                continue
            record.queued_for_playout = time.monotonic()
            record.heard_expected = record.queued_for_playout + heard_in
            with self._speaker_lock:
                self._on_speaker[id(record)] = record
            self.audio.play_frame(pcm, tag=record)
            if self.session is not None:
                self.session.moshi_audio(pcm)
            self._collect_heard()

    def _collect_heard(self, final: bool = False) -> None:
        """Frames whose first sample the speaker played (or dropped) since the last look go
        on to the metrics and the session; at the end, those still queued go too, unheard."""
        with self._speaker_lock:
            done: list[FrameRecord] = []
            for started in self.audio.drain_started():
                record = self._on_speaker.pop(id(started.tag), None)
                if record is not None:
                    record.played, record.heard = True, started.t
                    self.counters.frames_played += 1
                    done.append(record)
            for tag in self.audio.drain_dropped():
                record = self._on_speaker.pop(id(tag), None)
                if record is not None:
                    record.dropped = True
                    self.counters.dropped_output += 1
                    done.append(record)
            if final:
                done += self._on_speaker.values()
                self._on_speaker.clear()
            for record in sorted(done, key=lambda r: r.index):
                self._emit_frame(record)

    # --- helpers -------------------------------------------------------------------------------
    def _stale(self, record: FrameRecord) -> bool:
        """Drop a frame read from the microphone that could not be heard in time: older than
        the whole budget (captured during a stall), or predicted to arrive late once encoded,
        stepped, decoded (after the frames already on their way there) and queued. Skipping it
        also saves the codec's time, so the loop catches up. The newest frame is kept when
        nothing else is on its way: a pipeline that can never meet the budget still answers,
        as often as it can, and the listener hears it with gaps, never nothing."""
        if not self._realtime:
            return False
        age = _age_ms(record)
        if self.policy.stale(age):
            return self._drop_input(record)
        late = self.policy.too_late_for_model(age, self._still_to_come("encode", "step"))
        if not late:
            return False
        if self.audio.pending_frames() == 0 and self._downstream == 0:
            return False
        return self._drop_input(record)

    def _too_late(self, record: FrameRecord) -> bool:
        """Counting queued frames is not enough when each step is slow, so the frame's age is
        checked too. The newest frame is always kept: a model that can never meet the budget
        still answers, as often as it can."""
        if not self._realtime or self._model_q.qsize() == 0:
            return False
        late = self.policy.too_late_for_model(
            _age_ms(record), self._still_to_come("step", counted=True)
        )
        return late and self._drop_input(record)

    def _still_to_come(self, *stages: str, counted: bool = False) -> float:
        """Milliseconds ahead of a frame: recent time of the stages it still has to go
        through, its decoding (after the frames already waiting for the decoder, which is as
        slow as the model or slower when the codec can't keep up), then the wait until the
        speaker plays it. `counted`: the frame is already among those on their way."""
        before = sum(self.metrics.recent_high(stage) for stage in stages)
        decode = self.metrics.recent_high("decode")
        with self._lock:
            ahead = self._downstream - counted
        waiting = max(0.0, ahead * decode - before)
        return before + waiting + decode + self.audio.heard_in_s() * 1000.0

    def _next(self, q: queue.Queue) -> Any:
        """The next item, or _END once the loop is stopping (polls: a stop is never missed)."""
        while not self._stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    def _drop_input(self, record: FrameRecord) -> bool:
        with self._lock:
            record.dropped = True
            self.counters.dropped_input += 1
        self.audio.expect_hole()  # the gap it leaves is no reason for a bigger cushion
        self._emit_frame(record)
        return True

    def _late_for_speaker(self, record: FrameRecord, heard_in_s: float) -> bool:
        if not self._realtime:
            return False  # no clock: nothing is late
        return self.policy.late_for_speaker(
            _age_ms(record), heard_in_s * 1000.0, record.playout_depth
        )

    def _report_once(self) -> None:
        """Tell the user, once each, about drops and a recording that stopped; and whatever
        the audio layer says (a larger block size, a speaker that went away)."""
        for notice in self.audio.drain_notices():
            self._warn(notice)
        c = self.counters
        if not self._warned_drops and c.dropped_input + c.dropped_output > 0:
            self._warned_drops = True
            self._warn(
                "the model is slower than real time on this machine: dropping frames to keep "
                f"the delay under {self.policy.max_delay_ms:.0f} ms"
            )
        error = getattr(self.session, "error", None)
        if error and not self._warned_recording:
            self._warned_recording = True
            self._warn(f"{error}; the conversation goes on without recording")

    def _warn(self, message: str) -> None:
        self.counters.errors.append(message)
        if self.events.on_warning:
            self.events.on_warning(message)

    def _check_silence(self, mic: np.ndarray) -> None:
        if self.silence_check is None:
            return
        warning = self.silence_check(mic)
        if warning:
            self._warn(warning)

    def _emit_frame(self, record: FrameRecord) -> None:
        self.metrics.on_frame(record)
        if self.session is not None:
            self.session.frame(record)
        if self.events.on_frame:
            self.events.on_frame(record)


def audio_counters(audio: object) -> dict[str, Any]:
    """An audio backend's counters (underruns, overruns ...) as a dict; {} if it has none."""
    counters = getattr(audio, "counters", None)
    if counters is None:
        return {}
    if is_dataclass(counters) and not isinstance(counters, type):
        return asdict(counters)
    return dict(counters)


def _age_ms(record: FrameRecord) -> float:
    return (time.monotonic() - record.captured) * 1000.0
