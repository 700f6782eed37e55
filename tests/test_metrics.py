"""Metrics from frame records: scripted timings with known answers, then a real loop."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from assistant.conversation.lag import LagPolicy
from assistant.conversation.loop import ConversationLoop, LoopEvents
from assistant.conversation.session import SessionWriter
from assistant.telemetry.metrics import WINDOW_FRAMES, MetricsCollector, MetricSources
from assistant.telemetry.records import FrameRecord
from tests.support.fakes import FakeAudio, FakeCodec, ScriptedEngine, scripted, speech_like


def test_percentiles_drops_and_delay_from_scripted_frames() -> None:
    m = MetricsCollector()
    # Steps of 1, 2, ... 100 ms; delays of 201 ... 300 ms; encode 10 ms, decode 20 ms.
    for i in range(100):
        m.on_frame(scripted(i, encode=10, step=i + 1, decode=20, delay=201 + i))
    m.on_frame(scripted(100, encode=10, step=None, decode=0, delay=None))  # dropped in
    m.on_frame(scripted(101, encode=10, step=50, decode=20, delay=None))  # dropped out
    m.on_frame(scripted(102, encode=10, step=None, decode=0, delay=None))  # dropped in

    snap = m.snapshot()
    f = snap.frames
    assert (f.finished, f.answered, f.played) == (103, 101, 100)
    assert (f.dropped_input, f.dropped_output, f.dropped) == (2, 1, 3)

    # The window holds all 101 steps (1..100 and the 50 of the frame dropped at the speaker):
    # nearest rank p50 is the 51st value, p95 the 96th, p99 the 100th.
    step = snap.stages["step"]
    assert step.window.count == 101 and step.last == pytest.approx(50)
    assert step.window.p50 == pytest.approx(50)
    assert step.window.p95 == pytest.approx(95)
    assert step.window.p99 == pytest.approx(99)
    assert step.window.max == pytest.approx(100)
    assert step.window.mean == pytest.approx((5050 + 50) / 101)
    # The session's histogram agrees to its 0.1 ms bin.
    for q in ("p50", "p95", "p99", "max"):
        assert getattr(step.session, q) == pytest.approx(getattr(step.window, q), abs=0.1)

    delay = snap.stages["delay"]
    assert delay.window.count == 100
    assert (delay.window.p50, delay.window.p95, delay.window.p99) == pytest.approx((250, 295, 299))
    assert snap.stages["encode"].window.p99 == pytest.approx(10)
    assert snap.stages["decode"].window.count == 101
    assert snap.real_time_factor == pytest.approx(step.window.mean / 80)
    assert snap.bottleneck == "step"


def test_recent_window_forgets_and_session_remembers() -> None:
    m = MetricsCollector()
    for i in range(WINDOW_FRAMES):  # a slow start: 70 ms steps
        m.on_frame(scripted(i, encode=5, step=70, decode=5, delay=300))
    for i in range(WINDOW_FRAMES, 2 * WINDOW_FRAMES):  # then 10 ms steps
        m.on_frame(scripted(i, encode=5, step=10, decode=5, delay=200))
    step = m.snapshot().stages["step"]
    assert step.window.count == WINDOW_FRAMES and step.window.max == pytest.approx(10)
    assert step.session.count == 2 * WINDOW_FRAMES
    assert step.session.max == pytest.approx(70) and step.session.p99 == pytest.approx(70)
    assert step.session.mean == pytest.approx(40)


def test_a_reset_starts_over_with_the_new_runs_sources() -> None:
    m = MetricsCollector(MetricSources(echo_reduction_db=lambda: 10.0))
    for i in range(5):
        m.on_frame(scripted(i, encode=5, step=70, decode=5, delay=300))
    m.reset(MetricSources(echo_reduction_db=lambda: 41.5))
    m.on_frame(scripted(0, encode=5, step=10, decode=5, delay=200))
    snap = m.snapshot()
    assert snap.frames.finished == 1 and snap.stages["step"].session.count == 1
    assert snap.stages["step"].session.max == pytest.approx(10)
    assert snap.echo_reduction_db == 41.5


def test_sources_and_memory_are_reported() -> None:
    m = MetricsCollector(
        MetricSources(
            audio_counters=lambda: {"underruns": 3, "overruns": 1, "gaps": 2, "other": 9},
            echo_reduction_db=lambda: 41.5,
        )
    )
    snap = m.snapshot()
    assert snap.audio["underruns"] == 3 and snap.audio["overruns"] == 1
    assert snap.echo_reduction_db == 41.5
    assert snap.memory.rss > 10_000_000 and snap.memory.rss_peak >= snap.memory.rss
    d = snap.to_dict()
    json.dumps(d)  # exportable as is
    assert d["frames"]["dropped"] == 0 and "collection_share_of_budget" in d


@pytest.mark.realtime  # real-time input against a slow model: the drops depend on the pace
def test_real_loop_metrics_match_its_records_exactly(tmp_path: Path) -> None:
    """A loop with a model 2.5x too slow: what the collector reports is exactly what the
    records and the loop's counters say, drops included."""
    audio = FakeAudio(speech_like(30), period_s=0.08)
    records: list[FrameRecord] = []
    m = MetricsCollector()

    def on_frame(record: FrameRecord) -> None:
        records.append(record)
        m.on_frame(record)

    loop = ConversationLoop(
        audio,
        FakeCodec(),
        ScriptedEngine(step_s=0.2),
        policy=LagPolicy(max_delay_ms=400),
        events=LoopEvents(on_frame=on_frame),
    )
    loop.session = SessionWriter(tmp_path, loop.stats, metrics=m)
    loop.run(duration_s=30)
    snap = m.snapshot()
    c = loop.counters
    assert c.dropped_input > 0
    assert snap.frames.dropped_input == c.dropped_input
    assert snap.frames.dropped_output == c.dropped_output
    assert snap.frames.answered == c.frames_stepped
    assert snap.frames.played == c.frames_played
    delays = sorted(r.delay_ms for r in records if r.delay_ms is not None)
    assert snap.stages["delay"].window.count == len(delays) == c.frames_played
    assert snap.stages["delay"].window.max == pytest.approx(delays[-1])
    assert snap.stages["delay"].window.p50 == pytest.approx(delays[(len(delays) + 1) // 2 - 1])
    assert snap.real_time_factor > 2.0  # 200 ms steps against 80 ms frames
    # The loop's own delay histogram (used for its lag control) saw the same values.
    assert loop.timings["delay"].maximum == pytest.approx(delays[-1])
    # The session's metrics log: one JSON line a second, the last one matching the records.
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert lines and json.loads(lines[-1])["frames"]["finished"] == len(records)


def test_the_lag_control_plans_with_a_high_quantile_of_each_stage() -> None:
    m = MetricsCollector()
    assert m.recent_high("encode") == 0.0  # nothing yet
    for i in range(10):
        m.on_frame(FrameRecord(index=i, captured=0.0, encode_start=0.0, encode_end=(i + 1) / 1000))
    assert m.recent_high("encode") == pytest.approx(10.0)  # the 0.9 quantile of 1..10 ms
    assert m.recent_high("encode", 0.5) == pytest.approx(6.0)


class _FakeProcess:
    """What `tree_rss` reads of a psutil.Process; `gone` makes ppid() fail, as for a process
    that exits between two reads."""

    def __init__(self, pid: int, ppid: int, rss: int, kids: tuple = (), gone: bool = False) -> None:
        self.pid, self._ppid, self._rss, self._kids, self._gone = pid, ppid, rss, kids, gone

    def children(self, recursive: bool = False) -> list[_FakeProcess]:
        return list(self._kids)

    def memory_info(self) -> SimpleNamespace:
        return SimpleNamespace(rss=self._rss)

    def ppid(self) -> int:
        if self._gone:
            raise psutil.NoSuchProcess(self.pid)
        return self._ppid


def test_tree_rss_counts_a_forked_grandchild_beyond_its_parent_and_skips_the_vanished() -> None:
    from assistant.telemetry.metrics import tree_rss

    server = _FakeProcess(2, 1, 400)
    worker = _FakeProcess(3, 2, 430)  # forked by the server: 30 of its own
    vanished = _FakeProcess(4, 1, 999, gone=True)  # exits between memory_info() and ppid()
    spawned = _FakeProcess(5, 1, 50)
    root = _FakeProcess(1, 0, 100, (server, worker, vanished, spawned))
    assert tree_rss(root) == 100 + 400 + 30 + 50
