"""`assistant latency`: the user's own audio path, measured with the loop's real machinery.

The codec and the model are replaced by pass-through (`passthrough.py`); everything else is
what a conversation runs: the devices at the chosen latency profile, the frame assembly, the
three worker threads, the lag control, the playout cushion.

- clicks (default): the "model" answers with a click every `every_s`; the click leaves the
  speaker, reaches the microphone (through the air, or a loopback), travels the input path
  and arrives back at the model. That round trip is timed with one clock at one place (the
  model stage), so it does not depend on any figure the loop computes; it is reported next to
  the loop's own mic-to-speaker figure. Their difference, click by click against the loop's
  figure for the frame that carried the click out (the delay moves when the playout cushion
  adapts), is the path outside the computer (speaker to microphone): a few milliseconds
  through the air, more through a loopback, and far more when the loop's own figure is wrong.
- passthrough: the microphone is played back, so you hear yourself delayed by the path.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..audio.clicks import CLICK_SAMPLES, click, find_clicks
from ..audio.interface import AudioIO
from ..frames import FRAME_SAMPLES, SAMPLE_RATE
from ..telemetry.metrics import MetricsCollector
from ..telemetry.records import FrameRecord
from .lag import LagPolicy
from .loop import ConversationLoop, LoopEvents
from .passthrough import PassthroughCodec, PassthroughEngine


@dataclass(frozen=True)
class ClickTrip:
    sent_step: int
    round_trip_ms: float  # click leaves the model -> the same click arrives back at the model
    phase_ms: float  # where in its input frame it arrived (later in the frame: shorter wait)
    # The loop's own mic-to-speaker figure for the frame that carried the click out (known
    # once that frame was heard; None if it never was)
    loop_delay_ms: float | None = None

    @property
    def aligned_ms(self) -> float:
        """The round trip as the loop counts delay: from the first sample of a frame."""
        return self.round_trip_ms + self.phase_ms


@dataclass
class LatencyReport:
    mode: str
    profile: str
    blocks_ms: dict[str, float]
    device_latency_ms: dict[str, float]  # as PortAudio reports the opened streams
    seconds: float
    trips: list[ClickTrip] = field(default_factory=list)
    clicks_sent: int = 0
    loop_delay_p50_ms: float | None = None  # the loop's own mic-to-speaker figure
    loop_delay_p95_ms: float | None = None
    underruns: int = 0
    dropped: int = 0

    @property
    def round_trip_p50_ms(self) -> float | None:
        return _median([t.aligned_ms for t in self.trips])

    @property
    def outside_ms(self) -> float | None:
        """What the loop's own figure does not cover: speaker to microphone. The median, over
        the clicks, of each one's round trip less the loop's figure for its frame: when the
        loop's delay moves during the run (the playout cushion adapting after a stall), the
        medians of the two over the whole run describe different moments."""
        paired = [t.aligned_ms - t.loop_delay_ms for t in self.trips if t.loop_delay_ms is not None]
        if paired:
            return _median(paired)
        trip = self.round_trip_p50_ms
        if trip is None or self.loop_delay_p50_ms is None:
            return None
        return trip - self.loop_delay_p50_ms


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class ClickProbe:
    """The click mode's "model": sends a click every `every_s`, and finds clicks in what
    arrives from the microphone (the previous frame's tail kept, so none is split)."""

    def __init__(self, every_s: float = 1.0, on_trip: Callable[[ClickTrip], None] | None = None):
        self.every = max(2, round(every_s * SAMPLE_RATE / FRAME_SAMPLES))
        self.on_trip = on_trip
        self.sent: dict[int, float] = {}
        self.trips: list[ClickTrip] = []
        self._click = click()
        self._tail: np.ndarray = np.zeros(CLICK_SAMPLES, dtype=np.float32)
        self._lock = threading.Lock()

    def __call__(self, step: int, frame: np.ndarray) -> np.ndarray:
        now = time.monotonic()
        self._listen(frame, now)
        out = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        if step % self.every == 0:
            out[: len(self._click)] = self._click
            with self._lock:
                self.sent[step] = now
        return out

    def _listen(self, frame: np.ndarray, now: float) -> None:
        x = np.concatenate([self._tail, frame])
        self._tail = frame[-CLICK_SAMPLES:].copy()
        if float(np.abs(frame).max(initial=0.0)) < 0.01:
            return
        for pos in find_clicks(x, self._click, threshold=0.5):
            offset = pos - CLICK_SAMPLES  # in this frame (negative: it began in the last one)
            with self._lock:
                pending = [s for s in self.sent if s not in {t.sent_step for t in self.trips}]
                if not pending:
                    return
                step = max(pending)  # the latest click still on its way
                sent = self.sent[step]
            trip = ClickTrip(
                sent_step=step,
                round_trip_ms=(now - sent) * 1000.0,
                phase_ms=offset * 1000.0 / SAMPLE_RATE,
            )
            self.trips.append(trip)
            if self.on_trip is not None:
                self.on_trip(trip)


def run_latency_check(
    audio: AudioIO,
    *,
    passthrough: bool = False,
    duration_s: float | None = 10.0,
    every_s: float = 1.0,
    max_delay_ms: float = 2000.0,
    on_trip: Callable[[ClickTrip], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    profile: str = "",
    blocks_ms: dict[str, float] | None = None,
) -> LatencyReport:
    """Run the pass-through loop on started `audio` until `duration_s` (None: until `stop`)."""
    probe = None if passthrough else ClickProbe(every_s, on_trip)
    engine = PassthroughEngine(probe)
    metrics = MetricsCollector()
    frame_delays: dict[int, float] = {}  # model step -> the loop's mic-to-speaker figure, ms

    def on_frame(record: FrameRecord) -> None:
        if record.model_step is not None and record.delay_ms is not None:
            frame_delays[record.model_step] = record.delay_ms

    loop = ConversationLoop(
        audio,
        PassthroughCodec(),
        engine,
        policy=LagPolicy(max_delay_ms=max_delay_ms),
        events=LoopEvents(on_frame=on_frame, on_warning=on_warning),
        metrics=metrics,
    )
    if stop is not None:

        def watch() -> None:
            stop.wait()
            loop.request_stop()

        threading.Thread(target=watch, daemon=True, name="latency-stop").start()
    t0 = time.monotonic()
    loop.run(duration_s=duration_s)
    delay = metrics.snapshot().stages["delay"].session
    lat = audio.latency
    return LatencyReport(
        mode="passthrough" if passthrough else "clicks",
        profile=profile,
        blocks_ms=blocks_ms or {},
        device_latency_ms={"input": lat.input_s * 1000.0, "output": lat.output_s * 1000.0},
        seconds=time.monotonic() - t0,
        trips=[replace(t, loop_delay_ms=frame_delays.get(t.sent_step)) for t in probe.trips]
        if probe
        else [],
        clicks_sent=len(probe.sent) if probe else 0,
        loop_delay_p50_ms=delay.p50 if delay.count else None,
        loop_delay_p95_ms=delay.p95 if delay.count else None,
        underruns=audio.counters.underruns,
        dropped=loop.counters.dropped_input + loop.counters.dropped_output,
    )
