"""The real-time path through real PortAudio (PulseAudio virtual devices): a loop slower than
real time still plays (gaps, never silence), small blocks keep the audio intact, and
`assistant latency` measures a loopback it has never been told about.

Tolerant: these run in real time on a shared 2-core machine. Figures are printed (pytest -s);
`benchmarks/bench_realtime.py` measures the same things on an idle machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.duplex import DuplexAudio
from assistant.audio.profiles import PROFILES
from assistant.audio.sound_files import read_audio
from assistant.conversation.lag import LagPolicy
from assistant.conversation.loop import ConversationLoop
from assistant.conversation.passthrough import PassthroughCodec, PassthroughEngine
from assistant.frames import FRAME_SAMPLES
from tests.support.pulse_harness import PulseAudio, make_speech, piecewise_match

pytestmark = pytest.mark.slow

SPEECH = "One, two, three, four, five. The quick brown fox jumps over the lazy dog, twice."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_speech(tmp_path_factory.mktemp("speech") / "speech.wav", SPEECH)


def audible_windows(pcm: np.ndarray, floor_db: float = -45.0) -> float:
    n = len(pcm) // FRAME_SAMPLES
    w = pcm[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES).astype(np.float64)
    return float(np.mean(10 * np.log10(np.mean(w**2, axis=1) + 1e-12) > floor_db))


def run_loop(pulse: PulseAudio, speech: Path, tmp: Path, *, profile: str, step_s: float) -> dict:
    """Speech into the microphone, the pass-through loop (a model taking `step_s` a step),
    the speaker recorded."""
    audio = DuplexAudio(profile=PROFILES[profile]).start()
    loop = ConversationLoop(
        audio,
        PassthroughCodec(),
        PassthroughEngine(step_s=step_s),
        policy=LagPolicy(max_delay_ms=500),
    )
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    try:
        time.sleep(0.5)
        recorder = pulse.record_speaker(tmp / "speaker.wav")
        pulse.play_into_mic(speech)
        time.sleep(1.0)
        heard = recorder.stop()
    finally:
        loop.request_stop()
        runner.join(10)
        audio.stop()
    return {"heard": heard, "counters": audio.counters, "loop": loop}


def test_a_loop_three_times_too_slow_is_heard_with_gaps_never_silence(
    pulse: PulseAudio, speech: Path, tmp_path: Path
) -> None:
    """The old playout waited for a 2-frame cushion that a slow loop never filled, then
    dropped every frame as late: total silence. Now each frame plays after a short cushion."""
    r = run_loop(pulse, speech, tmp_path, profile="balanced", step_s=0.24)
    clean = read_audio(speech)
    voiced = audible_windows(clean)
    share = audible_windows(r["heard"])
    loop = r["loop"]
    print(
        f"\n3x slow model: {share:.0%} of speaker windows audible (the speech itself is "
        f"{voiced:.0%}); played {loop.counters.frames_played}, dropped "
        f"{loop.counters.dropped_input} in / {loop.counters.dropped_output} out; {r['counters']}"
    )
    assert loop.counters.frames_played >= 5
    assert share >= 0.1  # the target is 20% on an idle machine (benchmark)


# The "low" profile keeps almost no cushion: beside the parallel tests it failed 1 fresh-clone
# run in 6 with seconds' worth of underruns and trims (0.721), more than a tolerance should
# absorb. One rerun, reported with its reason, as the other real-device tests have.
@pytest.mark.flaky(reruns=1)
@pytest.mark.parametrize("profile", ["low", "balanced"])
def test_small_blocks_carry_speech_intact(
    pulse: PulseAudio, speech: Path, tmp_path: Path, profile: str
) -> None:
    r = run_loop(pulse, speech, tmp_path, profile=profile, step_s=0.0)
    # Half a second at a time: a burst of input after a stall is a lasting excess the playout
    # trims (playout_drops), which spoils the piece it falls in, not the median. (With 1 s
    # pieces, two trims of 220 ms in all once took it to 0.888.)
    corr = piecewise_match(r["heard"], read_audio(speech), seconds=0.5)
    c = r["counters"]
    print(f"\n{profile}: played speech correlates {corr:.3f} with the input; {c}")
    assert corr > 0.9, (corr, c)


def test_assistant_latency_measures_a_loopback(pulse: PulseAudio, tmp_path: Path) -> None:
    """A 100 ms loopback from the speaker into the microphone: the round trip less the
    loop's own mic-to-speaker figure is the loopback's delay."""
    echo = pulse.add_echo(latency_ms=100, volume_percent=100)
    try:
        env = os.environ | pulse.env | {"COLUMNS": "120"}
        out = subprocess.run(
            [sys.executable, "-m", "assistant", "latency", "--duration", "8"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        pulse.remove_echo(echo)
    text = out.stdout + out.stderr
    print(text)
    assert out.returncode == 0, text
    clicks = re.search(r"(\d+) of (\d+) clicks came back", text)
    outside = re.search(r"speaker to mic \(the rest\)\s*│\s*(-?\d+) ms", text)
    assert clicks and outside, text
    back, sent = int(clicks[1]), int(clicks[2])
    assert sent >= 6 and back >= sent // 2, text
    assert 60 <= int(outside[1]) <= 180, text  # the loopback: 100 ms, plus its own buffering


def test_a_speaker_that_goes_away_is_noticed(pulse: PulseAudio) -> None:
    """PulseAudio moves the stream when its sink is unloaded; PortAudio sees nothing, so the
    audio layer asks PulseAudio, and says where the sound went."""
    audio = DuplexAudio().start()
    try:
        # Until the watch has seen the first sink (it looks every 2 s): unloaded before, the
        # stream's new sink would be the first it sees, and no change.
        deadline = time.monotonic() + 30
        while audio._watch is None or audio._watch.first is None:
            assert time.monotonic() < deadline, "the sink watch never saw the speaker"
            time.sleep(0.05)
        modules = pulse.pactl("list", "short", "modules")
        vspk = next(line.split()[0] for line in modules.splitlines() if "sink_name=vspk" in line)
        pulse.pactl("unload-module", vspk)
        deadline, notices = time.monotonic() + 10, list[str]()
        while not notices and time.monotonic() < deadline:
            audio.read_frame(timeout=0.5)
            notices = audio.drain_notices()
    finally:
        audio.stop()
        pulse.restart()  # the next tests need vspk back
    assert notices and "the speaker 'vspk' went away" in notices[0], notices


def test_sink_watch_reports_a_move_once() -> None:
    from assistant.audio.pulse_watch import SinkWatch

    answers = iter([None, "vspk", "vspk", "vmic", "vmic"])
    watch = SinkWatch(lambda message: None, pid=1, lookup=lambda pid: next(answers))
    assert [watch.check() for _ in range(4)] == [
        None,
        None,
        None,
        "the speaker 'vspk' went away; Moshi now plays on 'vmic'",
    ]


def test_history_play_is_heard_through_the_speaker(pulse: PulseAudio, tmp_path: Path) -> None:
    """`assistant history play` sends a conversation (a 440 Hz user, a 660 Hz Moshi) to the
    default speaker: both are heard in what the speaker played."""
    from tests.support.history_folders import make_conversation, write_wav

    home = tmp_path / "home"
    folder = make_conversation(home / "sessions", seconds=2.0)
    write_wav(folder / "user.wav", 2.0, 440.0)
    write_wav(folder / "moshi.wav", 2.0, 660.0)
    env = os.environ | pulse.env | {"ASSISTANT_HOME": str(home)}
    recorder = pulse.record_speaker(tmp_path / "heard.wav")
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "history", "play", folder.name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    heard = recorder.stop()
    assert out.returncode == 0, out.stderr
    spectrum = np.abs(np.fft.rfft(heard))
    freqs = np.fft.rfftfreq(len(heard), 1 / 24000)

    def power(f: float) -> float:
        return float(spectrum[(freqs > f - 10) & (freqs < f + 10)].max())

    noise = float(np.median(spectrum))
    assert power(440) > 50 * noise and power(660) > 50 * noise, (power(440), power(660), noise)
