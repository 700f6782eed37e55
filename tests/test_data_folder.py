"""The data folder: private, checked before a model loads, whole when the disk fills up, and
the log that keeps the details behind every one-line error."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant import logs
from assistant.conversation.session import SessionWriter
from assistant.files import AppendOnlyFile
from assistant.paths import require_writable_sessions
from assistant.telemetry.trace import read_trace
from tests.support.helpers import only_session, speech_clip

SPEECH = Path(__file__).resolve().parents[1] / "assistant" / "data" / "hello.wav"


def assistant(*args: str, home: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = os.environ | {"ASSISTANT_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "100"}
    env.pop("ASSISTANT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def readable_by_others(home: Path) -> list[str]:
    """Everything under `home` (itself included) that a group or another user could read."""
    found = []
    for path in [home, *home.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            found.append(f"{path.relative_to(home.parent)} {stat.filemode(mode)}")
    return found


# --- private by default --------------------------------------------------------------------------


@pytest.mark.slow
def test_after_a_conversation_nothing_is_readable_by_others(
    tiny_checkpoint, tmp_path: Path
) -> None:
    home = tmp_path / "home"  # made by the assistant
    old = os.umask(0o022)  # the usual umask: what is private is so on purpose
    try:
        result = assistant(
            "chat",
            "--checkpoint",
            str(tiny_checkpoint("q4")),
            "--input",
            str(SPEECH),
            "--no-dashboard",
            "--duration",  # a second of conversation writes every file it keeps
            "1",
            home=home,
        )
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    session = only_session(home / "sessions")
    names = {p.name for p in session.iterdir()}
    assert {"user.wav", "moshi.wav", "transcript.txt", "summary.json", "trace.json"} <= names
    assert (home / "logs" / "chat.log").is_file()
    assert readable_by_others(home) == []


def test_session_writer_makes_its_files_private(tmp_path: Path) -> None:
    folder = tmp_path / "session"
    folder.mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        writer = SessionWriter(folder, lambda: {"frames": 0}, echo_cancelled=True)
        writer.user_audio(np.zeros(1920, np.float32))
        writer.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes and set(modes.values()) == {0o600}, modes
    assert "summary.json" in modes and "user_aec.wav" in modes


def test_the_log_starts_with_the_version(tmp_path: Path, monkeypatch) -> None:
    import assistant

    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    logs.stop()
    try:
        path = logs.start("chat")
    finally:
        logs.stop()
    assert path is not None
    first = path.read_text().splitlines()[0]
    assert f" assistant {assistant.__version__} chat (pid " in first, first


def test_the_log_is_private_and_rotates_privately(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    logs.stop()
    try:
        path = logs.start("chat")
        assert path == tmp_path / "home" / "logs" / "chat.log"
        log = logs.logging.getLogger("assistant.test")
        for n in range(100):
            log.info("line %d of a long conversation", n)
    finally:
        logs.stop()
    rotated = sorted(p.name for p in path.parent.iterdir())
    assert rotated == ["chat.log", "chat.log.1", "chat.log.2", "chat.log.3"]
    assert readable_by_others(tmp_path / "home") == []
    assert "line 99 of a long conversation" in path.read_text()


# --- the sessions folder, checked before the model loads -----------------------------------------


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write, root included: a read-only tmpfs when running as root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"as root a read-only folder needs a mount, which failed: {mounted.stderr!r}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("kind", ["read-only folder", "a file in the way"])
def test_unwritable_sessions_folder_is_refused_before_loading(
    kind: str, read_only_folder: Path, tmp_path: Path, tiny_checkpoint
) -> None:
    if kind == "a file in the way":
        home = tmp_path / "home"
        home.write_text("not a folder")
        where = home / "sessions"
    else:
        home = read_only_folder
        where = home / "sessions"
    started = time.monotonic()
    result = assistant(
        "chat", "--checkpoint", str(tiny_checkpoint("q4")), "--input", str(SPEECH), home=home
    )
    seconds = time.monotonic() - started
    assert result.returncode == 1
    assert lines(result.stdout) == []  # nothing started: no model card, no "Listening"
    (line,) = lines(result.stderr)
    assert line.startswith(f"error: {where}: cannot save conversations here (")
    assert "set ASSISTANT_HOME to a folder you can write" in line
    assert seconds < 30, seconds


def test_sessions_check_in_process(read_only_folder: Path, monkeypatch) -> None:
    from assistant.errors import StorageError

    monkeypatch.setenv("ASSISTANT_HOME", str(read_only_folder))
    with pytest.raises(StorageError, match="cannot save conversations here"):
        require_writable_sessions()


# --- a full disk ---------------------------------------------------------------------------------


def test_append_only_file_is_cut_back_to_its_last_flush(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "frames.jsonl"
    f = AppendOnlyFile(path)
    f.write('{"frame": 0}\n')
    f.flush()
    real = os.write
    calls = {"n": 0}

    def half_then_full(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real(fd, bytes(data)[: len(data) // 2])  # a partial write ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(os, "write", half_then_full)
    f.write('{"frame": 1}\n' * 10)
    with pytest.raises(OSError, match="No space"):
        f.flush()
    monkeypatch.setattr(os, "write", real)
    f.close()
    assert path.read_text() == '{"frame": 0}\n'  # whole lines only
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 192 KB filesystem of its own (tmpfs): Linux, as root. A conversation's files take
    about 9 KB a frame (both recordings 7.7), so it fills up at about the 20th frame."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a real full disk needs a tmpfs mount, which failed: {mounted.stderr!r}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _wav_matches_its_header(path: Path) -> int:
    raw = path.read_bytes()
    data_bytes = int.from_bytes(raw[40:44], "little")
    assert int.from_bytes(raw[4:8], "little") == 36 + data_bytes, path
    assert len(raw) == 44 + data_bytes, (path, len(raw), data_bytes)
    with wave.open(str(path)) as w:
        return w.getnframes()


@pytest.mark.slow
def test_full_disk_during_a_conversation_leaves_every_file_whole(
    small_disk: Path, tiny_checkpoint, tmp_path: Path
) -> None:
    home = small_disk / "home"
    # 2 s of speech and the 1 s tail: 38 frames, the last 15 or so after the disk is full.
    # (bf16: a fifth of q4's step on a CPU; what is tested is the files, not the model.)
    # At the microphone's pace (--realtime), so that a machine of any speed flushes the summary
    # (every second) before the disk is full, at ~1.6 s.
    speech = speech_clip(tmp_path / "hello.wav", 2.0)
    result = assistant(
        "chat",
        "--checkpoint",
        str(tiny_checkpoint("bf16")),
        "--input",
        str(speech),
        "--realtime",
        "--no-dashboard",
        home=home,
    )
    assert result.returncode == 0, result.stderr  # the conversation itself went on
    assert "recording stopped" in result.stderr and "No space left on device" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    session = only_session(home / "sessions")
    assert not list(session.glob("*.partial"))
    recorded = {name: _wav_matches_its_header(session / name) for name in ("user.wav", "moshi.wav")}
    assert recorded["user.wav"] > 0
    summary = json.loads((session / "summary.json").read_text())  # the last flush's
    assert 0 < summary["frames_captured"] <= len(lines((session / "frames.jsonl").read_text())) + 50
    for line in lines((session / "frames.jsonl").read_text()):
        json.loads(line)  # whole lines only
    for line in lines((session / "metrics.jsonl").read_text()):
        json.loads(line)
    events = read_trace(session / "trace.json")  # opens, closed or not
    assert any(e.get("name") == "encode" for e in events)
    shutil.rmtree(home, ignore_errors=True)


# --- the log behind "internal error" -------------------------------------------------------------


def test_internal_error_is_one_line_naming_the_log_with_the_traceback(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = (
        "import sys\n"
        "import assistant.checkpoint.resolve as r\n"
        "def boom(*a, **k):\n"
        "    raise RuntimeError('something nobody foresaw\\nsecond line')\n"
        "r.resolve = boom\n"
        "import assistant.cli.checkpoints as c\n"
        "c.resolve = boom\n"
        "sys.argv = ['assistant', 'info', 'somewhere']\n"
        "from assistant.cli import main\n"
        "main()\n"
    )
    env = os.environ | {"ASSISTANT_HOME": str(home)}
    env.pop("ASSISTANT_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1
    log = home / "logs" / "info.log"
    (line,) = lines(result.stderr)
    assert line == (
        f"internal error: RuntimeError: something nobody foresaw second line (details in {log})"
    )
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError" in text
    assert readable_by_others(home) == []
