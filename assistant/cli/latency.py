"""`assistant latency`: measure your own audio path, mic to speaker, with the real loop."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..audio.duplex import DuplexAudio
from ..audio.profiles import DEFAULT_PROFILE, latency_profile
from ..console import console
from ..conversation.latency_check import ClickTrip, LatencyReport, run_latency_check
from ..frames import SAMPLE_RATE
from .options import DURATION_RANGE, InputDevice, Latency, OutputDevice, in_range, parse_device

MIN_CLICK_S, MAX_CLICK_S = 0.2, 60.0  # a click must be over before the next one


def register(app: typer.Typer) -> None:
    app.command("latency")(latency)


def latency(
    input_device: InputDevice = None,
    output_device: OutputDevice = None,
    profile: Latency = DEFAULT_PROFILE,
    passthrough: Annotated[
        bool,
        typer.Option(
            "--passthrough", help="Play the microphone back: hear yourself, delayed by the path."
        ),
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Seconds to run (default: 10 for clicks, until Ctrl-C for passthrough).",
            callback=DURATION_RANGE,
        ),
    ] = None,
    every: Annotated[
        float,
        typer.Option(
            help="Seconds between clicks.", callback=in_range(MIN_CLICK_S, MAX_CLICK_S, " s")
        ),
    ] = 1.0,
) -> None:
    """Measure your setup's mic-to-speaker delay through the loop's real audio path.

    The model and codec are replaced by pass-through. By default a click is played every
    second and found again in the microphone (the speaker must be audible to it: built-in
    speaker and microphone, or a loopback); --passthrough plays the microphone back instead.
    """
    chosen = latency_profile(profile)
    if duration is None and not passthrough:
        duration = 10.0
    audio = DuplexAudio(parse_device(input_device), parse_device(output_device), profile=chosen)
    with console.status("Opening the audio devices ..."):
        audio.start()
    for notice in audio.drain_notices():
        console.print(f"[yellow]note:[/] {notice}")
    blocks = {k: v * 1000 / SAMPLE_RATE for k, v in audio.blocks.items()}
    assert audio.input_device is not None and audio.output_device is not None
    console.print(
        f"Profile {chosen.describe()}; microphone {audio.input_device.label}, "
        f"speaker {audio.output_device.label}."
    )
    if passthrough:
        console.print("Playing the microphone back: speak and hear yourself. Ctrl-C to stop.")
    else:
        console.print(f"Playing a click every {every:g} s for {duration:g} s; listening for it.")

    def on_trip(trip: ClickTrip) -> None:
        console.print(
            f"  click back after {trip.aligned_ms:6.1f} ms "
            f"(arrived {trip.phase_ms:+.1f} ms into its frame)"
        )

    try:
        report = run_latency_check(
            audio,
            passthrough=passthrough,
            duration_s=duration,
            every_s=every,
            on_trip=on_trip,
            on_warning=lambda message: console.print(f"[yellow]warning:[/] {message}"),
            profile=chosen.name,
            blocks_ms=blocks,
        )
    finally:
        audio.stop()
    print_report(report)


def print_report(r: LatencyReport) -> None:
    table = Table(title="Audio path", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "profile",
        f"{r.profile}; blocks {', '.join(f'{k} {v:.0f} ms' for k, v in r.blocks_ms.items())}",
    )
    dev = r.device_latency_ms
    table.add_row("device buffers", f"input {dev['input']:.0f} ms, output {dev['output']:.0f} ms")
    if r.loop_delay_p50_ms is not None:
        table.add_row(
            "mic to speaker (loop's figure)",
            f"p50 {r.loop_delay_p50_ms:.0f} ms, p95 {r.loop_delay_p95_ms:.0f} ms",
        )
    if r.mode == "clicks":
        found = f"{len(r.trips)} of {r.clicks_sent} clicks came back"
        table.add_row("clicks", found)
        if r.round_trip_p50_ms is not None:
            table.add_row("round trip (measured)", f"p50 {r.round_trip_p50_ms:.0f} ms")
        if r.outside_ms is not None:
            table.add_row("speaker to mic (the rest)", f"{r.outside_ms:.0f} ms")
    table.add_row("glitches", f"{r.underruns} underruns, {r.dropped} frames dropped")
    console.print(table)
    if r.mode == "clicks" and not r.trips:
        console.print(
            "[yellow]No click came back:[/] the microphone did not hear the speaker. Turn the "
            "volume up, use the built-in speaker and microphone, or try --passthrough."
        )
