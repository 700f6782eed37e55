"""The history: conversations listed, searched, transcribed, exported and deleted by id."""

from __future__ import annotations

import json
import os
import stat
import threading
import wave
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from assistant.conversation import session_files as files
from assistant.conversation.session import SessionWriter
from assistant.errors import HistoryError, SessionBusyError, UnknownSessionError, UsageError
from assistant.frames import FRAME_SAMPLES, SAMPLE_RATE
from assistant.history import store, transcriber, transcripts
from assistant.history.export import export
from assistant.history.retention import apply_retention, parse_age, prune
from assistant.history.search import search
from assistant.history.transcripts import Word
from assistant.paths import sessions_dir
from tests.support.history_folders import T0, make_conversation, make_many


class ScriptedRecognizer:
    """Says the same words for any audio, stepping frame by frame like the real model."""

    def __init__(self, words: list[Word], fail_at: int | None = None) -> None:
        self.words = words
        self.fail_at = fail_at
        self.calls: list[int] = []

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        progress: Callable[[float, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Word]:
        frames = len(samples) // FRAME_SAMPLES
        self.calls.append(len(samples))
        for i in range(frames):
            if should_stop is not None and should_stop():
                raise RuntimeError("stopped")
            if i == self.fail_at:
                raise KeyboardInterrupt  # a kill in the middle
            if progress is not None:
                progress(
                    (i + 1) * FRAME_SAMPLES / SAMPLE_RATE, frames * FRAME_SAMPLES / SAMPLE_RATE
                )
        return list(self.words)


USER_WORDS = [Word(0.1, 0.3, "Hi"), Word(0.35, 0.6, "Moshi."), Word(2.0, 2.3, "Bye")]


@pytest.fixture
def root() -> Path:
    folder = sessions_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_list_is_newest_first_with_what_each_says_about_itself(root: Path) -> None:
    make_many(root, 3)
    found = store.list_conversations()
    starts = [c.started.timestamp() for c in found if c.started]
    assert len(starts) == 3 and starts == sorted(starts, reverse=True)
    first = found[0].to_dict()
    assert {"id", "started", "duration_s", "voice", "quant"} <= set(first)
    assert (first["voice"], first["quant"], first["duration_s"]) == ("moshiko", "q4", 2.0)
    assert (first["delay_p50_ms"], first["delay_p95_ms"]) == (120.0, 180.0)
    assert first["words_user"] is None and first["words_moshi"] == 3  # "Hello there. Bye"
    assert first["first_words"] == "Hello there. Bye"
    assert not found[0].problems


def test_damaged_folders_are_listed_with_what_is_wrong(root: Path, tmp_path: Path) -> None:
    make_conversation(root, "a-missing-wav").joinpath("moshi.wav").unlink()
    (make_conversation(root, "b-truncated") / "summary.json").write_text('{"started": "20')
    (make_conversation(root, "c-stranger") / "holiday.jpg").write_bytes(b"x")
    (root / "d-not-a-conversation").mkdir()
    (root / "d-not-a-conversation" / "notes.txt").write_text("mine")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "e-link").symlink_to(outside)
    (make_conversation(root, "f-bad-transcript") / "transcript.json").write_text("[{")
    problems = {c.id: "; ".join(c.problems) for c in store.list_conversations()}
    assert "moshi.wav missing" in problems["a-missing-wav"]
    assert "summary.json is damaged" in problems["b-truncated"]
    assert "not the assistant's: holiday.jpg" in problems["c-stranger"]
    assert problems["d-not-a-conversation"].startswith("not a conversation")
    assert problems["e-link"].startswith("not a conversation")
    assert "transcript.json is damaged" in problems["f-bad-transcript"]


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "/etc", ".lock", "x.partial", "é"])
def test_an_id_never_reaches_another_path(root: Path, bad: str) -> None:
    with pytest.raises(UnknownSessionError):
        store.folder_of(bad)


def test_a_link_in_the_sessions_folder_is_never_followed(root: Path, tmp_path: Path) -> None:
    target = make_conversation(tmp_path, "real")
    (root / "linked").symlink_to(target)
    with pytest.raises(UnknownSessionError):
        store.delete("linked")
    assert (target / "user.wav").exists()


def test_delete_removes_every_file_of_the_conversation_and_nothing_else(root: Path) -> None:
    folder = make_conversation(root, "one")
    keep = make_conversation(root, "two")
    assert store.delete("one") == []
    assert not folder.exists() and (keep / "user.wav").exists()
    stranger = make_conversation(root, "three")
    (stranger / "mine.txt").write_text("not yours")
    assert store.delete("three") == ["mine.txt"]
    assert sorted(os.listdir(stranger)) == ["mine.txt"]


