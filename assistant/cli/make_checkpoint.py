"""`assistant make-checkpoint`: write a random-weight checkpoint folder in the published layout,
or quantize an existing bf16 checkpoint into one (`--from`)."""

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

from ..checkpoint.config import PRESET_CONFIGS
from ..checkpoint.quantize import quantize_folder
from ..checkpoint.stt_config import STT_CONFIGS
from ..checkpoint.synthetic.checkpoint import make_checkpoint, preset_config
from ..checkpoint.synthetic.stt import make_stt_checkpoint, stt_config
from ..checkpoint.writing import QUANT_PRESETS, CheckpointFolder, parse_quant
from ..console import console
from ..errors import UsageError
from .options import MAX_WEIGHT_SEED, in_range


def register(app: typer.Typer) -> None:
    app.command("make-checkpoint")(make_checkpoint_command)


def make_checkpoint_command(
    folder: Annotated[Path, typer.Argument(help="Folder to write (created if missing).")],
    config: Annotated[
        str | None,
        typer.Option(
            "--config", help=f"Architecture: {' or '.join(PRESET_CONFIGS)} [default: tiny]."
        ),
    ] = None,
    quant: Annotated[
        str | None,
        typer.Option(
            "--quant",
            "-q",
            help=f"{', '.join(QUANT_PRESETS)}: 4-bit (groups of 32), 8-bit (groups of 64) "
            "or bfloat16, as published [default: q4; stt: bf16, the only one published].",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Random seed for the weights [default: 0].",
            callback=in_range(0, MAX_WEIGHT_SEED),
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="SRC",
            help="Quantize this bf16 checkpoint (folder, model file or cached preset such as "
            "moshiko-bf16) to --quant q4 or q8 instead of making random weights; its Mimi "
            "codec, text tokenizer and config.json come along.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Rewrite files that are already there.")
    ] = False,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="moshi (speech to speech) or stt (Kyutai's speech to text, laid out as "
            f"kyutai/stt-1b-en_fr-mlx; --config {' or '.join(STT_CONFIGS)} [default: tiny]).",
        ),
    ] = "moshi",
) -> None:
    """Write a synthetic checkpoint: random weights, exactly the published files and sizes.

    For tests, demos and benchmarks without the real weights. Complete files are kept. For the
    tiny config, q4 and q8 are the same seed's bf16 weights quantized, as the published ones
    are. With --from, an existing bf16 checkpoint is quantized instead (the model is always
    rewritten).
    """
    if kind == "stt":
        _make_stt(folder, config, quant, seed, source, overwrite)
        return
    if kind != "moshi":
        raise UsageError(f"unknown --kind {kind!r}; choose moshi or stt")
    quantization = parse_quant(quant or "q4")  # typed errors before anything touches the disk
    if source is not None:
        if quantization is None:
            raise UsageError("--from quantizes a bf16 checkpoint: choose --quant q4 or q8")
        given = [n for n, v in (("--config", config), ("--seed", seed)) if v is not None]
        if given:
            raise UsageError(
                f"{' and '.join(given)} cannot be combined with --from: the architecture and "
                "the weights come from the source"
            )
    else:
        preset_config(config or "tiny")
    start = time.perf_counter()
    with _ProgressBar() as bar:
        result: CheckpointFolder
        if source is not None and quantization is not None:
            result = quantize_folder(
                folder, source, quantization, overwrite=overwrite, progress=bar.update
            )
        else:
            result = make_checkpoint(
                folder,
                config_name=config or "tiny",
                quant=quantization,
                seed=seed or 0,
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
    if result.source is not None:
        console.print(f"Quantized from {result.source}.", soft_wrap=True)
        missing = [
            what
            for what, path in (
                ("Mimi codec", result.mimi),
                ("text tokenizer", result.text_tokenizer),
            )
            if path is None
        ]
        if missing:
            console.print(
                f"[yellow]The source has no {' or '.join(missing)}: pass one when loading "
                "(--mimi-file / --text-tokenizer).[/]",
                soft_wrap=True,
            )


def _make_stt(
    folder: Path,
    config: str | None,
    quant: str | None,
    seed: int | None,
    source: str | None,
    overwrite: bool,
) -> None:
    if source is not None:
        raise UsageError(
            "--from quantizes Moshi checkpoints; the STT model is published in bf16 only"
        )
    if quant not in (None, "bf16"):
        raise UsageError("the STT model is published in bf16 only: leave out --quant")
    stt_config(config or "tiny")  # a typed error before anything touches the disk
    start = time.perf_counter()
    with _ProgressBar() as bar:
        result = make_stt_checkpoint(
            folder,
            config_name=config or "tiny",
            seed=seed or 0,
            overwrite=overwrite,
            progress=bar.update,
        )
    elapsed = time.perf_counter() - start
    sizes = ", ".join(f"{p.name} {_size(p.stat().st_size)}" for p in result.files)
    verb = (
        f"wrote {len(result.written)} of {len(result.files)} files"
        if result.written
        else "already complete"
    )
    console.print(
        f"[green]{result.folder}[/]: {verb} ({sizes}; {_size(result.total_bytes)} in all) "
        f"in {elapsed:.1f} s; speech to text, random weights: it babbles",
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
