"""Options shared by the commands that load a model or open audio devices."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

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
ListenFirst = Annotated[
    bool,
    typer.Option(
        "--listen-first",
        help="Moshi stays silent until you have spoken (its text and audio held to silence).",
    ),
]
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


# --- numbers: every numeric option has a range, checked as it is parsed ------------------------

N = TypeVar("N", int, float)

MAX_SEED = 2**64 - 1  # what the sampling key takes
MAX_WEIGHT_SEED = 2**32 - 1  # what numpy's weight generator takes
MAX_STEPS = 100_000  # 2 h 13 min of conversation: beyond it no figure gets better
MAX_WARMUP = 10_000
MAX_TOP_K = 1_000_000  # past any vocabulary (text 32,000, audio 2,048): no truncation
MAX_RUN_S = 24 * 3600.0  # --duration of one run
MAX_UPDATES = 1_000_000_000


def in_range(low: N, high: N, unit: str = "") -> Callable[[N | None], N | None]:
    """A typer callback refusing, as the option is parsed, a value outside low..high (and NaN
    or infinity), with the range in the message: exit 2, one line, nothing loaded."""

    def check(value: N | None) -> N | None:
        if value is None:
            return value
        finite = not isinstance(value, float) or math.isfinite(value)
        if not (finite and low <= value <= high):
            raise typer.BadParameter(
                f"must be between {_shown(low)} and {_shown(high)}{unit}, got {value}"
            )
        return value

    return check


def _shown(bound: float) -> str:
    return f"{bound:,}" if isinstance(bound, int) else f"{bound:,g}"


def positive_up_to(high: float, unit: str = "") -> Callable[[float | None], float | None]:
    """Like `in_range`, for a quantity that must be above zero (a duration)."""

    def check(value: float | None) -> float | None:
        if value is None:
            return value
        if not (math.isfinite(value) and 0 < value <= high):
            raise typer.BadParameter(f"must be above 0 and at most {high:,g}{unit}, got {value}")
        return value

    return check


def _delay_range() -> Callable[[float | None], float | None]:
    from ..conversation.lag import MAX_MAX_DELAY_MS, MIN_MAX_DELAY_MS

    return in_range(MIN_MAX_DELAY_MS, MAX_MAX_DELAY_MS, " ms")


def _temperature() -> typer.models.OptionInfo:
    from ..voice.sampling import MAX_TEMPERATURE

    return typer.Option(help="0 = greedy.", callback=in_range(0.0, MAX_TEMPERATURE))


DELAY_RANGE = _delay_range()
DURATION_RANGE = positive_up_to(MAX_RUN_S, " s")
TEMPERATURE = _temperature()
TOP_K = typer.Option(help="0 = no truncation.", callback=in_range(0, MAX_TOP_K))
