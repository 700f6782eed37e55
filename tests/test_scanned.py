"""The record of files whose values were already scanned: a change to a file forgets it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from assistant.checkpoint.scanned import already_scanned, remember_scanned
from assistant.paths import data_dir


def test_a_scanned_file_is_remembered_until_it_changes(tmp_path: Path) -> None:
    f = tmp_path / "mimi.safetensors"
    f.write_bytes(b"x" * 100)
    assert not already_scanned(f)
    remember_scanned(f)
    assert already_scanned(f)
    f.write_bytes(b"y" * 101)  # new size and time: scanned again
    assert not already_scanned(f)
    record = data_dir() / "cache" / "scanned.json"
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600


def test_an_unreadable_record_only_means_a_new_scan(tmp_path: Path) -> None:
    f = tmp_path / "mimi.safetensors"
    f.write_bytes(b"x")
    remember_scanned(f)
    (data_dir() / "cache" / "scanned.json").write_text("{not json")
    assert not already_scanned(f)
    assert not already_scanned(tmp_path / "missing.safetensors")
