"""`assistant demo`: the runtime end to end with no download and no audio hardware."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from ..console import console
from ..errors import AudioError
from ..paths import new_session_dir
from ..voice.audio_files import FRAME_SECONDS, read_audio, write_wav
from ..voice.layout import Q4
from ..voice.offline import FileConversation

DEMO_FOLDER = Path("checkpoints") / "demo-tiny-q4"
DEMO_TEXT = "Hello Moshi. Can you hear me? Tell me something about the weather today."
BUDGET_MS = FRAME_SECONDS * 1000


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    text: Annotated[
        str | None, typer.Option(help="What the user says (spoken with espeak-ng).")
    ] = None,
    input_wav: Annotated[
        Path | None, typer.Option("--input", help="Use this audio file as the user instead.")
    ] = None,
    checkpoint: Annotated[
        Path, typer.Option(help="Synthetic checkpoint folder (made here if missing).")
    ] = DEMO_FOLDER,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 1234,
) -> None:
    """Stream real speech through Mimi and a random-weight Moshi; save the reply and transcript."""
    from ..voice.engine import StreamingEngine
    from ..voice.loader import load
    from ..voice.offline import converse_file
    from ..voice.resolve import CheckpointSpec, resolve
    from ..voice.sampling import SamplingConfig

    console.print(
        "[bold yellow]Demo model: random weights.[/] It babbles; this shows the runtime "
        "(codec, model, streaming), not a conversation."
    )
    _ensure_checkpoint(checkpoint)
    user_pcm, source = _user_speech(text, input_wav)
    console.print(f"User: {source} ({len(user_pcm) / 24000:.1f} s)")

    with console.status("Loading the checkpoint ..."):
        loaded = load(resolve(CheckpointSpec(target=str(checkpoint))))
        engine = StreamingEngine(
            loaded.model, loaded.config, SamplingConfig(seed=seed), loaded.text_tokenizer
        )
        engine.warmup()
    m = loaded.report.model
    console.print(
        f"Loaded {checkpoint} ({m.quant_label}, {m.parameter_count / 1e6:.1f} M parameters, "
        f"{m.bits_per_weight:.2f} bits/weight) in {loaded.load_seconds:.2f} s"
    )
    mimi = loaded.report.files.mimi
    with console.status("Streaming frames through Mimi and Moshi ..."):
        talk = converse_file(engine, mimi, user_pcm)

    session = new_session_dir("demo")
    write_wav(session / "user.wav", talk.user)
    write_wav(session / "moshi.wav", talk.reply)
    (session / "transcript.txt").write_text(
        "".join(f"[{t:7.2f}s] {piece}\n" for t, piece in talk.transcript)
    )
    stats = {
        "checkpoint": str(checkpoint),
        "quantization": m.quant_label,
        "frames": len(talk.times),
        "audio_seconds": talk.audio_seconds,
        "real_time_factor": talk.real_time_factor,
        "load_seconds": loaded.load_seconds,
        "stages_ms": talk.stage_stats(),
    }
    (session / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    _print_summary(talk, session)


def _ensure_checkpoint(folder: Path) -> None:
    if (folder / "model.q4.safetensors").exists():
        return
    from ..voice.synthetic.checkpoint import make_checkpoint

    with console.status(f"Making a tiny random-weight checkpoint in {folder} (once) ..."):
        make_checkpoint(folder, config_name="tiny", quant=Q4, seed=0)


def _user_speech(text: str | None, input_wav: Path | None) -> tuple[np.ndarray, str]:
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
            return read_audio(path), f'bundled sample "{DEMO_TEXT}"'
    said = text or DEMO_TEXT
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([espeak, "-s", "150", "-w", str(wav), said], check=True, capture_output=True)
        return read_audio(wav), f'espeak-ng "{said}"'


def _print_summary(talk: FileConversation, session: Path) -> None:
    table = Table(title="Per-frame timings (ms)", title_justify="left")
    for column in ("stage", "p50", "p95", "mean"):
        table.add_column(column, justify="right" if column != "stage" else "left")
    for stage, s in talk.stage_stats().items():
        table.add_row(stage, f"{s['p50']:.1f}", f"{s['p95']:.1f}", f"{s['mean']:.1f}")
    console.print(table)
    rtf = talk.real_time_factor
    pace = "keeps up with" if rtf < 1 else "is slower than"
    console.print(
        f"{len(talk.times)} frames ({talk.audio_seconds:.1f} s of audio); real-time factor "
        f"{rtf:.2f}: this machine {pace} real time (budget {BUDGET_MS:.0f} ms per frame)"
    )
    console.print(f'Moshi said (random weights): "{talk.text[:200]}"')
    console.print(f"Saved user.wav, moshi.wav, transcript.txt, stats.json in {session}")
