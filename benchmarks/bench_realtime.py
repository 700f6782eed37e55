"""The real-time path's targets, measured from outside the program (Linux, PulseAudio).

Sections (all by default; pick with --only):
  delay     pass-through delay per latency profile: a click train played into a combine sink
            that feeds both the virtual microphone and the recorded speaker, so the recording
            holds each click and its copy after the loop; the loop's own figure beside it
  overload  a model 3x slower than real time (pass-through, outside delay and how much is
            audible), and the real codec on this CPU (`assistant chat` on a tiny checkpoint)
  memory    `assistant chat --input` for --frames frames with the real codec: the process
            tree's peak memory per quarter (PSS, and RSS summed), sampled by this process
            from /proc
  stall     a thread ticking every 5 ms in the process that owns the codec, across roll-overs,
            beside the same thread while an instance is built in-process (how it was)
  startup   from `assistant chat` to "Listening" on the tiny checkpoint, through PulseAudio

Prints a table per section and a summary; asserts nothing. Run on an idle machine:
    python -m benchmarks.bench_realtime --only delay --seconds 300
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from assistant.audio.clicks import click, find_clicks
from assistant.audio.profiles import DEFAULT_PROFILE
from assistant.audio.sound_files import read_audio, write_wav
from assistant.frames import FRAME_SAMPLES, SAMPLE_RATE
from tests.support.pulse_harness import (
    PulseAudio,
    make_speech,
    reinit_portaudio,
    start_server,
    stop_server,
)

ROOT = Path(__file__).resolve().parents[1]

SPEECH = (
    "Hello Moshi. Can you hear me? Tell me something about the weather today, and then tell "
    "me about the mountains, the rivers and the sea. One, two, three, four, five."
)
RESULTS: dict[str, str] = {}


# --- helpers -----------------------------------------------------------------------------------
@contextlib.contextmanager
def private_pulse() -> Iterator[PulseAudio]:
    folder = Path(tempfile.mkdtemp(prefix="bench-pulse-"))
    env = start_server(folder)
    os.environ.update(env)
    reinit_portaudio()
    try:
        yield PulseAudio(env, folder)
    finally:
        stop_server(folder)


def click_train(path: Path, seconds: float, seed: int = 0) -> list[int]:
    """Clicks at irregular intervals (0.9-1.3 s: any phase against the 80 ms frames, and each
    copy, at most a second late, lands before the next click); returns their positions."""
    rng = np.random.default_rng(seed)
    pcm = np.zeros(round(seconds * SAMPLE_RATE), np.float32)
    c = click(0.6)
    t, where = 0.5, []
    while t < seconds - 1.0:
        i = round(t * SAMPLE_RATE)
        pcm[i : i + len(c)] = c
        where.append(i)
        t += rng.uniform(0.9, 1.3)
    write_wav(path, pcm)
    return where


def direct_and_copies(found: list[int], schedule: list[int]) -> list[tuple[int, int]]:
    """Which found clicks are the train itself and, for each, its copy. The train keeps the
    schedule's spacing (each click found within 5 ms of the previous one plus the scheduled
    interval: re-anchored every time, as the combine sink's clock drifts a little); a copy is
    the next found click, within 1 s, that is not part of the train."""
    tol = SAMPLE_RATE // 200
    best: list[int] = []
    for start in found[:8]:  # the first click heard may be a copy of nothing: try a few
        directs, at = [start], start
        for gap in np.diff(schedule):
            want = at + int(gap)
            near = [f for f in found if abs(f - want) <= tol]
            at = near[0] if near else want
            if near:
                directs.append(near[0])
        if len(directs) > len(best):
            best = directs
    train = set(best)
    pairs = []
    for d, following in zip(best, [*best[1:], best[-1] + SAMPLE_RATE], strict=True):
        # Its copy comes before the next click (the train's gaps are longer than any delay
        # the loop allows): a copy that was dropped is then missing, never mistaken.
        later = [f for f in found if d < f < following and f not in train]
        if later:
            pairs.append((d, later[0]))
    return pairs


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def audible_share(pcm: np.ndarray, start: int, end: int, floor_db: float = -45.0) -> float:
    """The share of 80 ms windows in [start, end) whose level is above `floor_db` dBFS."""
    seg = pcm[start:end]
    n = len(seg) // FRAME_SAMPLES
    if n == 0:
        return 0.0
    windows = seg[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES).astype(np.float64)
    level = 10 * np.log10(np.mean(windows**2, axis=1) + 1e-12)
    return float(np.mean(level > floor_db))


def table(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n## {title}")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


# --- delay -----------------------------------------------------------------------------------
def passthrough_run(
    pulse: PulseAudio,
    profile: str,
    seconds: float,
    step_s: float = 0.0,
    max_delay_ms: float = 500.0,
    echo: bool = False,
) -> dict:
    """The loop in pass-through behind real devices, clicks into mic and speaker at once;
    `echo`: with the echo canceller on, as `assistant chat` runs by default."""
    from assistant.audio.aec import EchoCanceller
    from assistant.audio.buffers import CapturedFrame
    from assistant.audio.duplex import DuplexAudio
    from assistant.audio.profiles import latency_profile
    from assistant.conversation.lag import LagPolicy
    from assistant.conversation.loop import ConversationLoop, LoopEvents
    from assistant.conversation.passthrough import PassthroughCodec, PassthroughEngine
    from assistant.telemetry.metrics import MetricsCollector

    class ClickSpotter(DuplexAudio):
        """Notes the capture time of each mic frame where a click starts, so the loop's own
        figure is read at the same moments as the outside one (its p95 over every frame
        also counts frames no click measured)."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.click_frames: set[float] = set()
            self._previous = False

        def read_frame(self, timeout: float | None = 1.0) -> CapturedFrame | None:
            frame = super().read_frame(timeout)
            if frame is not None:
                loud = bool(np.abs(frame.samples).max() > 0.15)
                if loud and not self._previous:
                    self.click_frames.add(frame.t_capture)
                self._previous = loud
            return frame

    combine = pulse.pactl(
        "load-module",
        "module-combine-sink",
        "sink_name=vboth",
        "slaves=vmic,vspk",
        f"rate={SAMPLE_RATE}",
        "channels=1",
    ).strip()
    try:
        work = Path(tempfile.mkdtemp(prefix="bench-delay-"))
        clicks = work / "clicks.wav"
        schedule = click_train(clicks, seconds)
        audio = ClickSpotter(profile=latency_profile(profile))
        audio.start()
        metrics = MetricsCollector()
        records: list = []
        loop = ConversationLoop(
            audio,
            PassthroughCodec(),
            PassthroughEngine(step_s=step_s),
            echo=EchoCanceller() if echo else None,
            policy=LagPolicy(max_delay_ms=max_delay_ms),
            events=LoopEvents(on_frame=records.append),
            metrics=metrics,
        )
        runner = threading.Thread(target=loop.run, name="loop", daemon=True)
        runner.start()
        time.sleep(1.0)
        recorder = pulse.record_speaker(work / "speaker.wav")
        player = subprocess.Popen(["paplay", "-d", "vboth", str(clicks)], env=pulse.client_env())
        player.wait(timeout=seconds + 60)
        time.sleep(1.5)
        heard = recorder.stop()
        loop.request_stop()
        runner.join(timeout=10)
        audio.stop()
    finally:
        pulse.pactl("unload-module", combine)
    found = find_clicks(heard, click(0.6), min_gap=SAMPLE_RATE // 25, threshold=0.15)
    # Each click appears twice: straight from the combine sink, then after the loop.
    pairs = direct_and_copies(found, schedule)
    outside = [(b - a) * 1000 / SAMPLE_RATE for a, b in pairs]
    snap = metrics.snapshot()
    delay = snap.stages["delay"].session
    at_clicks = [
        r.delay_ms for r in records if r.captured in audio.click_frames and r.delay_ms is not None
    ]
    c = audio.counters
    return {
        "profile": profile,
        "sent": len(schedule),
        "pairs": len(pairs),
        "outside": outside,
        "loop_p50": delay.p50,
        "loop_p95": delay.p95,
        "loop_at_clicks": at_clicks,
        "underruns": c.underruns,
        "gaps": c.gaps,
        "playout_drops": c.playout_drops,
        "dropped_frames": loop.counters.dropped_input + loop.counters.dropped_output,
        "played": loop.counters.frames_played,
        "heard": heard,
    }


def section_delay(seconds: float, profiles: list[str]) -> None:
    runs = [(profile, False) for profile in profiles]
    if DEFAULT_PROFILE in profiles:  # as `chat` runs by default: echo cancellation on
        runs.append((DEFAULT_PROFILE, True))
    with private_pulse() as pulse:
        for profile, echo in runs:
            r = passthrough_run(pulse, profile, seconds, echo=echo)
            o, c = r["outside"], r["loop_at_clicks"]
            rows = [
                ("clicks sent / found in pairs", f"{r['sent']} / {r['pairs']}"),
                (
                    "outside: p50 / p95 / max",
                    f"{pct(o, 50):.1f} / {pct(o, 95):.1f} / {max(o, default=float('nan')):.1f} ms",
                ),
                (
                    "loop's own, every frame: p50 / p95",
                    f"{r['loop_p50']:.1f} / {r['loop_p95']:.1f} ms",
                ),
                (
                    f"loop's own, at the {len(c)} clicks: p50 / p95",
                    f"{pct(c, 50):.1f} / {pct(c, 95):.1f} ms",
                ),
                (
                    "loop minus outside, at the clicks (p50, p95)",
                    f"{pct(c, 50) - pct(o, 50):+.1f}, {pct(c, 95) - pct(o, 95):+.1f} ms",
                ),
                (
                    "gaps (underruns) / playout drops / frames dropped",
                    f"{r['gaps']} ({r['underruns']}) / {r['playout_drops']} / "
                    f"{r['dropped_frames']}",
                ),
            ]
            label = f"{profile}, echo cancellation on" if echo else profile
            table(f"pass-through delay, profile {label}, {seconds:.0f} s", rows)
            RESULTS[f"delay {label}"] = (
                f"outside p95 {pct(o, 95):.0f} ms (p50 {pct(o, 50):.0f}); loop p95 "
                f"{pct(c, 95):.0f} ms at the clicks; gaps {r['gaps']}"
            )


# --- overload --------------------------------------------------------------------------------
def section_overload(seconds: float, profile: str, checkpoint: Path | None) -> None:
    with private_pulse() as pulse:
        r = passthrough_run(pulse, profile, seconds, step_s=0.24, max_delay_ms=500.0)
        o = r["outside"]
        # Audible: the copies of the clicks come through (pass-through), so look at speech.
        work = Path(tempfile.mkdtemp(prefix="bench-overload-"))
        speech = make_speech(work / "speech.wav", SPEECH)
        share = overloaded_speech_share(pulse, profile, speech)
        table(
            "overload: a model 3x slower than real time (240 ms steps), pass-through",
            [
                (
                    "outside delay p50 / p95 / max",
                    f"{pct(o, 50):.0f} / {pct(o, 95):.0f} / {max(o, default=float('nan')):.0f} ms "
                    "(max-delay 500 ms)",
                ),
                ("clicks answered", f"{r['pairs']} of {r['sent']}"),
                ("speech windows audible at the speaker", f"{share:.0%}"),
            ],
        )
        RESULTS["overload 3x model"] = (
            f"outside delay p95 {pct(o, 95):.0f} ms (<= 500); audible {share:.0%} of windows"
        )
        if checkpoint is not None:
            real = real_codec_chat(pulse, checkpoint, speech, work)
            table("overload: the real codec on this CPU (`assistant chat`)", real["rows"])
            RESULTS["overload real codec"] = real["line"]


def overloaded_speech_share(pulse: PulseAudio, profile: str, speech: Path) -> float:
    from assistant.audio.duplex import DuplexAudio
    from assistant.audio.profiles import latency_profile
    from assistant.conversation.loop import ConversationLoop
    from assistant.conversation.passthrough import PassthroughCodec, PassthroughEngine

    audio = DuplexAudio(profile=latency_profile(profile)).start()
    loop = ConversationLoop(audio, PassthroughCodec(), PassthroughEngine(step_s=0.24))
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    time.sleep(1.0)
    rec = pulse.record_speaker(speech.with_name("overload-speaker.wav"))
    pulse.play_into_mic(speech)
    time.sleep(1.0)
    heard = rec.stop()
    loop.request_stop()
    runner.join(10)
    audio.stop()
    clean = read_audio(speech)
    voiced = audible_share(clean, 0, len(clean))  # the share of the input that is speech
    return audible_share(heard, 0, len(heard)) / max(voiced, 1e-9) * (len(clean) / len(heard))


def start_chat(
    checkpoint: Path, env: dict[str, str], *extra: str
) -> tuple[subprocess.Popen[str], float]:
    """`assistant chat` started and read up to "Listening"; with the seconds that took."""
    command = [sys.executable, "-m", "assistant", "chat", "--checkpoint", str(checkpoint)]
    t0 = time.monotonic()
    chat = subprocess.Popen(
        [*command, "--no-dashboard", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert chat.stdout is not None
    for line in chat.stdout:
        if line.startswith("Listening"):
            break
    return chat, time.monotonic() - t0


def real_codec_chat(pulse: PulseAudio, checkpoint: Path, speech: Path, work: Path) -> dict:
    env = pulse.client_env() | {"ASSISTANT_HOME": str(work / "home")}
    rec = pulse.record_speaker(work / "chat-speaker.wav")
    chat, _ = start_chat(checkpoint, env, "--no-aec")
    t0 = time.monotonic()
    pulse.play_into_mic(speech)
    time.sleep(2.0)
    chat.send_signal(2)
    chat.communicate(timeout=60)
    heard = rec.stop()
    seconds = time.monotonic() - t0
    sessions = sorted((work / "home" / "sessions").glob("*"))
    summary = json.loads((sessions[-1] / "summary.json").read_text()) if sessions else {}
    share = audible_share(heard, 0, len(heard))
    stages = summary.get("stages_ms", {})
    rows = [
        ("speaker windows with Moshi audible", f"{share:.0%} of {len(heard) / SAMPLE_RATE:.0f} s"),
        (
            "encode / step / decode p50",
            " / ".join(
                f"{stages.get(k, {}).get('p50', 0):.0f}" for k in ("encode", "step", "decode")
            )
            + " ms",
        ),
        (
            "frames answered / dropped in / out",
            f"{summary.get('frames_stepped')} / {summary.get('dropped_input')} / "
            f"{summary.get('dropped_output')} over {seconds:.0f} s",
        ),
        ("loop's delay p95", f"{stages.get('delay', {}).get('p95', 0):.0f} ms"),
    ]
    return {"rows": rows, "line": f"audible {share:.0%} of windows (target >= 20%)"}


# --- memory ----------------------------------------------------------------------------------
def tree_memory(pid: int) -> tuple[int, int]:
    """The process tree's memory: (RSS summed, PSS summed). PSS splits each shared page among
    the processes that map it (the codec's forked workers share their server's weights, which
    RSS counts in each); where the platform has no PSS, the RSS sum twice."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    rss = pss = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss, pss


def section_memory(frames: int, checkpoint: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    base = read_audio(make_speech(work / "speech.wav", SPEECH))
    pcm = np.resize(base, frames * FRAME_SAMPLES)
    long_wav = write_wav(work / "long.wav", pcm)
    env = os.environ | {"ASSISTANT_HOME": str(work / "home")}
    cmd = [
        sys.executable,
        "-m",
        "assistant",
        "chat",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(long_wav),
    ]
    proc = subprocess.Popen(
        [*cmd, "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    samples: list[tuple[float, tuple[int, int]]] = []
    t0 = time.monotonic()
    while proc.poll() is None:
        samples.append((time.monotonic() - t0, tree_memory(proc.pid)))
        time.sleep(0.25)
    err = proc.stderr.read().decode() if proc.stderr else ""
    sessions = sorted((work / "home" / "sessions").glob("*"))
    summary = json.loads((sessions[-1] / "summary.json").read_text()) if sessions else {}
    done = summary.get("frames_stepped", 0)
    codec = summary.get("codec", {})
    # Quarters of the run by frames: frames ran at a steady pace, so by time.
    end = samples[-1][0] if samples else 1.0

    def peak(a: float, b: float, kind: int = 1) -> int:
        return max((m[kind] for t, m in samples if a * end <= t < b * end), default=0)

    mib = 2**20
    q2, h2 = peak(0.25, 0.5), peak(0.5, 1.0)
    rows = [
        ("frames through the loop", f"{done} of {frames} in {end:.0f} s (exit {proc.returncode})"),
        (
            "tree peak PSS, quarters 1-4",
            " / ".join(f"{peak(i / 4, (i + 1) / 4) / mib:.0f}" for i in range(4)) + " MiB",
        ),
        (
            "  (RSS summed: shared pages in each)",
            " / ".join(f"{peak(i / 4, (i + 1) / 4, 0) / mib:.0f}" for i in range(4)) + " MiB",
        ),
        ("PSS: second half minus second quarter", f"{(h2 - q2) / mib:+.1f} MiB (target <= 64)"),
        (
            "  (RSS summed: the same)",
            f"{(peak(0.5, 1.0, 0) - peak(0.25, 0.5, 0)) / mib:+.1f} MiB",
        ),
        (
            "codec roll-overs enc / dec",
            f"{codec.get('encode', {}).get('rollovers')} / "
            f"{codec.get('decode', {}).get('rollovers')}",
        ),
    ]
    if proc.returncode:
        rows.append(("stderr", err.strip()[-300:]))
    table(f"codec memory: `chat --input`, {frames} frames, real codec", rows)
    RESULTS["codec memory"] = f"second half {(h2 - q2) / mib:+.1f} MiB over the second quarter"


# --- stall -----------------------------------------------------------------------------------
def ticking(
    seconds_or_event: float | threading.Event,
) -> tuple[threading.Thread, list[float], threading.Event]:
    gaps: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not stop.wait(0.005):
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    t = threading.Thread(target=tick, daemon=True)
    t.start()
    return t, gaps, stop


def section_stall(mimi: Path) -> None:
    import rustymimi

    from assistant.codec.streaming import StreamingCodec

    speech = read_audio(ROOT / "assistant" / "data" / "hello.wav")
    frames = np.resize(speech, 60 * FRAME_SAMPLES).reshape(60, FRAME_SAMPLES)
    # How it was: an instance built in this process (a hand-over's build, on any thread).
    t, gaps, stop = ticking(0)
    time.sleep(0.3)
    built: list[float] = []
    for _ in range(3):
        b0 = time.perf_counter()
        rustymimi.Tokenizer(str(mimi), num_codebooks=8, max_seq_len=90_000)
        built.append(time.perf_counter() - b0)
        time.sleep(0.2)
    stop.set()
    t.join()
    before = max(gaps)
    # Now: successors start in their own processes.
    with StreamingCodec(mimi, rollover_after=20, frame_limit=32, lead_frames=4) as codec:
        t, gaps, stop = ticking(0)
        for i, f in enumerate(frames):
            codec.encode(f)
            codec.decode(np.zeros(8, np.uint32) + (i % 5))
        stop.set()
        t.join()
        stats = codec.stats
    after = max(gaps)
    table(
        "stall: a thread ticking every 5 ms",
        [
            (
                "in-process build (how it was)",
                f"longest gap {before * 1000:.0f} ms (builds "
                f"{', '.join(f'{b:.2f}' for b in built)} s)",
            ),
            (
                f"worker processes, {stats.encode.rollovers} + {stats.decode.rollovers} hand-overs",
                f"longest gap {after * 1000:.0f} ms, p99 {pct(gaps, 99) * 1000:.1f} ms",
            ),
        ],
    )
    RESULTS["stall"] = (
        f"longest tick gap {after * 1000:.0f} ms across hand-overs (was {before * 1000:.0f})"
    )


# --- startup ---------------------------------------------------------------------------------
# The sound server alone, measured with bare sounddevice in its own process (no code of ours):
# seconds from opening duplex streams at the default profile's 5 ms blocks until input arrives
# and output callbacks come at their pace (what `DuplexAudio` waits for before "Listening").
BARE_AUDIO_START = """
import sys, threading, time
import sounddevice as sd
t0 = time.monotonic()
got, last, paced = threading.Event(), [t0], threading.Event()
def on_input(data, frames, when, status):
    got.set()
def on_output(data, frames, when, status):
    data.fill(0)
    now = time.monotonic()
    if now - last[0] >= 0.5 * frames / 24000:
        paced.set()
    last[0] = now
streams = [
    sd.InputStream(samplerate=24000, channels=1, dtype="float32", blocksize=120,
                   latency="low", callback=on_input),
    sd.OutputStream(samplerate=24000, channels=1, dtype="float32", blocksize=120,
                    latency="low", callback=on_output),
]
for s in streams:
    s.start()
got.wait(10); paced.wait(10)
print(f"{time.monotonic() - t0:.3f}")
for s in streams:
    s.abort(); s.close()
"""


def bare_audio_start(env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", BARE_AUDIO_START], env=env, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def clocking_devices(pulse: PulseAudio) -> Iterator[None]:
    """Silence flowing through both virtual devices at 10 ms, as a sound card clocks: an idle
    null sink renders in blocks of up to 2 s, so a stream opened on it waits 0-2 s for its
    first data (see the table); real microphones and speakers don't."""
    env = pulse.client_env()
    fmt = ["--format=float32le", "--rate=24000", "--channels=1", "--latency-msec=10"]
    procs = [
        subprocess.Popen(
            ["pacat", "--playback", "-d", "vmic", *fmt, "/dev/zero"],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            ["parec", "-d", "vspk.monitor", *fmt],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    time.sleep(1.0)
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def section_startup(checkpoint: Path, runs: int = 6) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-start-"))  # one user, started several times
    rows, medians = [], {}
    with private_pulse() as pulse:
        env = pulse.client_env() | {"ASSISTANT_HOME": str(home)}
        for label, devices in (
            ("virtual devices idle (as the tests use them)", contextlib.nullcontext),
            ("virtual devices clocking (as a sound card)", partial(clocking_devices, pulse)),
        ):
            times, bare = [], []
            with devices():
                for _ in range(runs):
                    bare.append(bare_audio_start(env))
                    time.sleep(0.5)
                    chat, seconds = start_chat(checkpoint, env)
                    times.append(seconds)
                    chat.send_signal(2)
                    chat.communicate(timeout=60)
            medians[label] = statistics.median(times)
            rows += [
                (label, ""),
                ('  `assistant chat` to "Listening"', ", ".join(f"{t:.2f}" for t in times)),
                ("    median", f"{statistics.median(times):.2f} s"),
                ("  the sound server alone (bare PortAudio)", ", ".join(f"{t:.2f}" for t in bare)),
            ]
    table('start-up: `assistant chat` to "Listening" (tiny checkpoint)', rows)
    idle, clocking = medians.values()
    RESULTS["startup"] = (
        f"median {idle:.2f} s with idle virtual devices, {clocking:.2f} s with clocking ones "
        "(target <= 1.5 s)"
    )


def tiny_checkpoint() -> Path:
    folder = ROOT / "checkpoints" / "bench-tiny-bf16"
    subprocess.run(
        [sys.executable, "-m", "assistant", "make-checkpoint", str(folder), "--quant", "bf16"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="delay,overload,memory,stall,startup")
    parser.add_argument("--seconds", type=float, default=30.0, help="click train length")
    parser.add_argument("--profiles", default="low,balanced,safe")
    parser.add_argument("--frames", type=int, default=3000, help="memory section's run")
    args = parser.parse_args()
    # The chats this starts are stopped with SIGINT, as Ctrl-C would. A bench started in the
    # background (`&`) inherits SIGINT ignored and would pass that on: each chat would then
    # keep the ignore (see `interrupts.install`) and never stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    only = set(args.only.split(","))
    needs_checkpoint = only & {"overload", "memory", "startup", "stall"}
    checkpoint = tiny_checkpoint() if needs_checkpoint else None
    if "delay" in only:
        section_delay(args.seconds, args.profiles.split(","))
    if "overload" in only:
        section_overload(args.seconds, "balanced", checkpoint)
    if "stall" in only and checkpoint is not None:
        section_stall(checkpoint / "tokenizer-e351c8d8-checkpoint125.safetensors")
    if "startup" in only and checkpoint is not None:
        section_startup(checkpoint)
    if "memory" in only and checkpoint is not None:
        section_memory(args.frames, checkpoint)
    print("\nsummary:")
    for k, v in RESULTS.items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
