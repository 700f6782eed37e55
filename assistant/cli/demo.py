"""`assistant demo`: the runtime end to end with no download and no audio hardware."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ..audio.sound_files import read_audio
from ..console import console
from ..errors import AudioError
from ..frames import FRAME_MS, SAMPLE_RATE
from .options import MAX_SEED, in_range

DEMO_ROOT = Path("checkpoints")
DEMO_CACHE = DEMO_ROOT / ".synthetic-cache"  # the Mimi file both demo models share (linked)
# The demo's sentence: short, as every frame of it costs two Mimi calls, a model step and a
# speech-to-text step (2.6 s of speech: a conversation of 46 frames with the 1 s tail).
DEMO_TEXT = "Hello Moshi. Can you hear me?"
# What the bundled sample says (5.4 s), also the benchmark's default sentence.
SAMPLE_TEXT = "Hello Moshi. Can you hear me? Tell me something about the weather today."


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    text: Annotated[
        str | None, typer.Option(help="What the user says (spoken with espeak-ng).")
    ] = None,
    input_wav: Annotated[
        Path | None, typer.Option("--input", help="Use this audio file as the user instead.")
    ] = None,
    quant: Annotated[
        str, typer.Option("--quant", "-q", help="Synthetic model: q4, q8 or bf16.")
    ] = "bf16",
    realtime: Annotated[bool, typer.Option(help="Feed the speech at real-time pace.")] = False,
    seed: Annotated[
        int, typer.Option(help="Sampling seed.", callback=in_range(0, MAX_SEED))
    ] = 1234,
    no_dashboard: Annotated[
        bool,
        typer.Option("--no-dashboard", help="Print the transcript only, no live dashboard."),
    ] = False,
) -> None:
    """Run the loop on real speech and a random-weight Moshi (no download, no audio device)."""
    from ..checkpoint.resolve import CheckpointSpec
    from ..conversation.chat import ChatSettings
    from ..voice.sampling import SamplingConfig
    from .chat import converse

    console.print(
        "[bold yellow]Demo model: random weights.[/] It babbles; this shows the runtime "
        "(codec, model, streaming loop), not a conversation."
    )
    # The speech first: an unusable --input is refused before a checkpoint is made.
    user_pcm, source = user_speech(text, input_wav)
    folder = DEMO_ROOT / f"demo-tiny-{quant}"
    _ensure_checkpoint(folder, quant)
    settings = ChatSettings(
        checkpoint=CheckpointSpec(target=str(folder)),
        input_file=user_pcm,
        realtime_files=realtime,
        echo_cancellation=False,
        sampling=SamplingConfig(seed=seed),
        download=False,
        session_kind="demo",
    )
    intro = f"User: {source} ({len(user_pcm) / SAMPLE_RATE:.1f} s)"
    outcome = converse(settings, intro=intro, dashboard=not no_dashboard)
    if outcome.error is not None:
        raise outcome.error
    summary = outcome.summary
    frames = summary.counters.frames_stepped if summary else 0
    step = summary.stage("step").p50 if summary else 0.0
    both_sides(outcome.session)
    console.print(
        f"{frames} frames; model step p50 {step:.1f} ms against the "
        f"{FRAME_MS:.0f} ms budget. The recordings, transcript.txt, summary.json and "
        f"trace.json are in {outcome.session}; `assistant history` lists it."
    )


def both_sides(session: Path) -> None:
    """The user's side transcribed (by a random-weight speech-to-text model: it babbles too),
    then both sides as `assistant history show` prints them."""
    from ..checkpoint.synthetic.stt import make_stt_checkpoint
    from ..history import transcripts
    from ..history.transcriber import transcribe_session
    from ..stt import SpeechToText

    folder = DEMO_ROOT / "demo-stt-tiny"
    with console.status(f"Making a tiny random-weight speech-to-text model in {folder} (once) ..."):
        make_stt_checkpoint(folder, config_name="tiny", seed=0, cache_dir=DEMO_CACHE)
    with console.status("Transcribing your side ..."):
        stt = SpeechToText.load(folder)
        lines = transcribe_session(session, stt)
    console.print(
        "[bold yellow]Both sides[/] (speech to text has random weights too: your side "
        "babbles as well; this shows the transcript, not what was said):"
    )
    console.print(transcripts.as_text(lines), markup=False, end="", soft_wrap=True)
    console.rule()


def _ensure_checkpoint(folder: Path, quant: str) -> None:
    from ..checkpoint.synthetic.checkpoint import make_checkpoint
    from ..checkpoint.writing import parse_quant

    q = parse_quant(quant)  # a UsageError for anything but q4, q8, bf16
    with console.status(f"Making a tiny random-weight checkpoint in {folder} (once) ..."):
        made = make_checkpoint(folder, config_name="tiny", quant=q, seed=0, cache_dir=DEMO_CACHE)
    if made.written:
        console.print(f"Made {folder} (tiny synthetic Moshi, {quant}).")


def user_speech(
    text: str | None, input_wav: Path | None, default: str = DEMO_TEXT
) -> tuple[np.ndarray, str]:
    """The user's side: `input_wav`, else `text` (else `default`) spoken by espeak-ng, else
    (no espeak-ng) the bundled sample."""
    if input_wav is not None:
        return read_audio(input_wav), str(input_wav)
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        if text is not None:
            raise AudioError(
                "--text needs espeak-ng (apt install espeak-ng / brew install espeak-ng)"
            )
        sample = resources.files("assistant") / "data" / "hello.wav"
        with resources.as_file(sample) as path:
            return read_audio(path), f'bundled sample "{SAMPLE_TEXT}"'
    said = text or default
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([espeak, "-s", "150", "-w", str(wav), said], check=True, capture_output=True)
        return read_audio(wav), f'espeak-ng "{said}"'
