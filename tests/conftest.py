"""Shared fixtures. Every test runs against an empty, offline Hugging Face cache in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import constants


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the hub cache at a fresh temp folder and forbid network access by default."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return home / "hub"
