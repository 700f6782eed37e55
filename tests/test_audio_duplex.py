"""Full-duplex audio through real PortAudio, on PulseAudio's virtual mic and speaker; and the
file-driven stand-in with the same interface."""

from __future__ import annotations

import shutil
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.duplex import DuplexAudio
from assistant.audio.file_backend import FileAudio
from assistant.audio.playout import FADE_SAMPLES
from assistant.audio.profiles import PROFILES
from assistant.audio.sound_files import frames, read_audio
from assistant.errors import AudioError
from assistant.frames import FRAME_SAMPLES
from tests.support.pulse_harness import (
    PulseAudio,
    best_match,
    make_speech,
    overlap,
    piecewise_match,
    reinit_portaudio,
    rms,
    start_server,
    stop_server,
)

SR = 24000

# Real PortAudio streams through PulseAudio in real time on a shared 2-core machine: a test
# glitched by a scheduling stall gets one rerun, reported by pytest -ra; a real fault fails twice.
pytestmark = pytest.mark.flaky(reruns=1)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("speech")
    return make_speech(
        folder / "speech.wav", "Hello there. Can you hear me clearly? One, two, three."
    )


def converse(audio: DuplexAudio, seconds: float, reply=None) -> list:
    """Read frames for `seconds`, answering each with `reply(frame)` (None: play nothing)."""
    got = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frame = audio.read_frame(timeout=1.0)
        if frame is None:
            continue
        got.append(frame)
        if reply is not None:
            audio.play_frame(reply(frame, len(got) - 1))
    return got


def capture_and_echo(pulse: PulseAudio, speech: Path, tmp_path: Path, **kw: object) -> dict:
    """Speech played into the mic, every captured frame played straight back."""
    clean = read_audio(speech)
    recorder = pulse.record_speaker(tmp_path / "speaker.wav")
    try:
        with DuplexAudio(**kw) as audio:  # type: ignore[arg-type]
            converse(audio, 0.5)  # let the streams settle before the speech starts
            player = pulse.play_into_mic(speech, wait=False)
            try:
                got = converse(audio, len(clean) / SR + 1.0, reply=lambda f, i: f.samples)
                player.wait(timeout=30)
            finally:
                if player.poll() is None:  # failed meanwhile: stop what this test started
                    player.kill()
                    player.wait(timeout=10)
            counters, latency = audio.counters, audio.latency
            rates = (audio.input_rate, audio.output_rate)
            played = np.concatenate([c.samples for c in audio.drain_played()])
    finally:
        heard = recorder.stop()
    mic = np.concatenate([f.samples for f in got])
    return dict(
        clean=clean, mic=mic, heard=heard, played=played, times=[f.t_capture for f in got],
        counters=counters, latency=latency, rates=rates,
    )  # fmt: skip


