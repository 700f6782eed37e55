"""Where the Hugging Face hub caches a repo: the folder layout alone, without the hub's client
(huggingface_hub's download code and requests take ~0.1 s of CPU to import), for the questions
a folder answers ("is anything of this repo here?")."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import constants


def cache_dir() -> Path:
    return Path(constants.HF_HUB_CACHE)


def repo_folder(repo_id: str) -> Path:
    """The hub cache's folder of a model repo: models--{owner}--{name}."""
    return cache_dir() / f"models--{repo_id.replace('/', '--')}"
