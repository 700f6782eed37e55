"""`assistant bench`: checkpoint variants compared on the same speech, codes, seed and steps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..console import console, err_console
from ..errors import BenchError
from .options import (
    MAX_SEED,
    MAX_STEPS,
    MAX_WARMUP,
    TEMPERATURE,
    TOP_K,
    MimiFile,
    TextTokenizerFile,
    Voice,
    in_range,
)

if TYPE_CHECKING:
    from ..bench.runner import Listener
    from ..stt import SpeechToText


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    voice: Voice = "moshiko",
    quant: Annotated[
        list[str] | None,
        typer.Option(
            "--quant",
            "-q",
            help="A preset of --voice to compare (repeat it). Default: q4 and q8.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint folder, model file or preset name to compare (repeat it).",
            show_default=False,
        ),
    ] = None,
    mimi_file: MimiFile = None,
    text_tokenizer: TextTokenizerFile = None,
    steps: Annotated[
        int,
        typer.Option(help="Timed steps per variant (80 ms each).", callback=in_range(1, MAX_STEPS)),
    ] = 200,
    warmup: Annotated[
        int, typer.Option(help="Untimed steps before them.", callback=in_range(0, MAX_WARMUP))
    ] = 10,
    input_wav: Annotated[
        Path | None,
        typer.Option("--input", help="The user's speech (default: the sample's sentence, spoken)."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Sampling seed, the same for every variant.", callback=in_range(0, MAX_SEED)
        ),
    ] = 1234,
    text_temperature: Annotated[float, TEMPERATURE] = 0.0,
    text_top_k: Annotated[int, TOP_K] = 25,
    audio_temperature: Annotated[float, TEMPERATURE] = 0.0,
    audio_top_k: Annotated[int, TOP_K] = 250,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the reports (default: a new one under sessions)."),
    ] = None,
    skip_memory_check: Annotated[
        bool, typer.Option("--skip-memory-check", help="Load even if it looks too big.")
    ] = False,
    listen: Annotated[
        bool,
        typer.Option(
            help="Transcribe each variant's audio and report its word error rate against its own "
            "text (needs a speech-to-text model: see --stt)."
        ),
    ] = True,
    stt: Annotated[
        str | None,
        typer.Option(
            "--stt",
            help="Speech-to-text checkpoint for --listen: a folder or a catalogue name (default: "
            "ASSISTANT_STT, else kyutai/stt-1b-en_fr-mlx from the Hugging Face cache).",
        ),
    ] = None,
) -> None:
    """Compare checkpoint variants (default: q4 and q8) side by side on identical input.

    Load time, memory, step latency, codec time and fidelity against the highest-precision
    variant.

    Writes report.md, report.json, latency.png and step_times.png (and each variant's audio).
    """
    from ..bench.results import BenchSettings
    from ..bench.runner import run_bench
    from ..bench.tables import headline, render
    from ..bench.variants import requests_for
    from ..voice.sampling import SamplingConfig
    from .demo import SAMPLE_TEXT, user_speech

    requests = requests_for(
        voice=voice,
        quants=quant or [],
        checkpoints=checkpoint or [],
        mimi_file=mimi_file,
        text_tokenizer=text_tokenizer,
    )
    settings = BenchSettings(
        steps=steps,
        warmup=warmup,
        sampling=SamplingConfig(text_temperature, text_top_k, audio_temperature, audio_top_k, seed),
        check_memory=not skip_memory_check,
    )
    # Read the speech first: an unreadable --input fails before anything is loaded.
    pcm, source = user_speech(None, input_wav, SAMPLE_TEXT)
    with console.status("Starting ...") as status:
        outcome = run_bench(
            requests,
            pcm,
            source,
            settings,
            out=out,
            status=lambda m: status.update(m),
            listener=_listener(stt) if listen else None,
        )
    run = outcome.run
    for line in headline(run):
        console.print(line, soft_wrap=True, markup=False)
    render(run, console)
    console.print(f"report.md, report.json and plots in {run.folder}", soft_wrap=True)
    if outcome.unexpected and _debug():
        raise outcome.unexpected[0]
    if outcome.interrupted:
        err_console.print(f"interrupted; the partial report is in {run.folder}", soft_wrap=True)
        raise typer.Exit(130)
    if run.failures:
        missing = [label for label in run.labels if label not in run.results]
        first = run.failures[0]
        what = (
            f"{len(missing)} of {len(run.labels)} variants not measured"
            if missing
            else f"{len(run.failures)} error(s)"
        )
        raise BenchError(
            f"{what} ({first.label}: {first.message}); the report of what was measured is in "
            f"{run.folder}"
        )


def _listener(spec: str | None) -> Listener:
    def load() -> tuple[SpeechToText, bool]:
        from ..history.recognizer import find_model
        from ..stt import SpeechToText

        folder = find_model(spec)
        # Kyutai's published weights live in the Hugging Face cache under their repo's name.
        published = any(part.startswith("models--kyutai--stt") for part in folder.parts)
        return SpeechToText.load(folder), published

    return load


def _debug() -> bool:
    from . import debug_enabled

    return debug_enabled()
