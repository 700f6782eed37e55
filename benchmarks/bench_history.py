"""The history's costs, measured from outside: listing 1,000 conversations, and what a
background transcription does to a conversation running beside it.

    python -m benchmarks.bench_history [--sessions 1000] [--only list|disturbance]
    python -m benchmarks.bench_history --only disturbance --checkpoint DIR --stt DIR

list:         `assistant history --json` (a second process, wall time) over N conversation
              folders written as the loop leaves them; the in-process listing beside it
              (the median of `--runs` timings each).
disturbance:  `assistant chat --input hello.wav --realtime` on a tiny synthetic checkpoint,
              three ways, interleaved, `--repeat` times each: alone; with `assistant transcribe
              --pending` working through a long conversation (as after a conversation; it
              pauses while one records); and with
              the same worker told never to pause (`--no-yield`, at nice 19). Printed: the
              chat's model step p50/p95 and frames dropped, from its summary.json.
              The tiny q4 checkpoint and the tiny speech-to-text one are made with
              `assistant make-checkpoint`, unless `--checkpoint` and `--stt` name folders
              already made.
The transcription speed itself (seconds of audio per second) is benchmarks/bench_stt.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
SPEECH = HERE / "assistant" / "data" / "hello.wav"
RATE = 24_000


def write_wav(path: Path, seconds: float) -> None:
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (0.2 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def write_conversation(root: Path, i: int, seconds: float = 1.0) -> Path:
    """A folder as the loop leaves one: recordings, frames with Moshi's text, a summary."""
    folder = root / f"2026-01-01_00-{i // 60 % 60:02d}-{i % 60:02d}-{i:05d}-chat"
    folder.mkdir(parents=True)
    write_wav(folder / "user.wav", seconds)
    write_wav(folder / "moshi.wav", seconds)
    frames = int(seconds * 12.5)
    (folder / "frames.jsonl").write_text(
        "".join(
            json.dumps({"index": k, "text": " word" if k % 3 else None}) + "\n"
            for k in range(frames)
        )
    )
    (folder / "transcript.txt").write_text("[    0.00s]" + " word" * (frames // 3) + "\n")
    summary = {
        "started": "2026-01-01T00:00:00+00:00",
        "elapsed_s": seconds,
        "frames_captured": frames,
        "stages_ms": {"delay": {"count": 10, "p50": 120.0, "p95": 180.0}},
        "model": {"voice": "moshiko", "quantization": "q4"},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def assistant(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


def bench_list(n: int, runs: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for i in range(n):
            write_conversation(home / "sessions", i)
        env = os.environ | {"ASSISTANT_HOME": str(home)}
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            out = assistant("history", "--json", "--limit", str(n), env=env)
            walls.append(time.perf_counter() - start)
        assert len(json.loads(out.stdout)) == n
        os.environ["ASSISTANT_HOME"] = str(home)
        from assistant.history.store import list_conversations

        inside = []
        for _ in range(runs):
            start = time.perf_counter()
            list_conversations()
            inside.append(time.perf_counter() - start)
        bare = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import assistant.cli"], check=True, env=env)
            bare.append(time.perf_counter() - start)
    print(f"\nHistory of {n} conversations ({runs} runs, median):")
    for label, times in (
        ("`assistant history --json`, wall time (a second process)", walls),
        ("of which Python and the CLI's imports alone", bare),
        ("list_conversations() in process", inside),
    ):
        print(f"  {label:58} {statistics.median(times) * 1000:7.0f} ms")


WAYS = (
    ("alone", None),
    ("worker beside it (pauses while a conversation records)", ["--pending"]),
    ("worker that never pauses (nice 19)", ["--pending", "--no-yield"]),
)


def bench_disturbance(
    seconds_pending: float,
    repeat: int,
    speech_seconds: float,
    checkpoint: Path | None = None,
    stt_checkpoint: Path | None = None,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = os.environ | {
            "ASSISTANT_HOME": str(tmp_path / "home"),
            "ASSISTANT_SETTINGS": str(tmp_path / "s.json"),
        }
        ckpt = checkpoint or tmp_path / "tiny-q4"
        stt = stt_checkpoint or tmp_path / "stt"
        if checkpoint is None:
            assistant("make-checkpoint", str(ckpt), "--quant", "q4", env=env)
        if stt_checkpoint is None:
            assistant("make-checkpoint", str(stt), "--kind", "stt", env=env)
        env["ASSISTANT_STT"] = str(stt)
        # Never transcribe the chats themselves: only the long conversation below.
        (tmp_path / "s.json").write_text(json.dumps({"transcribe": "off"}))
        speech = tmp_path / "speech.wav"
        with wave.open(str(SPEECH)) as r, wave.open(str(speech), "wb") as w:
            w.setparams(r.getparams())
            w.writeframes(r.readframes(int(speech_seconds * r.getframerate())))
        runs: dict[str, list[tuple[float, float, int, int, bool]]] = {k: [] for k, _ in WAYS}
        for _ in range(repeat):  # the ways interleaved: the machine's drift hits each alike
            for label, worker_args in WAYS:
                runs[label].append(
                    _one_chat(tmp_path, env, ckpt, speech, worker_args, seconds_pending)
                )
    print(
        f"\nA conversation (tiny model, real codec, {speech_seconds:g} s of hello.wav at real-time "
        f"pace), with and without a transcription beside it; {repeat} runs each, interleaved:"
    )
    print(f"  {'':58} step p50  step p95  dropped / frames  worker busy at the end")
    for label, rows in runs.items():
        for p50, p95, dropped, frames, busy in rows:
            print(
                f"  {label:58} {p50:6.1f} ms {p95:6.1f} ms  {dropped:5d} / {frames:<5d}     {busy}"
            )
        if len(rows) > 1:
            m = [statistics.median(r[i] for r in rows) for i in range(4)]
            print(f"  {'  median':58} {m[0]:6.1f} ms {m[1]:6.1f} ms  {m[2]:5.0f} / {m[3]:<5.0f}")


def _one_chat(
    tmp_path: Path,
    env: dict[str, str],
    ckpt: Path,
    speech: Path,
    worker_args: list[str] | None,
    seconds_pending: float,
) -> tuple[float, float, int, int, bool]:
    sessions = tmp_path / "home" / "sessions"
    pending = sessions / "long-pending"
    worker = None
    if worker_args:
        if pending.exists():
            for f in pending.iterdir():
                f.unlink()
            pending.rmdir()
        write_conversation(sessions, 0, seconds_pending).rename(pending)
        log = tmp_path / "home" / "logs" / "transcribe.log"
        seen = log.read_text().count("transcribing") if log.exists() else 0
        worker = subprocess.Popen(
            [sys.executable, "-m", "assistant", "transcribe", *worker_args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while not (log.exists() and log.read_text().count("transcribing") > seen):
            time.sleep(0.1)
    before = set(sessions.iterdir()) if sessions.exists() else set()
    assistant(
        "chat", "--checkpoint", str(ckpt), "--input", str(speech), "--realtime",
        "--no-dashboard", "--seed", "1", env=env,
    )  # fmt: skip
    still_working = worker is not None and worker.poll() is None
    if worker is not None:
        worker.terminate()
        worker.wait(60)
    (chat,) = [p for p in set(sessions.iterdir()) - before if not p.name.startswith(".")]
    summary = json.loads((chat / "summary.json").read_text())
    step = summary["stages_ms"]["step"]
    dropped = summary["dropped_input"] + summary["dropped_output"]
    return step["p50"], step["p95"], dropped, summary["frames_captured"], still_working


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--pending-seconds", type=float, default=60.0)
    parser.add_argument("--only", choices=["list", "disturbance"])
    parser.add_argument("--repeat", type=int, default=3, help="chats per way (disturbance)")
    parser.add_argument("--speech-seconds", type=float, default=6.0, help="of hello.wav")
    parser.add_argument("--runs", type=int, default=5, help="timings per figure (list)")
    parser.add_argument("--checkpoint", type=Path, help="a tiny Moshi checkpoint already made")
    parser.add_argument("--stt", type=Path, help="a tiny speech-to-text checkpoint already made")
    args = parser.parse_args()
    if args.only in (None, "list"):
        bench_list(args.sessions, args.runs)
    if args.only in (None, "disturbance"):
        bench_disturbance(
            args.pending_seconds, args.repeat, args.speech_seconds, args.checkpoint, args.stt
        )


if __name__ == "__main__":
    main()
