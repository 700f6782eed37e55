"""Small builders shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from assistant.audio.sound_files import read_audio, write_wav
from assistant.checkpoint.config import TINY, MoshiConfig
from assistant.checkpoint.layout import Q4, Quantization, TensorSpec
from assistant.frames import SAMPLE_RATE
from assistant.voice.model import build_model

# The bundled sample (5.4 s: "Hello Moshi. Can you hear me? ..."), real speech from its first frame.
SPEECH = Path(__file__).resolve().parents[2] / "assistant" / "data" / "hello.wav"


def save_tiny_model(
    path: Path, quant: Quantization | None = Q4, config: MoshiConfig = TINY
) -> Path:
    """A model file written by MLX itself (independent of our synthetic writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(path), _initial_parameters(config, quant))
    return path


@functools.cache
def _initial_parameters(config: MoshiConfig, quant: Quantization | None) -> dict[str, mx.array]:
    """The model's parameters as MLX initialises them, made once per process: the random
    initialisation costs ~0.8 CPU-s even at the tiny size, saving them ~0.05. (MLX arrays are
    immutable: every file saved from them holds the same values.)"""
    parameters = dict(tree_flatten(build_model(config, quant).parameters()))
    mx.eval(parameters)
    return parameters


def tiny_folder(
    folder: Path, quant: Quantization | None = Q4, name: str = "model.q4.safetensors"
) -> Path:
    """A tiny model file plus its config.json: a folder the loader accepts as is."""
    save_tiny_model(folder / name, quant)
    TINY.write(folder / "config.json")
    return folder


def write_sparse(path: Path, specs: dict[str, TensorSpec]) -> Path:
    """A file with a real header and a hole where the data would be: costs no disk."""
    header, offset = {}, 0
    for name, s in specs.items():
        end = offset + s.nbytes
        header[name] = {"dtype": s.dtype, "shape": list(s.shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(header, separators=(",", ":")).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def require_free_disk(folder: Path, needed: int) -> None:
    """Skip, saying why, unless `folder` has room for `needed` bytes and 2 GB to spare."""
    free = shutil.disk_usage(folder).free
    if free < needed + 2 * 10**9:
        pytest.skip(f"needs {needed:,} bytes of free disk in {folder}, {free:,} available")


def run_script(script: str, *args: str) -> dict:
    """Run `script` in a fresh interpreter (its peak RSS is its own) and return the JSON object
    it prints last."""
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def only_session(sessions: Path) -> Path:
    """The one conversation folder in a sessions folder (its dot-files are locks, not
    conversations: see assistant/conversation/session_files.py)."""
    (session,) = [p for p in sessions.iterdir() if not p.name.startswith(".")]
    return session


def speech_clip(path: Path, seconds: float) -> Path:
    """The bundled sample's first `seconds` as a WAV at `path`: real speech, for a conversation
    whose claim needs some words, not the whole sentence (every second is 12.5 frames through
    the full-size codec)."""
    return write_wav(path, read_audio(SPEECH)[: int(seconds * SAMPLE_RATE)])
