"""What watching a conversation costs: metrics collection, exports and the dashboard's redraw,
each against the 80 ms frame budget.

    python -m benchmarks.bench_metrics [--frames 5000]

Two measurements side by side in one run:
- micro: each piece timed alone over `--frames` realistic frame records;
- in the loop: the collector's own account (time inside `on_frame` and `snapshot()` per frame)
  from a real conversation loop (scripted model and codec) with the session's exports on.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from assistant.conversation.loop import ConversationLoop, LoopEvents
from assistant.conversation.session import SessionWriter
from assistant.dashboard.view import render
from assistant.frames import FRAME_MS, FRAME_RATE
from assistant.telemetry.metrics import MetricsCollector
from assistant.telemetry.model_card import ModelCard
from assistant.telemetry.records import FrameRecord
from assistant.telemetry.trace import ChromeTrace
from tests.support.fakes import FakeAudio, FakeCodec, ScriptedEngine, speech_like

BUDGET_US = FRAME_MS * 1000.0
CARD = ModelCard(
    "moshiko-q4", "moshiko", "q4", 4, 32, 4.53, 4_805_545_040, 7_690_000_000, 3.2, 5_600_000_000
)


def record(i: int) -> FrameRecord:
    t = i * 0.08
    r = FrameRecord(index=i, captured=t, model_step=i, model_queue_depth=i % 2)
    r.encode_start, r.encode_end = t, t + 0.021 + (i % 7) * 1e-3
    r.step_start, r.step_end = r.encode_end, r.encode_end + 0.050 + (i % 5) * 1e-3
    r.decode_start, r.decode_end = r.step_end, r.step_end + 0.022
    r.queued_for_playout, r.heard = r.decode_end, r.decode_end + 0.3
    return r


def per_call_us(fn, items) -> float:
    samples = []
    for item in items:
        t0 = time.perf_counter_ns()
        fn(item)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return statistics.median(samples)


def micro(frames: int) -> dict[str, float]:
    records = [record(i) for i in range(frames)]
    collector = MetricsCollector()
    on_frame = per_call_us(collector.on_frame, records)
    snapshot = per_call_us(lambda _: collector.snapshot(), range(200))
    console = Console(file=io.StringIO(), width=80, height=24, force_terminal=True)
    snap = collector.snapshot()
    redraw = per_call_us(
        lambda _: console.print(
            render(CARD, snap, "hello there " * 40, width=80, height=24, max_delay_ms=500)
        ),
        range(100),
    )
    with tempfile.TemporaryDirectory() as tmp:
        trace = ChromeTrace(Path(tmp) / "trace.json", t0=0.0)
        trace_frame = per_call_us(trace.frame, records)
        trace.close()
    return {
        "on_frame": on_frame,
        "snapshot": snapshot,
        "redraw": redraw,
        "trace": trace_frame,
    }


def in_loop(frames: int) -> float:
    collector = MetricsCollector()
    loop = ConversationLoop(
        FakeAudio(speech_like(frames)),
        FakeCodec(),
        ScriptedEngine(),
        events=LoopEvents(on_frame=collector.on_frame),
    )
    with tempfile.TemporaryDirectory() as tmp:
        loop.session = SessionWriter(Path(tmp), loop.stats, metrics=collector)
        loop.run(duration_s=600)
    return collector.snapshot().collection_us_per_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000)
    args = parser.parse_args()
    m = micro(args.frames)
    loop_us = in_loop(min(args.frames, 2000))
    # Per frame: one on_frame; snapshots at 2 Hz (dashboard) + 1 Hz (exports) = 0.24 a frame.
    per_frame = m["on_frame"] + m["snapshot"] * 3 / FRAME_RATE
    redraw_per_frame = m["redraw"] * 2 / FRAME_RATE

    def row(label: str, us: float) -> None:
        print(f"{label:<44} {us:9.1f} µs  {us / BUDGET_US:7.3%} of the 80 ms budget")

    print(f"median over {args.frames} frames (micro) and a {min(args.frames, 2000)}-frame loop\n")
    row("on_frame (per frame)", m["on_frame"])
    row("snapshot (per call)", m["snapshot"])
    row("collection per frame (1 on_frame + 0.24 snaps)", per_frame)
    row("collection per frame, measured in the loop", loop_us)
    row("trace export (per frame)", m["trace"])
    row("dashboard redraw (per call)", m["redraw"])
    row("dashboard redraw per frame (2 Hz)", redraw_per_frame)


if __name__ == "__main__":
    main()
