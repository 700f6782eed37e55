"""Kyutai's published STT checkpoint in the Hugging Face cache: its catalogue entry, finding
it there, and downloading it (config first, then the model's header checked remotely against
that config, then the files, with huggingface_hub's progress bars)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import huggingface_hub

from ..errors import CheckpointError, MissingFilesError
from . import hub
from .catalogue import Preset
from .mimi_layout import PUBLISHED_MIMI_BYTES
from .safetensors_writer import planned_size
from .stt_config import (
    CONFIG_FILE,
    DEFAULT_MODEL_NAME,
    STT_1B_EN_FR,
    STT_MIMI_FILE,
    STT_REPO,
    STT_TOKENIZER_FILE,
    SttConfig,
)
from .stt_layout import stt_layout_problems, stt_tensors

STT_NAME = "stt-1b-en_fr"
MAKE_COMMAND = "assistant make-checkpoint PATH --kind stt"


@dataclass(frozen=True)
class SttPreset(Preset):
    """The published STT repo as a preset: bf16 only, and its config.json is part of it."""

    config_file: str = CONFIG_FILE

    @property
    def name(self) -> str:
        return STT_NAME

    @property
    def files(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.config_file, self.model_file, self.mimi_file, self.text_tokenizer_file)

    @property
    def download_command(self) -> str:
        return "assistant download --stt"


# The model's size is what the published header recipe gives this layout (the hub's figure,
# about 1.98 GB, is not checked byte for byte); the Mimi file is the same codec as moshiko's.
STT_PRESET = SttPreset(
    voice="stt",
    quant="bf16",
    repo_id=STT_REPO,
    model_file=DEFAULT_MODEL_NAME,
    model_size=planned_size(list(stt_tensors(STT_1B_EN_FR).values()), "published"),
    mimi_file=STT_MIMI_FILE,
    mimi_size=PUBLISHED_MIMI_BYTES,
    text_tokenizer_file=STT_TOKENIZER_FILE,
)


def is_stt_name(spec: str) -> bool:
    """`stt-1b-en_fr`, `stt`, `kyutai/stt-1b-en_fr-mlx` or `stt-1b-en_fr-mlx`."""
    key = spec.strip().lower().removeprefix("kyutai/").removesuffix("-mlx")
    return key in (STT_NAME, "stt")


def cached_folder() -> Path | None:
    """The snapshot folder holding every file of the published STT, or None. No network."""
    paths = hub.cached_files(STT_PRESET)
    if any(p is None for p in paths.values()):
        return None
    config = paths[CONFIG_FILE]
    assert config is not None
    return config.parent


def not_downloaded_error() -> MissingFilesError:
    missing = [n for n, p in hub.cached_files(STT_PRESET).items() if p is None]
    return MissingFilesError(
        f"{STT_REPO}: not downloaded yet: {', '.join(missing)} (in {hub.cache_dir()}). Run "
        f"`{STT_PRESET.download_command}` on a machine with internet access, or make a "
        f"synthetic one with `{MAKE_COMMAND}` and pass its folder"
    )


def download_stt() -> Path:
    """Fetch what is missing of the published STT into the hub cache; its snapshot folder."""
    p = STT_PRESET
    paths = hub.cached_files(p)
    missing = [n for n, path in paths.items() if path is None]
    if not missing:
        folder = cached_folder()
        assert folder is not None
        return folder
    if hub.offline():
        raise MissingFilesError(
            f"{p.repo_id}: HF_HUB_OFFLINE is set and these files are not cached: "
            f"{', '.join(missing)} (in {hub.cache_dir()}). Unset HF_HUB_OFFLINE on a machine "
            f"with internet access and run `{p.download_command}`, or pass a folder holding "
            "the files"
        )
    hub.check_disk(p, missing)
    config_path = paths[CONFIG_FILE] or _fetch(p, CONFIG_FILE)
    config = SttConfig.from_file(config_path)
    if p.model_file in missing:
        header = hub.fetch_remote_header(p)
        problems = stt_layout_problems(config, header)
        if problems:
            raise CheckpointError(
                f"the published model does not match its config.json ({problems[0]}); "
                "nothing more was downloaded",
                path=f"{p.repo_id}/{p.model_file}",
            )
    for name in missing:
        if name != CONFIG_FILE:
            _fetch(p, name)
    folder = cached_folder()
    if folder is None:
        raise not_downloaded_error()
    return folder


def _fetch(p: SttPreset, name: str) -> Path:
    return Path(hub._hub_call(p, name, huggingface_hub.hf_hub_download, p.repo_id, name))
