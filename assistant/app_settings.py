"""The settings file: the folders the app and its login item use.

An app opened from Finder, and a login item, start without the user's shell environment, so
`ASSISTANT_HOME`, `HF_HOME` and `HF_HUB_CACHE` set in a shell profile never reach them: the
app would write its sessions elsewhere and download 5 GB again into the default cache. They
read those folders from this file instead (`assistant settings --save` records the shell's):

    <the default data folder>/settings.json      {"HF_HOME": "/Volumes/Models/hf", ...}

Besides the folders, the file holds the history's preferences (PREFERENCES): how long
conversations are kept (`"retention": "30d"`; default: forever) and whether the user's side is
transcribed after each conversation (`"transcribe": "background"` or `"off"`).

It sits in the platform's data folder itself (it may move the data folder elsewhere);
`ASSISTANT_SETTINGS` names another file (the tests use one of their own). The environment
always wins: a value the environment sets is never replaced from the file.

The file is read like any file the user hands the assistant: only a regular file of at most
64 kB (a FIFO or a device there is named, never waited on), strict JSON. One that cannot be
used is ignored with a warning naming it: the command still runs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import platformdirs

from .errors import AssistantError
from .files import read_regular
from .strict_json import load_strict

APP_NAME = "moshi-assistant"
# The app bundle (scripts/build_app.sh): its identifier, and the variable its launcher sets to
# the bundle's path in the Python it starts, so that Python knows it runs as the app.
APP_BUNDLE_ID = "dev.moshi-assistant"
APP_BUNDLE_ENV = "MOSHI_ASSISTANT_APP"
# ASSISTANT_STT: the speech-to-text checkpoint (a folder or a catalogue name) for the history.
VARIABLES = ("ASSISTANT_HOME", "HF_HOME", "HF_HUB_CACHE", "ASSISTANT_STT")
SETTINGS_NAME = "settings.json"
# Preferences the file may hold besides the folders, with their defaults.
PREFERENCES = {"retention": "forever", "transcribe": "background"}
MAX_SETTINGS_BYTES = 64 * 1024  # three folder names need a few hundred
MAX_SETTINGS_DEPTH = 4  # a flat object of strings needs 1

log = logging.getLogger(__name__)
_applied: dict[str, str] = {}  # what apply_settings filled in, in this process
_problem: list[str] = []  # why the file was ignored, the last time it was read


def settings_file() -> Path:
    override = os.environ.get("ASSISTANT_SETTINGS")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path(APP_NAME) / SETTINGS_NAME


def load_settings(path: Path | None = None) -> dict[str, str]:
    """The folders the file sets ({} without a file); an unreadable file is logged, not fatal."""
    raw = _load_raw(path)
    return {k: v for k, v in raw.items() if k in VARIABLES and isinstance(v, str) and v}


def preference(name: str, path: Path | None = None) -> str:
    """One of PREFERENCES as the file sets it, else its default."""
    value = _load_raw(path).get(name)
    return value if isinstance(value, str) and value else PREFERENCES[name]


def save_preference(name: str, value: str, path: Path | None = None) -> Path:
    """Record one preference (the file's other entries kept), atomically."""
    if name not in PREFERENCES:
        raise ValueError(f"not a preference: {name}")
    return _save(_load_raw(path) | {name: value}, path)


def _load_raw(path: Path | None) -> dict[str, object]:
    path = settings_file() if path is None else path
    _problem.clear()
    if not os.path.lexists(path):
        return {}
    try:
        data = read_regular(path, MAX_SETTINGS_BYTES, what="settings file")
        raw = load_strict(
            data, max_depth=MAX_SETTINGS_DEPTH, error=AssistantError, path=path, what="not JSON"
        )
    except AssistantError as e:
        log.warning("%s; ignored", e)
        _problem[:] = [f"{e}; the settings file is ignored"]
        return {}
    if not isinstance(raw, dict):
        log.warning("%s: not a JSON object, ignored", path)
        return {}
    return raw


def setting(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The environment's value, else the settings file's, else None."""
    env = os.environ if environ is None else environ
    return env.get(name) or load_settings().get(name)


def apply_settings(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Fill in, from the file, each variable the environment does not set (call it before
    huggingface_hub is imported: it reads HF_HOME once). Returns what was filled in."""
    env = os.environ if environ is None else environ
    applied = {k: v for k, v in load_settings().items() if not env.get(k)}
    env.update(applied)
    if environ is None:
        _applied.update(applied)
    return applied


def settings_problem() -> str | None:
    """Why the settings file was ignored when it was last read (for a warning on screen)."""
    return _problem[0] if _problem else None


def applied_from_file() -> dict[str, str]:
    """The variables this process took from the settings file (not from its environment)."""
    return dict(_applied)


def save_settings(values: Mapping[str, str], path: Path | None = None) -> Path:
    """Record `values` (merged over what the file already holds), atomically."""
    path = settings_file() if path is None else path
    unknown = set(values) - set(VARIABLES)
    if unknown:
        raise ValueError(f"not a setting: {', '.join(sorted(unknown))}")
    merged = _load_raw(path) | {k: str(Path(v).expanduser()) for k, v in values.items()}
    return _save(merged, path)


def _save(merged: Mapping[str, object], path: Path | None) -> Path:
    path = settings_file() if path is None else path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the environment sets (what `assistant settings --save` records)."""
    env = os.environ if environ is None else environ
    return {k: env[k] for k in VARIABLES if env.get(k)}


def app_bundle(environ: Mapping[str, str] | None = None) -> Path | None:
    """The "Moshi Assistant.app" this process runs as (started by its launcher), if any."""
    env = os.environ if environ is None else environ
    value = env.get(APP_BUNDLE_ENV)
    return Path(value) if value else None
