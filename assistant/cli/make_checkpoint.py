"""`assistant make-checkpoint`: write a random-weight checkpoint folder in the published layout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..console import console
from ..voice.config import PRESET_CONFIGS
from ..voice.synthetic.checkpoint import QUANT_PRESETS, make_checkpoint, parse_quant, preset_config


def register(app: typer.Typer) -> None:
    app.command("make-checkpoint")(make_checkpoint_command)


def make_checkpoint_command(
    folder: Annotated[Path, typer.Argument(help="Folder to write (created if missing).")],
    config: Annotated[
        str,
        typer.Option("--config", help=f"Architecture: {' or '.join(PRESET_CONFIGS)}."),
    ] = "tiny",
    quant: Annotated[
        str,
        typer.Option(
            "--quant",
            "-q",
            help=f"{', '.join(QUANT_PRESETS)}: 4-bit (groups of 32), 8-bit (groups of 64) "
            "or bfloat16, as published.",
        ),
    ] = "q4",
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the weights.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Rewrite files that are already there.")
    ] = False,
) -> None:
    """Write a synthetic checkpoint: random weights, exactly the published files and sizes.

    For tests, demos and benchmarks without the real weights. Complete files are kept.
    """
    quantization = parse_quant(quant)  # typed errors before anything touches the disk
    preset_config(config)
    start = time.perf_counter()
    with _ProgressBar() as bar:
        result = make_checkpoint(
            folder,
            config_name=config,
            quant=quantization,
            seed=seed,
            overwrite=overwrite,
            progress=bar.update,
        )
    elapsed = time.perf_counter() - start
    sizes = ", ".join(f"{p.name} {_size(p.stat().st_size)}" for p in result.files)
    if result.written:
        verb = f"wrote {len(result.written)} of {len(result.files)} files"
    else:
        verb = "already complete"
    console.print(
        f"[green]{result.folder}[/]: {verb} ({sizes}; {_size(result.total_bytes)} in all) "
        f"in {elapsed:.1f} s",
        soft_wrap=True,
    )


class _ProgressBar:
    """A rich progress bar that appears on the first byte written, not before."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("writing"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> _ProgressBar:
        return self

    def update(self, done: int, total: int) -> None:
        if self.task is None:
            if total == 0:
                return
            self.progress.start()
            self.task = self.progress.add_task("write", total=total)
        self.progress.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
