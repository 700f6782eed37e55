"""The published Moshi MLX checkpoints on the Hugging Face hub."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from .mimi_layout import PUBLISHED_MIMI_BYTES

VOICES = ("moshiko", "moshika")
QUANTS = ("q4", "q8", "bf16")

MIMI_FILE = "tokenizer-e351c8d8-checkpoint125.safetensors"
TEXT_TOKENIZER_FILE = "tokenizer_spm_32k_3.model"
# Not published (the repos ship no config): where a folder of ours keeps a non-moshiko config.
CONFIG_FILE = "config.json"
MIMI_SIZE = PUBLISHED_MIMI_BYTES

# Published model file sizes in bytes (q4, q8 measured). bf16 is the size our synthetic writer
# gives the same layout with the published header recipe (not checked against the hub).
_MODEL_FILES = {
    "q4": ("model.q4.safetensors", 4_805_545_040),
    "q8": ("model.q8.safetensors", 8_168_804_664),
    "bf16": ("model.safetensors", 15_375_697_208),
}


@dataclass(frozen=True)
class Preset:
    voice: str
    quant: str
    repo_id: str
    model_file: str
    model_size: int
    mimi_file: str = MIMI_FILE
    mimi_size: int = MIMI_SIZE
    text_tokenizer_file: str = TEXT_TOKENIZER_FILE

    @property
    def name(self) -> str:
        return f"{self.voice}-{self.quant}"

    @property
    def files(self) -> tuple[str, str, str]:
        return (self.model_file, self.mimi_file, self.text_tokenizer_file)

    @property
    def download_command(self) -> str:
        """The command that fetches this preset into the hub cache."""
        return f"assistant download --voice {self.voice} --quant {self.quant}"

    @property
    def download_size(self) -> int:
        """Bytes of the two large files (the text tokenizer is under 1 MB)."""
        return self.model_size + self.mimi_size


PRESETS: dict[str, Preset] = {
    f"{voice}-{quant}": Preset(
        voice=voice,
        quant=quant,
        repo_id=f"kyutai/{voice}-mlx-{quant}",
        model_file=_MODEL_FILES[quant][0],
        model_size=_MODEL_FILES[quant][1],
    )
    for voice in VOICES
    for quant in QUANTS
}


def preset(voice: str = "moshiko", quant: str = "q4") -> Preset:
    voice, quant = voice.lower(), quant.lower()
    if voice not in VOICES:
        raise UsageError(f"unknown voice '{voice}': choose one of {', '.join(VOICES)}")
    if quant not in QUANTS:
        raise UsageError(f"unknown quantization '{quant}': choose one of {', '.join(QUANTS)}")
    return PRESETS[f"{voice}-{quant}"]


def find_preset(name: str) -> Preset | None:
    """A preset from `moshiko-q4`, `kyutai/moshiko-mlx-q4` or `moshiko-mlx-q4`; else None."""
    key = name.strip().lower().removeprefix("kyutai/").replace("-mlx-", "-")
    return PRESETS.get(key)
