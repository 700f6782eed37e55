"""`assistant devices`: the audio devices PortAudio sees, and whether each does 24 kHz.

On macOS nothing is opened to find out: CoreAudio converts every rate (devices.py), and opening
a Bluetooth headset's microphone would switch its profile.
"""

from __future__ import annotations

import typer
from rich.table import Table

from ..audio.devices import DeviceInfo, Kind, list_devices, supports_rate
from ..console import console
from ..frames import SAMPLE_RATE


def register(app: typer.Typer) -> None:
    app.command("devices")(devices)


def _rate_cell(device: DeviceInfo, kind: Kind) -> str:
    if not device.has(kind):
        return "[dim]-[/]"
    if device.converts_rates:
        return "[green]converted[/]"
    if supports_rate(device, kind, SAMPLE_RATE):
        return "[green]yes[/]"
    return f"[yellow]resampled from {device.default_samplerate / 1000:g} kHz[/]"


def devices() -> None:
    """List audio input and output devices; use the index or part of the name to pick one."""
    found = list_devices()
    if not found:
        console.print("No audio devices found.")
        return
    table = Table(title="Audio devices", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("name")
    table.add_column("host API")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("default rate", justify="right")
    table.add_column("kind")
    table.add_column(f"{SAMPLE_RATE // 1000} kHz in")
    table.add_column(f"{SAMPLE_RATE // 1000} kHz out")
    table.add_column("default")
    for d in found:
        marks = [
            m for m, on in (("input", d.is_default_input), ("output", d.is_default_output)) if on
        ]
        table.add_row(
            str(d.index),
            d.name,
            d.hostapi,
            str(d.max_input_channels),
            str(d.max_output_channels),
            f"{d.default_samplerate:g}",
            d.transport or "",
            _rate_cell(d, "input"),
            _rate_cell(d, "output"),
            "[bold]" + ", ".join(marks) + "[/]" if marks else "",
        )
    console.print(table)