def test_capture_and_full_duplex_echo_at_24khz(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    r = capture_and_echo(pulse, speech, tmp_path)
    clean = r["clean"]
    lag, corr = best_match(r["mic"], clean)
    assert corr > 0.97, f"captured speech correlates {corr:.3f}"
    got, want = overlap(r["mic"], clean, lag)
    assert 0.8 < rms(got) / rms(want) < 1.25
    # What reached the speaker: the mic's audio, after a 2-frame playout buffer. Compared with
    # what was captured (pushed back), half a second at a time: on a starved CPU a late frame
    # leaves a gap that shifts what follows, and a burst of input after a stall is a lasting
    # excess the playout trims (counted in playout_drops). Either spoils the piece it falls in,
    # not the median; pieces played intact match exactly.
    corr_played = piecewise_match(r["played"], r["mic"], seconds=0.5)
    corr_out = piecewise_match(r["heard"], r["mic"], seconds=0.5)
    why = f"played {corr_played:.3f}, heard {corr_out:.3f}, {r['counters']}"
    assert corr_played > 0.97, why
    assert corr_out > 0.97, why
    steps = np.diff(r["times"])
    assert np.median(steps) == pytest.approx(0.08, abs=0.002)
    assert np.all(steps > 0)
    c = r["counters"]
    assert c.callback_errors == 0 and c.overruns == 0
    assert c.gaps <= 2  # the 2-frame playout buffer absorbs the callbacks' jitter
    assert r["rates"] == (SR, SR)
    assert 0 < r["latency"].input_s < 1 and 0 < r["latency"].output_s < 1


@pytest.mark.slow
def test_devices_opened_at_48khz_are_resampled(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    r = capture_and_echo(pulse, speech, tmp_path, device_rate=48000)
    assert r["rates"] == (48000, 48000)
    corr = piecewise_match(r["mic"], r["clean"])
    assert corr > 0.95, f"captured speech correlates {corr:.3f} through the resampler"
    # What was heard against what was captured and pushed back, as at 24 kHz above. (What our
    # side pushed, before the output resampler, tells its faults from the sound server's.)
    corr_out = piecewise_match(r["heard"], r["mic"], seconds=0.5)
    corr_played = piecewise_match(r["played"], r["mic"], seconds=0.5)
    assert corr_out > 0.95, (
        f"echoed speech correlates {corr_out:.3f} through two resamplers "
        f"(pushed: {corr_played:.3f}; {r['counters']})"
    )
    assert r["counters"].callback_errors == 0


def test_playout_of_a_chirp_is_intact(pulse: PulseAudio, tmp_path: Path) -> None:
    t = np.arange(2 * SR) / SR
    chirp = (0.5 * np.sin(2 * np.pi * (200 * t + 450 * t**2))).astype(np.float32)  # 200->2000 Hz
    chunks = frames(np.concatenate([chirp, np.zeros(SR, np.float32)]))  # a second to drain
    recorder = pulse.record_speaker(tmp_path / "chirp.wav")
    try:
        with DuplexAudio() as audio:
            converse(audio, 0.3)
            silence = np.zeros(FRAME_SAMPLES, np.float32)
            got = converse(
                audio,
                len(chunks) * 0.08,
                reply=lambda f, i: chunks[i] if i < len(chunks) else silence,
            )
            played = np.concatenate([c.samples for c in audio.drain_played()])
            gaps = audio.counters.gaps
    finally:
        heard = recorder.stop()
    assert len(got) >= len(chunks) - 2
    corr = piecewise_match(heard, chirp, seconds=0.5)
    assert corr > 0.97, f"recorded chirp correlates {corr:.3f}"
    assert gaps <= 2
    if gaps == 0:  # the played record is exactly what was pushed (a gap would add silence)
        lag, _ = best_match(played, chirp)
        start = lag + FADE_SAMPLES  # playback fades in over its first 5 ms
        np.testing.assert_allclose(
            played[start : lag + len(chirp)], chirp[FADE_SAMPLES:], atol=1e-6
        )


def test_nothing_pushed_plays_silence_and_is_no_underrun(pulse: PulseAudio) -> None:
    with DuplexAudio() as audio:
        converse(audio, 0.8)
        counters = audio.counters
        played = audio.drain_played()
    assert counters.underruns == 0 and counters.gaps == 0  # nothing ran dry: nothing played
    assert counters.frames_played == 0
    assert played and not any(c.samples.any() for c in played)


def test_unknown_device_fails_to_start(pulse: PulseAudio) -> None:
    with pytest.raises(AudioError, match="no input device matches 'usb headset'"):
        DuplexAudio(input_device="usb headset").start()
    audio = DuplexAudio()
    with pytest.raises(AudioError, match="not started"):
        audio.read_frame()


@pytest.mark.slow
def test_vanishing_sound_server_surfaces_from_read_frame(
    pulse: PulseAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server of its own to kill, so that other tests (or test sessions) keep theirs.
    runtime_dir = Path(tempfile.mkdtemp(prefix="pa-", dir="/tmp"))  # short: a socket path
    try:
        monkeypatch.setenv("PULSE_SERVER", start_server(runtime_dir)["PULSE_SERVER"])
        reinit_portaudio()
        with DuplexAudio(stall_timeout_s=2.0) as audio:
            converse(audio, 0.5)
            stop_server(runtime_dir)  # as if the device was unplugged
            deadline = time.monotonic() + 6
            with pytest.raises(AudioError, match=r"stopped") as e:
                while time.monotonic() < deadline:
                    audio.read_frame(timeout=0.5)
            assert audio.finished
            assert "\n" not in str(e.value)
    finally:
        stop_server(runtime_dir)
        monkeypatch.undo()
        reinit_portaudio()
        shutil.rmtree(runtime_dir, ignore_errors=True)


# --- FileAudio ---------------------------------------------------------------------------------


def test_file_audio_fast_delivers_input_then_tail_then_end(tmp_path: Path) -> None:
    source = np.linspace(-0.5, 0.5, 5 * FRAME_SAMPLES + 100, dtype=np.float32)
    out = tmp_path / "assistant.wav"
    audio = FileAudio(source, out, realtime=False, tail_s=0.4)
    with audio:
        got = []
        while (frame := audio.read_frame(timeout=0.01)) is not None:
            got.append(frame)
            audio.play_frame(frame.samples * 0.5)
        assert audio.finished
        assert audio.read_frame() is None
        assert len(audio.drain_played()) == len(got)
    assert len(got) == 6 + 5  # 5 frames and a bit, padded; then 0.4 s of silence
    np.testing.assert_array_equal(np.concatenate([f.samples for f in got])[: len(source)], source)
    assert not np.concatenate([f.samples for f in got[6:]]).any()
    assert audio.counters.frames_captured == 11 and audio.counters.frames_played == 11
    with wave.open(str(out)) as w:
        assert w.getframerate() == SR and w.getnframes() == 11 * FRAME_SAMPLES
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32767
    np.testing.assert_allclose(pcm[: len(source)], source * 0.5, atol=1e-4)


def test_file_audio_realtime_paces_frames_at_80ms(speech: Path) -> None:
    with FileAudio(speech, realtime=True, tail_s=0) as audio:
        start = time.monotonic()
        stamps = []
        for _ in range(6):
            frame = audio.read_frame(timeout=1.0)
            assert frame is not None
            stamps.append(frame.t_capture)
        elapsed = time.monotonic() - start
        assert audio.read_frame(timeout=0.0) is None  # the next one is not due yet
        assert not audio.finished
    assert elapsed == pytest.approx(6 * 0.08, abs=0.05)
    assert np.diff(stamps) == pytest.approx(0.08, abs=1e-9)


def test_file_audio_reports_an_unreadable_source(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such audio file"):
        FileAudio(tmp_path / "missing.wav").start()


def test_a_device_refusing_small_blocks_gets_a_larger_one_and_says_so(
    pulse: PulseAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device whose driver refuses blocks under 20 ms: the stream opens at 20 ms, the user
    is told, and audio flows."""
    import sounddevice as sd

    real = sd.OutputStream

    def picky(*args, blocksize: int, **kwargs):
        if blocksize < 480:
            raise sd.PortAudioError("Invalid number of frames per buffer", -9986)
        return real(*args, blocksize=blocksize, **kwargs)

    monkeypatch.setattr(sd, "OutputStream", picky)
    with DuplexAudio(profile=PROFILES["low"]) as audio:
        converse(audio, 0.5, reply=lambda f, i: f.samples)
        notices = audio.drain_notices()
        blocks = dict(audio.blocks)
    assert blocks == {"input": 120, "output": 480}
    assert notices == [
        f"the output device {audio.output_device.label} refused 5 ms blocks; using 20 ms"
    ]
