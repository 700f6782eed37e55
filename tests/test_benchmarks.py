"""Every benchmark runs, briefly: one that no longer fits the code fails here, not when someone
next needs its figures. Each runs as a user runs it (`python -m benchmarks.<name>`, from the
checkout) at the smallest sizes its options allow; the figures themselves are not checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, *args: str, home: Path) -> str:
    env = os.environ | {"ASSISTANT_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_bench_metrics(tmp_path: Path) -> None:
    out = run_benchmark("bench_metrics", "--frames", "50", home=tmp_path)
    assert "dashboard redraw per frame" in out and "measured in the loop" in out


def test_bench_engine_with_its_baselines(tmp_path: Path, tiny_checkpoint) -> None:
    """Also runs `host_work.py`, `engine_baselines.py` and `kv_cache.py` (the previous step);
    the TINY part is the micro one's code on bigger weights: a checkpoint stands in for it."""
    checkpoint = str(tiny_checkpoint("bf16"))
    out = run_benchmark(
        "bench_engine",
        *("--parts", "full,micro", "--reps", "1", "--steps", "3", "--warmup", "1"),
        *("--checkpoint", checkpoint, "--tiny-steps", "2"),
        home=tmp_path,
    )
    assert "Host work per step at full size" in out and "micro bf16 greedy" in out, out
    assert f"Checkpoint {checkpoint}" in out, out


def test_bench_value_checks(tmp_path: Path, synthetic_cache: Path, tiny_checkpoint) -> None:
    """The run's tiny checkpoints stand in for the ones it would make (make-checkpoint has
    tests of its own)."""
    out = run_benchmark(
        "bench_value_checks",
        *("--repeat", "1", "--mib", "16", "--cache", str(synthetic_cache)),
        *("--q4", str(tiny_checkpoint("q4")), "--bf16", str(tiny_checkpoint("bf16"))),
        home=tmp_path,
    )
    assert "Mimi codec file: 385 MB" in out and "Full-size moshiko" in out, out


def test_bench_synthetic(tmp_path: Path) -> None:
    out = run_benchmark(
        "bench_synthetic", "--only", "mimi", "--folder", str(tmp_path), home=tmp_path
    )
    assert "mimi" in out and "CPU-s" in out, out
    assert list(tmp_path.glob("**/*.safetensors")) == []  # each file deleted once measured


def test_bench_service(tmp_path: Path) -> None:
    out = run_benchmark(
        "bench_service", "--count", "10", "--timeout", "5", "--hold", "1", home=tmp_path
    )
    assert "restart after kill" in out and "FAILED" not in out, out


def test_broken_checkpoints(tmp_path: Path, tiny_checkpoint) -> None:
    """One case: tests/test_broken_checkpoints.py runs every case of the corpus."""
    source = str(tiny_checkpoint("q4"))
    out = run_benchmark(
        "broken_checkpoints", "--source", source, "--only", "model truncated", home=tmp_path
    )
    assert "1 cases, 1 runs: 1 clean refusals" in out, out


@pytest.mark.slow
@pytest.mark.realtime  # plays speech through PulseAudio and times the echo
@pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("pulseaudio") is None,
    reason="starts PulseAudio servers of its own (Linux, scripts/setup.sh installs it)",
)
def test_bench_realtime_delay(tmp_path: Path) -> None:
    out = run_benchmark(
        "bench_realtime",
        *("--only", "delay", "--seconds", "3", "--profiles", "balanced"),
        home=tmp_path,
    )
    assert "summary:" in out and "delay balanced:" in out, out


def test_bench_history_listing(tmp_path: Path) -> None:
    out = run_benchmark(
        "bench_history", "--sessions", "20", "--only", "list", "--runs", "1", home=tmp_path
    )
    assert "History of 20 conversations" in out and "list_conversations() in process" in out


@pytest.mark.slow
def test_bench_history_disturbance(tmp_path: Path, tiny_checkpoint, tiny_stt: Path) -> None:
    """The checkpoints the run shares stand in for the ones it would make (make-checkpoint has
    tests of its own)."""
    out = run_benchmark(
        "bench_history",
        *("--only", "disturbance", "--pending-seconds", "3", "--repeat", "1"),
        *("--speech-seconds", "0.5"),
        *("--checkpoint", str(tiny_checkpoint("q4")), "--stt", str(tiny_stt)),
        home=tmp_path,
    )
    assert "worker that never pauses" in out and "step p95" in out, out


def test_bench_stt_tiny(tmp_path: Path, synthetic_cache: Path) -> None:
    out = run_benchmark(
        "bench_stt",
        *("--parts", "tiny", "--tiny-frames", "3", "--tiny-seconds", "1", "--warmup", "1"),
        *("--dir", str(tmp_path / "ckpt"), "--cache", str(synthetic_cache)),
        home=tmp_path,
    )
    assert "s of audio per second" in out, out


def test_hostile_input(tmp_path: Path) -> None:
    """One case: tests/test_hostile_corpus.py runs every case of the corpus."""
    out = run_benchmark(
        "hostile_input", "--kind", "collision", "--only", "hard link", home=tmp_path
    )
    assert "| collision | hard link |" in out and "On target: collision" in out, out
