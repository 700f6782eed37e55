"""Fetching published checkpoints through huggingface_hub (its cache, its progress bars).

Before the multi-gigabyte model file is fetched, its header is read remotely (a small range
request) and checked like a local file, and free disk space is checked, so a download that
would be useless or could not finish never starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import huggingface_hub
import requests
from huggingface_hub import constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)

from ..errors import CheckpointError, DownloadError, InsufficientDiskError, MissingFilesError
from .catalogue import Preset
from .hub_cache import cache_dir, repo_folder
from .safetensors_reader import SafetensorsHeader, TensorInfo

T = TypeVar("T")

# Leave room for the OS and the hub's temporary `.incomplete` file naming.
DISK_MARGIN_BYTES = 512 * 1024 * 1024


def offline() -> bool:
    return bool(constants.HF_HUB_OFFLINE)


def cached_files(p: Preset) -> dict[str, Path | None]:
    """Each file of the preset in the local hub cache, or None. Never touches the network."""
    # Without the repo's folder nothing of it is cached: the hub's lookup (its first call
    # imports ~0.06 s of CPU of modules) is not needed to say so.
    if not repo_folder(p.repo_id).is_dir():
        return dict.fromkeys(p.files)
    found: dict[str, Path | None] = {}
    for name in p.files:
        hit = huggingface_hub.try_to_load_from_cache(p.repo_id, name, cache_dir=cache_dir())
        found[name] = Path(hit) if isinstance(hit, str) else None
    return found


def expected_size(p: Preset, name: str) -> int:
    return {p.model_file: p.model_size, p.mimi_file: p.mimi_size}.get(name, 1024 * 1024)


def download(p: Preset, names: list[str]) -> dict[str, Path]:
    """Download `names` from the preset's repo into the hub cache, checking first."""
    if offline():
        raise MissingFilesError(
            f"{p.repo_id}: HF_HUB_OFFLINE is set and these files are not cached: "
            f"{', '.join(names)} (in {cache_dir()}). Unset HF_HUB_OFFLINE on a machine with "
            "internet access and run `assistant download`, or pass a folder holding the files"
        )
    check_disk(p, names)
    if p.model_file in names:
        check_remote_model(p)
    paths = {}
    for name in names:
        paths[name] = Path(_hub_call(p, name, huggingface_hub.hf_hub_download, p.repo_id, name))
    return paths


def check_disk(p: Preset, names: list[str]) -> None:
    folder = cache_dir()
    probe = (
        folder if folder.exists() else next((a for a in folder.parents if a.exists()), Path("/"))
    )
    need = sum(expected_size(p, n) for n in names) + DISK_MARGIN_BYTES
    free = shutil.disk_usage(probe).free
    if free < need:
        raise InsufficientDiskError(
            f"downloading {p.name} needs {need / 1e9:.1f} GB but only {free / 1e9:.1f} GB is free",
            path=folder,
            hint="free some space or point HF_HOME at a larger disk",
        )


def check_remote_model(p: Preset) -> None:
    """Validate the published model file's header before fetching gigabytes of it."""
    from .config import MOSHIKO_V0_1
    from .inspection import compare, detect_quantization

    header = fetch_remote_header(p)
    problems = compare(MOSHIKO_V0_1, detect_quantization(header), header)
    if problems:
        raise CheckpointError(
            f"the published file does not match the moshiko v0.1 architecture ({problems[0]}); "
            "nothing was downloaded",
            path=f"{p.repo_id}/{p.model_file}",
        )


def fetch_remote_header(p: Preset) -> SafetensorsHeader:
    """The published model file's header, read remotely without downloading the file."""
    meta = _hub_call(
        p, p.model_file, huggingface_hub.parse_safetensors_file_metadata, p.repo_id, p.model_file
    )
    return remote_header(p, meta)


def remote_header(p: Preset, meta: object) -> SafetensorsHeader:
    """Our header type from huggingface_hub's SafetensorsFileMetadata."""
    tensors = {
        name: TensorInfo(t.dtype, tuple(t.shape), t.data_offsets[0], t.data_offsets[1])
        for name, t in meta.tensors.items()  # type: ignore[attr-defined]
    }
    size = max((t.end for t in tensors.values()), default=0)
    return SafetensorsHeader(
        Path(f"{p.repo_id}/{p.model_file}"),
        size,
        0,
        tensors,
        dict(meta.metadata or {}),  # type: ignore[attr-defined]
    )


def _hub_call(p: Preset, name: str, fn: Callable[..., T], *args: Any) -> T:
    where = f"{p.repo_id}/{name}"
    try:
        return fn(*args)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise MissingFilesError(
            f"{where}: cannot reach the Hugging Face hub and the file is not cached "
            f"(in {cache_dir()}); connect to the internet and run `{p.download_command}`, "
            "or pass a folder holding the files"
        ) from None
    except GatedRepoError:
        raise DownloadError(
            f"{where}: the repository is gated; log in with `huggingface-cli login`"
        ) from None
    except RepositoryNotFoundError:
        raise DownloadError(f"{where}: repository not found on the hub") from None
    except EntryNotFoundError:
        raise DownloadError(f"{where}: file not found in the repository") from None
    except HfHubHTTPError as e:
        raise DownloadError(f"{where}: the hub refused the request ({e})") from None
    except (requests.ConnectionError, requests.Timeout) as e:
        reason = "name resolution failed" if "NameResolution" in str(e) else type(e).__name__
        raise MissingFilesError(
            f"{where}: cannot reach the Hugging Face hub ({reason}) and the file is not cached "
            f"(in {cache_dir()}); connect to the internet and run `{p.download_command}`, "
            "or pass a folder holding the files"
        ) from None
    except OSError as e:
        raise MissingFilesError(
            f"{where}: download failed ({type(e).__name__}: {e}); check the connection and retry "
            "(finished parts are kept in the hub cache)"
        ) from None
