"""The terminal dashboard: rendered to fixed-size consoles, then live under a real terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from rich.console import Console

from assistant.checkpoint.synthetic.checkpoint import cached_mimi_path
from assistant.checkpoint.writing import link_or_copy
from assistant.cli.demo import DEMO_CACHE
from assistant.conversation.transcript import Transcript
from assistant.dashboard.view import render, sparkline
from assistant.telemetry.metrics import MetricsCollector, MetricSources
from assistant.telemetry.model_card import ModelCard
from tests.support.fakes import scripted

CARD = ModelCard(
    label="moshiko-q4",
    voice="moshiko",
    quantization="q4",
    bits=4,
    group_size=32,
    bits_per_weight=4.53,
    file_size=4_805_545_040,
    parameters=7_690_000_000,
    load_seconds=3.2,
    memory_estimate=5_600_000_000,
)


def busy_collector() -> MetricsCollector:
    m = MetricsCollector(
        MetricSources(
            audio_counters=lambda: {"underruns": 2, "overruns": 1},
            echo_reduction_db=lambda: 42.0,
        )
    )
    for i in range(40):
        m.on_frame(scripted(i, encode=21, step=48 + i % 5, decode=23, delay=380 + i % 7))
    m.on_frame(scripted(40, encode=21, step=None, decode=0, delay=None))
    return m


def screen(width: int, height: int, transcript: str = "") -> tuple[str, list[str]]:
    console = Console(width=width, height=height, record=True, force_terminal=True)
    console.print(
        render(
            CARD,
            busy_collector().snapshot(),
            transcript,
            width=width,
            height=height,
            max_delay_ms=500,
            status="listening",
        )
    )
    text = console.export_text()
    return text, text.rstrip("\n").split("\n")


def test_fits_80x24_and_shows_every_figure() -> None:
    words = "\n".join(f"utterance {i}: the weather is mild today" for i in range(30))
    text, lines = screen(80, 24, words)
    assert len(lines) <= 23, f"{len(lines)} rows"  # one spare row under the live area
    assert max(len(line) for line in lines) <= 80
    # The model and its quantization.
    for expected in ("moshiko-q4", "q4 (4 bits, group 32)", "4.53 bits/weight", "4.8 GB"):
        assert expected in text, expected
    assert "7.69 B params" in text and "loaded in 3.2 s" in text and "needs ~5.6 GB" in text
    # Latency per stage against the budget, with history.
    for label in ("encode", "model step", "decode", "mic→speaker", "budget"):
        assert label in text, label
    step_row = next(line for line in lines if "model step" in line)
    assert re.search(r"model step\s+52\.0\s+50\.0\s+52\.0\s+52\.0", step_row), step_row
    assert any(c in step_row for c in "▁▂▃▄▅▆▇█")
    # Loop health.
    assert "real-time factor 0.62 · keeping up" in text and "dropped 1 in, 0 out" in text
    assert "underruns 2" in text and "overruns 1" in text and "AEC 42 dB" in text
    assert "MLX" in text and "RSS" in text
    # The newest transcript lines, the oldest scrolled away.
    assert "utterance 29" in text and "utterance 0:" not in text


def test_small_terminal_gets_a_digest_not_a_broken_layout() -> None:
    text, lines = screen(60, 12)
    assert len(lines) <= 3 and max(len(line) for line in lines) <= 60
    assert "needs 80x24" in text and "60x12" in text and "step p95 52 ms" in text


def test_sparkline_and_transcript_helpers() -> None:
    assert sparkline([0, 40, 80, 160], 10, 80) == "▁▅██"
    assert sparkline([10.0] * 30, 5, 80) == "▂" * 5
    t = Transcript(limit=50)
    t.add(0.0, "Hello")
    t.add(0.08, " there")
    t.add(3.0, "Again")  # after a pause: a new line
    assert t.text == "Hello there\nAgain"
    for i in range(100):
        t.add(4.0 + i * 0.08, " word")
    assert len(t.text) == 50


def test_live_dashboard_in_a_real_terminal(tmp_path: Path, mimi_file: Path) -> None:
    """`assistant demo` under an 80x24 pseudo-terminal draws the dashboard; piped, it prints
    the plain transcript (the other demo tests). The demo's Mimi cache is the run's file,
    linked (test_demo.py's run writes its own: writing 385 MB is not what is shown here)."""
    cached = cached_mimi_path(tmp_path / DEMO_CACHE, seed=0)  # the demo's seed
    cached.parent.mkdir(parents=True)
    link_or_copy(mimi_file, cached)
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    env.pop("CI", None)  # rich treats CI as a non-interactive terminal
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "demo", "--text", "Hello there.", "--realtime"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=tmp_path,
    )
    os.close(secondary)
    out = bytearray()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(main)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-2000:]
    assert "latency (ms), last" in text and "model step" in text and "Moshi says" in text
    assert "\x1b[" in text  # drawn with cursor movement, i.e. live
    assert "Session" in text  # the summary after it