def test_delete_is_refused_while_recorded_or_played(root: Path) -> None:
    live = root / "live"
    live.mkdir()
    writer = SessionWriter(live, lambda: {})
    try:
        with pytest.raises(SessionBusyError, match="being recorded"):
            store.delete("live")
        assert store.open_conversation("live").recording
    finally:
        writer.close()
    playing = make_conversation(root, "playing")
    with files.using(playing), pytest.raises(SessionBusyError, match="played or transcribed"):
        store.delete("playing")
    store.delete("live")
    store.delete("playing")


def test_moshi_words_come_from_the_frames_on_the_recording_clock(tmp_path: Path) -> None:
    folder = make_conversation(tmp_path)
    words = transcripts.moshi_words(folder)
    assert [(w.text, round(w.start, 2)) for w in words] == [
        ("Hello", 0.24),
        ("there.", 0.32),
        ("Bye", 1.76),
    ]
    lines = transcripts.lines_from_words("moshi", words)
    assert [x.text for x in lines] == ["Hello there.", "Bye"]  # a pause > 1 s starts a line


def test_a_session_transcribed_gets_both_sides_interleaved(root: Path) -> None:
    folder = make_conversation(root, aec=True)
    lines = transcriber.transcribe_session(folder, ScriptedRecognizer(USER_WORDS))
    assert [(x.speaker, x.text) for x in lines] == [
        ("user", "Hi Moshi."),
        ("moshi", "Hello there."),
        ("moshi", "Bye"),
        ("user", "Bye"),
    ]
    saved = json.loads((folder / "transcript.json").read_text())
    assert [set(x) >= {"speaker", "start", "end", "text"} for x in saved] == [True] * 4
    assert [x["start"] for x in saved] == sorted(x["start"] for x in saved)
    text = (folder / "transcript.txt").read_text()
    assert "You: Hi Moshi." in text and "Moshi: Hello there." in text
    for name in ("transcript.json", "transcript.txt"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    c = store.open_conversation(folder.name)
    assert c.transcribed and (c.words_user, c.words_moshi) == (3, 3)
    assert transcriber.user_audio_path(folder).name == "user_aec.wav"


def test_a_transcription_killed_midway_leaves_the_session_pending_then_resumes(root: Path) -> None:
    folder = make_conversation(root, seconds=1.0)
    with pytest.raises(KeyboardInterrupt):
        transcriber.transcribe_session(folder, ScriptedRecognizer(USER_WORDS, fail_at=5))
    assert not (folder / "transcript.json").exists()
    assert transcriber.pending() == [folder]
    report = transcriber.BackgroundWorker(lambda: ScriptedRecognizer(USER_WORDS)).run()
    assert report.done == [folder.name] and transcriber.pending() == []
    assert (folder / "transcript.json").exists()


def test_the_worker_does_every_pending_session_oldest_first_and_skips_live_ones(root: Path) -> None:
    old, new = make_many(root, 2)
    live = root / "zz-live"
    live.mkdir()
    writer = SessionWriter(live, lambda: {})
    writer.user_audio(np.zeros(FRAME_SAMPLES, np.float32))
    writer.flush()
    try:
        assert transcriber.pending() == [old, new]
        worker = transcriber.BackgroundWorker(
            lambda: ScriptedRecognizer(USER_WORDS), yield_to_conversations=False
        )
        assert worker.run().done == [old.name, new.name]
    finally:
        writer.close()
    assert transcriber.pending() == [live]


def test_the_worker_waits_while_a_conversation_is_recorded(root: Path) -> None:
    make_conversation(root, "done-talking")
    live = root / "talking"
    live.mkdir()
    writer = SessionWriter(live, lambda: {})
    waiting = threading.Event()

    class Watching(ScriptedRecognizer):
        def transcribe(self, samples, *, progress=None, should_stop=None):
            waiting.set()
            return super().transcribe(samples, progress=progress, should_stop=should_stop)

    worker = transcriber.BackgroundWorker(lambda: Watching(USER_WORDS))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # While the conversation records, the worker has not started transcribing.
        assert not waiting.wait(0.6)
        assert files.any_recording(root)
    finally:
        writer.close()
    thread.join(30)
    assert worker.report.done == ["done-talking", "talking"]
    assert worker.report.paused_s >= 0.5


def test_one_worker_at_a_time(root: Path) -> None:
    make_conversation(root)
    started = threading.Event()
    release = threading.Event()

    class Slow(ScriptedRecognizer):
        def transcribe(self, samples, *, progress=None, should_stop=None):
            started.set()
            release.wait(30)
            return super().transcribe(samples)

    first = transcriber.BackgroundWorker(lambda: Slow(USER_WORDS))
    thread = threading.Thread(target=first.run)
    thread.start()
    assert started.wait(30)
    second = transcriber.BackgroundWorker(lambda: ScriptedRecognizer(USER_WORDS)).run()
    release.set()
    thread.join(30)
    assert second.busy and not second.done and first.report.done


def test_a_worker_without_a_model_stops_and_leaves_everything_pending(root: Path) -> None:
    folder = make_conversation(root)

    def no_model() -> transcriber.Recognizer:
        raise HistoryError("no speech-to-text model")

    report = transcriber.BackgroundWorker(no_model).run()
    assert report.failed == {folder.name: "no speech-to-text model"}
    assert transcriber.pending() == [folder]


def test_search_finds_both_sides_with_times(root: Path) -> None:
    folder = make_conversation(root)
    transcriber.transcribe_session(folder, ScriptedRecognizer(USER_WORDS))
    make_conversation(root, "2026-11-23_10-00-00-chat")  # not transcribed: Moshi's side only
    found = search("hello THERE")
    assert {(m.conversation, m.speaker) for m in found} == {
        (folder.name, "moshi"),
        ("2026-11-23_10-00-00-chat", "moshi"),
    }
    assert [(m.speaker, m.start) for m in search("moshi.")] == [("user", 0.1)]
    assert search("   ") == []


def test_export_is_one_private_zip_with_markdown_and_stereo_audio(
    root: Path, tmp_path: Path
) -> None:
    folder = make_conversation(root, aec=True)
    transcriber.transcribe_session(folder, ScriptedRecognizer(USER_WORDS))
    c = store.open_conversation(folder.name)
    dest = export(c, tmp_path / "out.zip")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    with zipfile.ZipFile(dest) as z:
        md = z.read(f"{c.id}/transcript.md").decode()
        assert "**You** [0:00]: Hi Moshi." in md and "**Moshi** [0:00]: Hello there." in md
        with z.open(f"{c.id}/conversation.wav") as f, wave.open(f) as w:
            assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, SAMPLE_RATE, 48_000)
    with pytest.raises(HistoryError, match="exists already"):
        export(c, dest)
    export(c, dest, replace=True)


