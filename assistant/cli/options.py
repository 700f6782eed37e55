"""Options shared by the commands that load a model or open audio devices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..checkpoint.resolve import CheckpointSpec

Target = Annotated[
    str | None,
    typer.Argument(
        help="A preset (moshiko-q4, moshika-q8, kyutai/moshiko-mlx-bf16, ...), a checkpoint "
        "folder, or a model .safetensors file. Default: the preset chosen by --voice/--quant.",
        show_default=False,
    ),
]
Voice = Annotated[str, typer.Option("--voice", help="moshiko (male) or moshika (female).")]
Quant = Annotated[
    str | None,
    typer.Option(
        "--quant", "-q", help="q4, q8 or bf16 (presets default to q4).", show_default=False
    ),
]
ModelFile = Annotated[
    Path | None, typer.Option("--model-file", help="Use this model .safetensors file.")
]
MimiFile = Annotated[
    Path | None, typer.Option("--mimi-file", help="Use this Mimi codec .safetensors file.")
]
TextTokenizerFile = Annotated[
    Path | None,
    typer.Option("--text-tokenizer", help="Use this SentencePiece text tokenizer (.model)."),
]
CheckpointTarget = Annotated[
    str | None,
    typer.Option("--checkpoint", help="A checkpoint folder, model file or preset name."),
]
InputDevice = Annotated[
    str | None, typer.Option(help="Microphone: a device index or part of its name.")
]
OutputDevice = Annotated[
    str | None, typer.Option(help="Speaker: a device index or part of its name.")
]
NoAec = Annotated[bool, typer.Option("--no-aec", help="No echo cancellation (for headphones).")]
ConfigFile = Annotated[
    Path | None,
    typer.Option("--config", help="A moshi-format config.json (default: one beside the weights)."),
]


def checkpoint_spec(
    target: str | None,
    *,
    voice: str,
    quant: str | None,
    model_file: Path | None = None,
    mimi_file: Path | None = None,
    text_tokenizer: Path | None = None,
    config: Path | None = None,
) -> CheckpointSpec:
    """The checkpoint the common options name (the option names, not the spec's fields)."""
    return CheckpointSpec(
        target=target,
        voice=voice,
        quant=quant,
        model_file=model_file,
        mimi_file=mimi_file,
        text_tokenizer_file=text_tokenizer,
        config_file=config,
    )


def parse_device(spec: str | None) -> str | int | None:
    """An audio device option: a number is an index, anything else part of a name."""
    if spec is None:
        return None
    return int(spec) if spec.strip().isdigit() else spec


Latency = Annotated[
    str,
    typer.Option(
        "--latency",
        help="Audio latency profile: low (5 ms blocks, thinnest cushion), balanced (5 ms "
        "blocks) or safe (20 ms blocks, thick cushion). The quicker the profile, the sooner "
        "it glitches on a busy machine.",
    ),
]
