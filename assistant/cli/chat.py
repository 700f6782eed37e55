"""`assistant chat`: talk with Moshi, hands-free, for as long as you like."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..audio.profiles import DEFAULT_PROFILE
from ..audio.sound_files import read_audio
from ..console import console, err_console
from ..conversation.chat import Chat, ChatOutcome, ChatSettings
from ..conversation.checks import check_files
from ..conversation.lag import DEFAULT_MAX_DELAY_MS
from ..conversation.loop import LoopEvents
from ..dashboard.live import LiveDashboard
from ..errors import UsageError
from ..telemetry.model_card import format_bytes
from ..voice.memory import memory_warning
from ..voice.sampling import SamplingConfig
from .options import (
    DELAY_RANGE,
    DURATION_RANGE,
    MAX_SEED,
    TEMPERATURE,
    TOP_K,
    CheckpointTarget,
    InputDevice,
    Latency,
    ListenFirst,
    MimiFile,
    NoAec,
    OutputDevice,
    Quant,
    TextTokenizerFile,
    Voice,
    checkpoint_spec,
    in_range,
    parse_device,
)

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)


def chat(
    voice: Voice = "moshiko",
    quant: Quant = None,
    checkpoint: CheckpointTarget = None,
    mimi_file: MimiFile = None,
    text_tokenizer: TextTokenizerFile = None,
    input_device: InputDevice = None,
    output_device: OutputDevice = None,
    no_aec: NoAec = False,
    listen_first: ListenFirst = False,
    latency: Latency = DEFAULT_PROFILE,
    input_wav: Annotated[
        Path | None, typer.Option("--input", help="Use this audio file as the microphone.")
    ] = None,
    output_wav: Annotated[
        Path | None, typer.Option("--output", help="With --input: write Moshi's side here.")
    ] = None,
    realtime: Annotated[
        bool, typer.Option(help="With --input: feed the file at real-time pace.")
    ] = False,
    max_delay_ms: Annotated[
        float,
        typer.Option(help="Drop frames rather than let the delay pass this.", callback=DELAY_RANGE),
    ] = DEFAULT_MAX_DELAY_MS,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Stop after this many seconds (default: never).", callback=DURATION_RANGE
        ),
    ] = None,
    text_temperature: Annotated[float, TEMPERATURE] = 0.7,
    text_top_k: Annotated[int, TOP_K] = 25,
    audio_temperature: Annotated[float, TEMPERATURE] = 0.8,
    audio_top_k: Annotated[int, TOP_K] = 250,
    seed: Annotated[
        int | None,
        typer.Option(help="Sampling seed (default: random).", callback=in_range(0, MAX_SEED)),
    ] = None,
    skip_memory_check: Annotated[
        bool, typer.Option("--skip-memory-check", help="Load even if it looks too big.")
    ] = False,
    no_dashboard: Annotated[
        bool,
        typer.Option("--no-dashboard", help="Print the transcript only, no live dashboard."),
    ] = False,
) -> None:
    """Talk with Moshi through the microphone and speaker (Ctrl-C to stop)."""
    if realtime and input_wav is None:
        raise UsageError("--realtime needs --input: a microphone is real time anyway")
    settings = ChatSettings(
        checkpoint=checkpoint_spec(
            checkpoint, voice=voice, quant=quant, mimi_file=mimi_file, text_tokenizer=text_tokenizer
        ),
        input_device=parse_device(input_device),
        output_device=parse_device(output_device),
        input_file=input_wav,
        output_file=output_wav,
        realtime_files=realtime,
        echo_cancellation=not no_aec,
        listen_first=listen_first,
        latency=latency,
        sampling=SamplingConfig(text_temperature, text_top_k, audio_temperature, audio_top_k, seed),
        max_delay_ms=max_delay_ms,
        duration_s=duration,
        check_memory=not skip_memory_check,
    )
    check_files(input_wav, output_wav)
    if input_wav is not None:
        # Decoded now, so an unreadable file is refused before the model loads, not after.
        settings = replace(settings, input_file=read_audio(input_wav))
    outcome = converse(settings, dashboard=not no_dashboard, input_label=str(input_wav or ""))
    if outcome.session is not None:
        from ..history.recognizer import after_conversation

        after_conversation()  # the user's side, in the background; the retention setting
    if outcome.error is not None:
        raise outcome.error


def converse(
    settings: ChatSettings,
    intro: str | None = None,
    *,
    dashboard: bool = True,
    input_label: str = "",
) -> ChatOutcome:
    """Prepare, run and report one conversation; shared by `chat` and `demo`.

    The live dashboard needs a terminal; with stdout piped or redirected the transcript is
    printed as plain text instead, and the summary at the end is the same either way.
    """
    # The dashboard needs the prepared model: until it exists (and without one), the
    # transcript and warnings are printed as plain text.
    live: LiveDashboard | None = None

    def on_text(seconds: float, piece: str) -> None:
        (live.on_text if live is not None else _print_piece)(seconds, piece)

    def warn(message: str) -> None:
        log.warning("%s", message)
        if live is not None:
            live.warn(message)
        else:
            err_console.print(f"\n[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    starting = console.status("Starting ...")
    runner = Chat(
        settings,
        events=LoopEvents(on_text=on_text, on_warning=warn),
        status=lambda message: starting.update(message),
    )
    runner.open_audio_early()  # the devices open while the model loads
    try:
        with starting:
            runner.prepare()
    except BaseException:
        runner.close_early_audio()
        raise
    card = runner.card
    assert card is not None and runner.loaded is not None  # prepared
    console.print(f"Model {card.label}: {card.line()}", soft_wrap=True)
    report = runner.loaded.report
    tight = memory_warning(runner.loaded.memory, report.files.label, report.model.quant_label)
    if tight:
        err_console.print(f"[yellow]warning:[/] {tight}", soft_wrap=True)
    if intro:
        console.print(intro)
    if dashboard and console.is_terminal:
        # The chat's one collector, reset (not replaced) for each run: the dashboard keeps it.
        live = LiveDashboard(card, runner.metrics, console, max_delay_ms=settings.max_delay_ms)

    def ready() -> None:
        if runner.files_mode:
            console.print(f"Listening to {input_label or _describe(settings.input_file)} ...")
        else:
            aec = "on" if settings.echo_cancellation else "off (headphones)"
            first = " Moshi waits for you to speak first." if settings.listen_first else ""
            console.print(f"Listening; echo cancellation {aec}.{first} Speak; Ctrl-C to stop.")
        if live is not None:
            live.start()
        else:
            console.rule()

    try:
        outcome = runner.run(on_ready=ready)
    finally:
        if live is not None:
            live.stop()
    console.print()
    console.rule()
    print_summary(outcome)
    log.info(
        "session %s ended (%s)",
        outcome.session,
        "interrupted" if outcome.interrupted else "error" if outcome.error else "finished",
    )
    return outcome


def _print_piece(seconds: float, piece: str) -> None:
    console.print(piece, end="", soft_wrap=True, markup=False)


def print_summary(outcome: ChatOutcome) -> None:
    table = Table(title="Session", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    s = outcome.summary
    if s is not None:
        for stage in ("encode", "step", "decode", "delay"):
            h = s.stage(stage)
            label = "mic-to-speaker delay" if stage == "delay" else f"{stage} time"
            if stage == "delay" and not h.count:
                why = "file input runs as fast as it can" if s.counters.frames_played else ""
                table.add_row(label, f"not measured ({why or 'nothing was heard'})")
                continue
            table.add_row(label, f"p50 {h.p50:.1f} ms, p95 {h.p95:.1f}, max {h.max:.1f}")
        c = s.counters
        table.add_row(
            "frames",
            f"{c.frames_stepped} answered of {c.frames_captured} heard; dropped "
            f"{c.dropped_input} in, {c.dropped_output} out (to stay under "
            f"{s.max_delay_ms:.0f} ms)",
        )
        if s.audio:
            table.add_row(
                "audio",
                f"underruns {s.audio.get('underruns', 0)}, overruns {s.audio.get('overruns', 0)}",
            )
        if s.echo_reduction_db is not None:
            table.add_row("echo removed", f"{s.echo_reduction_db:.1f} dB")
        table.add_row(
            "speed, memory",
            f"real-time factor {s.real_time_factor:.2f} (model step / 80 ms); "
            f"MLX peak {format_bytes(s.memory.mlx_peak)}, RSS peak "
            f"{format_bytes(s.memory.rss_peak)}",
        )
    table.add_row("saved in", str(outcome.session))
    table.add_row("", "summary.json, metrics.jsonl, trace.json (open it in ui.perfetto.dev)")
    console.print(table)
    if outcome.recording_error:
        err_console.print(f"[yellow]warning:[/] {escape(outcome.recording_error)}", soft_wrap=True)
    if outcome.interrupted:
        console.print("Stopped.")


def _describe(source: object) -> str:
    return "the given audio" if not isinstance(source, (str, Path)) else str(source)
