"""The history end to end: a real `chat --input` leaves a conversation whose user side the
background transcriber writes down, a transcriber killed midway is resumed, and the
`assistant history` commands answer as a user sees them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.support.helpers import speech_clip
from tests.support.history_folders import make_conversation, make_many


def run(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    return os.environ | {"ASSISTANT_HOME": str(home), "COLUMNS": "120", "HF_HUB_OFFLINE": "1"}


def _transcribers(home: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            ours = "--pending" in p.cmdline() and p.environ().get("ASSISTANT_HOME") == home
            if ours and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_chat_on_a_file_gets_both_sides_written_down_in_the_background(
    tiny_checkpoint, tiny_stt: Path, env: dict[str, str], tmp_path: Path
) -> None:
    env = env | {"ASSISTANT_STT": str(tiny_stt)}
    # A second of speech ("Hello Moshi"), 2.08 s of conversation with the tail: both sides
    # need some words, which the random-weight models babble from the first frames.
    speech = speech_clip(tmp_path / "hello.wav", 1.0)
    chat = run(
        "chat", "--checkpoint", str(tiny_checkpoint("bf16")), "--input", str(speech),
        "--no-dashboard", env=env,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    sessions = Path(env["ASSISTANT_HOME"]) / "sessions"
    (folder,) = [p for p in sessions.iterdir() if not p.name.startswith(".")]
    # The worker was started detached as the chat ended: wait for its transcript and its end.
    _wait(lambda: (folder / "transcript.json").exists(), 240, "the transcript")
    _wait(lambda: not _transcribers(env["ASSISTANT_HOME"]), 60, "the worker to exit")
    lines = json.loads((folder / "transcript.json").read_text())
    assert {x["speaker"] for x in lines} == {"user", "moshi"}
    assert [x["start"] for x in lines] == sorted(x["start"] for x in lines)
    assert all(0 <= x["start"] <= x["end"] <= 2.2 for x in lines)
    text = (folder / "transcript.txt").read_text()
    assert "You: " in text and "Moshi: " in text
    listed = json.loads(run("history", "--json", env=env).stdout)
    assert [c["id"] for c in listed] == [folder.name]
    assert listed[0]["transcribed"] and listed[0]["words_user"] > 0


@pytest.mark.slow
def test_a_transcriber_killed_midway_loses_nothing_and_the_next_one_finishes(
    tiny_stt: Path, env: dict[str, str]
) -> None:
    env = env | {"ASSISTANT_STT": str(tiny_stt)}
    home = Path(env["ASSISTANT_HOME"])
    # 2 s of audio: 44 steps with the flush, seconds of work after "transcribing" is logged
    # (the worker runs at the lowest priority), against the 0.1 s it takes to see that line.
    folder = make_conversation(home / "sessions", seconds=2.0)
    log = home / "logs" / "transcribe.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "assistant", "transcribe", "--pending"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: log.exists() and "transcribing" in log.read_text(), 120, "the worker")
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(30)
    assert not (folder / "transcript.json").exists()
    assert not list(folder.glob("*.partial"))
    again = run("transcribe", "--pending", env=env)
    assert again.returncode == 0, again.stderr
    assert f"Transcribed {folder.name}" in again.stdout
    assert json.loads((folder / "transcript.json").read_text())


def test_history_commands_as_a_user_sees_them(env: dict[str, str], tmp_path: Path) -> None:
    sessions = Path(env["ASSISTANT_HOME"]) / "sessions"
    old, new = make_many(sessions, 2)
    listed = run("history", env=env)
    assert listed.returncode == 0 and listed.stdout.index(new.name) < listed.stdout.index(old.name)
    items = json.loads(run("history", "--json", env=env).stdout)
    assert all({"id", "started", "duration_s", "voice", "quant"} <= set(x) for x in items)
    shown = run("history", "show", new.name, env=env)
    assert "Moshi: Hello there." in shown.stdout and "not transcribed yet" in shown.stdout
    found = run("history", "search", "BYE", env=env)
    assert found.stdout.count("Moshi: Bye") == 2
    unknown = run("history", "show", "no-such-id", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        "error: no conversation 'no-such-id' (`assistant history` lists them)"
    )
    refused = run("history", "delete", old.name, env=env)
    assert refused.returncode != 0 and "needs --yes" in refused.stderr and old.exists()
    exported = run("history", "export", new.name, "-o", str(tmp_path / "x.zip"), env=env)
    assert exported.returncode == 0 and (tmp_path / "x.zip").exists()
    deleted = run("history", "delete", old.name, "--yes", env=env)
    assert deleted.returncode == 0 and not old.exists() and new.exists()
    pruned = run("history", "prune", "--older-than", "1d", env=env)
    assert pruned.returncode == 0 and "Deleted 1 conversation older" in pruned.stdout
    bad = run("history", "prune", "--older-than", "soon", env=env)
    assert bad.returncode != 0 and "not an age" in bad.stderr and len(bad.stderr.splitlines()) == 1