def test_prune_deletes_only_conversations_older_than_the_age(root: Path) -> None:
    make_many(root, 3)  # T0, T0 + 1 min, T0 + 2 min
    (root / "not-ours").mkdir()
    result = prune(timedelta(minutes=1), now=T0 + timedelta(minutes=2, seconds=30))
    assert len(result.deleted) == 2 and (root / "not-ours").exists()  # T0 and T0 + 1 min
    assert [c.id for c in store.list_conversations()] == ["2026-11-22_14-05-05-chat", "not-ours"]


@pytest.mark.parametrize(
    ("text", "age"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2))],
)
def test_ages(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["0d", "30", "-1d", "1y", "999999999d", "nan"])
def test_bad_ages_say_what_an_age_is(text: str) -> None:
    with pytest.raises(UsageError, match="like 12h, 30d or 2w"):
        parse_age(text)


def test_retention_keeps_everything_by_default_and_says_so_for_a_bad_value(root: Path) -> None:
    make_many(root, 2)
    assert apply_retention("forever").deleted == []
    assert apply_retention("soon").deleted == []
    assert len(apply_retention("1h").deleted) == 2  # T0 is in the past


def test_settings_record_retention_and_transcription(isolated_settings: Path) -> None:
    from typer.testing import CliRunner

    from assistant.app_settings import preference
    from assistant.cli import _register, app

    _register()
    runner = CliRunner()
    assert (preference("retention"), preference("transcribe")) == ("forever", "background")
    result = runner.invoke(app, ["settings", "--retention", "30D", "--transcribe", "off"])
    assert result.exit_code == 0, result.output
    assert "Conversations kept: 30d; your side transcribed: off" in result.output
    assert (preference("retention"), preference("transcribe")) == ("30d", "off")
    assert runner.invoke(app, ["settings", "--retention", "soon"]).exit_code != 0
    assert runner.invoke(app, ["settings", "--transcribe", "always"]).exit_code != 0
    assert preference("retention") == "30d"
