"""The streaming WAV writer: a valid file after every flush, even if the process dies."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.wav_writer import StreamingWavWriter
from assistant.errors import AudioError

ROOT = Path(__file__).resolve().parents[1]


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), pcm.astype(np.float32) / 32767


def test_valid_after_flush_without_close(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    signal_ = np.sin(np.linspace(0, 100, 24000)).astype(np.float32) * 0.5
    writer = StreamingWavWriter(path, flush_every_s=None)
    writer.write(signal_[:10000])
    rate, got = read_wav(path)  # nothing flushed yet: a valid, empty WAV
    assert rate == 24000 and len(got) == 0
    writer.write(signal_[10000:])
    writer.flush()
    _, got = read_wav(path)
    np.testing.assert_allclose(got, signal_, atol=1 / 32767)
    writer.write(signal_)
    assert writer.samples_written == 48000 and writer.duration_s == 2.0
    writer.close()
    _, got = read_wav(path)
    assert len(got) == 48000
    writer.write(signal_)  # after close: ignored
    writer.close()


def test_auto_flush_clips_and_cleans(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    with StreamingWavWriter(path, flush_every_s=0.1) as writer:
        writer.write(np.array([2.0, -2.0, np.nan, 0.5] * 600, np.float32))  # 2400 = 0.1 s
        _, got = read_wav(path)  # flushed by itself
        assert len(got) == 2400
        np.testing.assert_allclose(got[:4], [1.0, -1.0, 0.0, 0.5], atol=1e-4)


def test_survives_sigkill_after_flushes(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    script = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        from assistant.audio.wav_writer import StreamingWavWriter
        w = StreamingWavWriter({str(path)!r}, flush_every_s=None)
        for i in range(5):
            w.write(np.full(24000, 0.25, np.float32))
            w.flush()
        w.write(np.full(12000, 0.75, np.float32))  # written, never flushed: lost
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    rate, got = read_wav(path)
    assert rate == 24000 and len(got) == 5 * 24000
    np.testing.assert_allclose(got, 0.25, atol=1e-4)


def test_unwritable_path_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "rec.wav"
    with pytest.raises(AudioError, match="cannot write the recording") as e:
        StreamingWavWriter(path)
    assert str(path) in str(e.value)


def test_disk_full_raises_once_then_the_caller_keeps_going(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    writer = StreamingWavWriter(path, flush_every_s=None)
    writer.write(np.zeros(24000, np.float32))
    writer.flush()

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    writer._file.write = full  # type: ignore[method-assign]
    writer.write(np.zeros(24000, np.float32))
    with pytest.raises(AudioError, match="No space left on device") as e:
        writer.flush()
    assert str(path) in str(e.value)
    assert writer.failed
    writer.write(np.zeros(24000, np.float32))  # ignored: no second error
    writer.flush()
    writer.close()
    _, got = read_wav(path)  # what was flushed before the failure is intact
    assert len(got) == 24000


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_real_device_full(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="/dev/full"):
        writer = StreamingWavWriter("/dev/full", flush_every_s=None)
        writer.write(np.zeros(100000, np.float32))
        writer.flush()


def test_flush_is_cheap_enough_for_a_live_loop(tmp_path: Path) -> None:
    writer = StreamingWavWriter(tmp_path / "rec.wav", flush_every_s=None)
    frame = np.zeros(1920, np.float32)
    start = time.perf_counter()
    for _ in range(100):
        writer.write(frame)
        writer.flush()
    per_flush = (time.perf_counter() - start) / 100
    writer.close()
    assert per_flush < 0.005  # ~20 us here; the loop has 80 ms per frame


def test_a_write_cut_short_by_a_full_disk_leaves_header_and_data_agreeing(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    writer = StreamingWavWriter(path, flush_every_s=None)
    writer.write(np.full(24000, 0.5, np.float32))
    writer.flush()
    assert writer._file is not None
    real_write = writer._file.write
    calls = {"n": 0}

    def part_then_full(data) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(bytes(data)[:1000])  # some of it reaches the disk ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then none

    writer._file.write = part_then_full  # type: ignore[method-assign]
    writer.write(np.full(24000, 0.25, np.float32))
    with pytest.raises(AudioError, match="No space left on device"):
        writer.flush()
    writer.close()
    raw = path.read_bytes()
    data_bytes = int.from_bytes(raw[40:44], "little")
    assert data_bytes == 48000 and len(raw) == 44 + data_bytes  # cut back to the last flush
    assert int.from_bytes(raw[4:8], "little") == 36 + data_bytes
    _, got = read_wav(path)
    assert len(got) == 24000 and np.allclose(got, 0.5, atol=1e-3)
