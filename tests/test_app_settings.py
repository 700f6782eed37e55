"""The settings file: the folders the app and its login item use, since they start without the
user's shell environment. The environment always wins over the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import app_settings, paths
from assistant.app_settings import (
    apply_settings,
    from_environment,
    load_settings,
    save_settings,
    setting,
)


def test_the_file_fills_in_only_what_the_environment_does_not_set(isolated_settings: Path) -> None:
    save_settings({"HF_HOME": "/Volumes/Models/hf", "ASSISTANT_HOME": "/Volumes/Data/moshi"})
    env = {"ASSISTANT_HOME": "/from/the/shell"}
    assert apply_settings(env) == {"HF_HOME": "/Volumes/Models/hf"}
    assert env == {"ASSISTANT_HOME": "/from/the/shell", "HF_HOME": "/Volumes/Models/hf"}
    assert setting("HF_HUB_CACHE", env) is None
    assert setting("ASSISTANT_HOME", {}) == "/Volumes/Data/moshi"


def test_saving_merges_and_expands_the_home_folder(isolated_settings: Path) -> None:
    save_settings({"HF_HOME": "~/models"})
    save_settings({"HF_HUB_CACHE": "/fast/hub"})
    assert load_settings() == {"HF_HOME": str(Path.home() / "models"), "HF_HUB_CACHE": "/fast/hub"}
    with pytest.raises(ValueError, match="not a setting: PATH"):
        save_settings({"PATH": "/bin"})
    assert from_environment({"HF_HOME": "/x", "PATH": "/bin", "HF_HUB_CACHE": ""}) == {
        "HF_HOME": "/x"
    }


@pytest.mark.parametrize(
    "content",
    ["not json", "[1, 2]", json.dumps({"HF_HOME": 3, "EVIL": "/x", "ASSISTANT_HOME": ""})],
)
def test_a_broken_file_is_ignored(
    isolated_settings: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    isolated_settings.write_text(content)
    assert load_settings() == {}
    assert apply_settings({}) == {}


def test_the_data_folder_comes_from_the_file_without_assistant_home(
    isolated_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ASSISTANT_HOME")
    save_settings({"ASSISTANT_HOME": str(tmp_path / "elsewhere")})
    assert paths.data_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "shell"))
    assert paths.data_dir() == tmp_path / "shell"  # the environment wins


def test_the_default_file_is_in_the_platform_data_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSISTANT_SETTINGS")
    path = app_settings.settings_file()
    assert path.name == "settings.json" and path.parent.name == "moshi-assistant"


def test_a_process_without_the_shell_uses_the_saved_model_cache(
    isolated_settings: Path, tmp_path: Path
) -> None:
    # As the app or a login item starts it: no HF_HOME in its environment. The file's cache is
    # the one huggingface_hub looks in (the offline error names it).
    save_settings({"HF_HOME": str(tmp_path / "models")})
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "HF_HUB_CACHE")}
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "info", "moshiko-q4"],
        capture_output=True,
        text=True,
        env=env | {"HF_HUB_OFFLINE": "1", "COLUMNS": "300"},
        timeout=120,
    )
    assert result.returncode == 1
    assert f"(in {tmp_path / 'models' / 'hub'})" in result.stderr


def test_settings_command_saves_and_shows_where_each_comes_from(
    isolated_settings: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "HF_HUB_CACHE")}
    env |= {"COLUMNS": "200", "HF_HUB_CACHE": str(tmp_path / "hub")}
    saved = subprocess.run(
        [sys.executable, "-m", "assistant", "settings", "--save"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert saved.returncode == 0, saved.stderr
    assert f"Recorded in {isolated_settings}:" in saved.stdout
    assert load_settings() == {
        "ASSISTANT_HOME": os.environ["ASSISTANT_HOME"],
        "HF_HUB_CACHE": str(tmp_path / "hub"),
    }
    del env["HF_HUB_CACHE"]
    shown = subprocess.run(
        [sys.executable, "-m", "assistant", "settings"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    rows = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if "│" in line}
    assert "environment" in rows["ASSISTANT_HOME"]
    assert "settings file" in rows["HF_HUB_CACHE"] and str(tmp_path / "hub") in rows["HF_HUB_CACHE"]
    assert "default" in rows["HF_HOME"]
