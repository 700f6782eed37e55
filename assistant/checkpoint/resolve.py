"""Turn what the user named (a preset, a folder, or files) into concrete checkpoint files.

Presets resolve through huggingface_hub's own cache, so HF_HOME, HF_HUB_CACHE and
HF_HUB_OFFLINE behave as everywhere else; a file that is neither cached nor downloadable
is reported with the exact names missing and how to get them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import (
    CheckpointError,
    CodecFileError,
    ConfigError,
    MissingFilesError,
    TokenizerError,
    UsageError,
)
from ..files import require_regular
from .catalogue import CONFIG_FILE, Preset, find_preset, preset
from .safetensors_reader import read_header


@dataclass(frozen=True)
class CheckpointFiles:
    """The files of one checkpoint. Only `model` is always present."""

    model: Path
    mimi: Path | None = None
    text_tokenizer: Path | None = None
    config: Path | None = None
    preset: Preset | None = None

    @property
    def label(self) -> str:
        return self.preset.name if self.preset else str(self.model)


@dataclass(frozen=True)
class CheckpointSpec:
    """What the user asked for; resolved by `resolve`."""

    target: str | None = None  # a preset name, a folder or a model file
    voice: str = "moshiko"
    quant: str | None = None  # for presets (default q4) and to pick a file in a folder
    model_file: Path | None = None
    mimi_file: Path | None = None
    text_tokenizer_file: Path | None = None
    config_file: Path | None = None


def resolve(spec: CheckpointSpec, *, download: bool = False) -> CheckpointFiles:
    """Find (and with `download=True`, fetch) every file of the requested checkpoint."""
    found: CheckpointFiles
    if spec.model_file is not None:
        found = CheckpointFiles(model=_existing(spec.model_file))
    elif spec.target is not None and (p := find_preset(spec.target)) is not None:
        found = from_hub(p, download=download)
    elif spec.target is not None:
        path = Path(spec.target).expanduser()
        if path.is_dir():
            found = from_folder(path, quant=spec.quant)
        elif path.exists():
            found = from_model_file(path)
        else:
            raise CheckpointError(
                "no such file or folder, and not a preset name (try moshiko-q4, moshika-q8, ...)",
                path=path,
            )
    else:
        found = from_hub(preset(spec.voice, spec.quant or "q4"), download=download)
    return CheckpointFiles(
        model=found.model,
        mimi=_existing(spec.mimi_file, CodecFileError) if spec.mimi_file else found.mimi,
        text_tokenizer=(
            _existing(spec.text_tokenizer_file, TokenizerError)
            if spec.text_tokenizer_file
            else found.text_tokenizer
        ),
        config=_existing(spec.config_file, ConfigError) if spec.config_file else found.config,
        preset=found.preset,
    )


def from_model_file(path: Path) -> CheckpointFiles:
    """A model file; its folder supplies the Mimi file, text tokenizer and config.json."""
    folder = from_folder(path.parent, model=path)
    return folder


def from_folder(
    folder: Path, *, quant: str | None = None, model: Path | None = None
) -> CheckpointFiles:
    """Classify a folder's files by their headers, not their names."""
    models: list[Path] = []
    mimis: list[Path] = []
    unreadable: list[CheckpointError] = []
    for f in sorted(folder.glob("*.safetensors")):
        if model is not None and f == model:
            continue
        try:
            kind = _safetensors_kind(f)
        except CheckpointError as e:
            unreadable.append(e)
            continue
        (models if kind == "model" else mimis if kind == "mimi" else []).append(f)
    if model is None:
        if quant is not None:
            name = preset("moshiko", quant).model_file
            broken = [e for e in unreadable if e.path and Path(e.path).name == name]
            if broken:
                raise broken[0]
            wanted = [f for f in models if f.name == name]
            models = wanted or models
        if not models:
            if unreadable:  # most likely the model itself, damaged: say what is wrong with it
                raise unreadable[0]
            raise CheckpointError(
                "no Moshi model file here (a .safetensors file with transformer weights)",
                path=folder,
            )
        if len(models) > 1:
            names = ", ".join(f.name for f in models)
            raise UsageError(
                f"{folder}: several model files ({names}); pick one with --quant or --model-file"
            )
        model = models[0]
    if not mimis and unreadable:
        # A damaged codec file is not "no codec file": name it and what is wrong with it.
        first = unreadable[0]
        raise CodecFileError(f"unreadable, so no Mimi codec here: {first.message}", path=first.path)
    spms = sorted(folder.glob("*.model"))
    config = folder / CONFIG_FILE
    return CheckpointFiles(
        model=model,
        mimi=mimis[0] if mimis else None,
        text_tokenizer=spms[0] if spms else None,
        # Anything by that name counts, so a broken one is reported rather than ignored.
        config=config if os.path.lexists(config) else None,
    )


def _safetensors_kind(path: Path) -> str:
    """'model', 'mimi' or 'other', from tensor names; an unreadable file raises."""
    names = read_header(path).tensors.keys()
    if any(n.startswith("transformer.layers.") for n in names):
        return "model"
    if any(n.startswith("quantizer.") for n in names):
        return "mimi"
    return "other"


def _existing(path: Path, error: type[CheckpointError] = CheckpointError) -> Path:
    path = Path(path).expanduser()
    require_regular(path, error)
    return path


# --- the hub -------------------------------------------------------------------------------


def from_hub(p: Preset, *, download: bool) -> CheckpointFiles:
    """Files of a published preset from the local hub cache, downloading them if allowed."""
    from . import hub

    paths = hub.cached_files(p)
    missing = [name for name in p.files if paths.get(name) is None]
    if missing and download:
        paths.update(hub.download(p, missing))
        missing = [name for name in p.files if paths.get(name) is None]
    if missing:
        raise MissingFilesError(
            f"{p.repo_id}: not downloaded yet: {', '.join(missing)} "
            f"(in {hub.cache_dir()}). Run `{p.download_command}` "
            "on a machine with internet access, or put the files in a folder and pass that folder"
        )
    model = paths[p.model_file]
    assert model is not None  # not missing
    return CheckpointFiles(
        model=model,
        mimi=paths[p.mimi_file],
        text_tokenizer=paths[p.text_tokenizer_file],
        preset=p,
    )
