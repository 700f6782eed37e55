"""Conversations by id: the folders under the sessions folder, read back without trusting them.

A conversation's id is its folder's name, and is the only way in: an id is checked against
what the sessions folder holds (a direct child, a real folder, not a link), so nothing from a
command line or a request can reach another path. A damaged folder (a missing recording, a
truncated summary, a stranger's file, a folder that is no conversation at all) is listed with
what is wrong and never stops the listing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import stat
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..conversation import session_files as files
from ..errors import HistoryError, SessionBusyError, UnknownSessionError
from ..files import read_regular
from ..frames import FRAME_SECONDS
from ..paths import sessions_dir
from . import transcripts

log = logging.getLogger(__name__)

SUMMARY_MAX_BYTES = 4 << 20
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{2})-(\d{2})-(\d{2})")
FIRST_WORDS = 12


@dataclass
class Conversation:
    """One entry of the history: what the folder says about itself, and what is wrong with it."""

    id: str
    folder: Path
    started: datetime | None = None
    duration_s: float | None = None
    voice: str | None = None
    quant: str | None = None
    delay_p50_ms: float | None = None
    delay_p95_ms: float | None = None
    words_user: int | None = None  # None: the user's side is not transcribed (yet)
    words_moshi: int | None = None
    first_words: str = ""
    transcribed: bool = False
    recording: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def is_conversation(self) -> bool:
        return not any(p.startswith("not a conversation") for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started": self.started.isoformat() if self.started else None,
            "duration_s": self.duration_s,
            "voice": self.voice,
            "quant": self.quant,
            "delay_p50_ms": self.delay_p50_ms,
            "delay_p95_ms": self.delay_p95_ms,
            "words_user": self.words_user,
            "words_moshi": self.words_moshi,
            "first_words": self.first_words,
            "transcribed": self.transcribed,
            "recording": self.recording,
            "problems": list(self.problems),
        }


def check_id(conversation_id: str) -> str:
    """An id as typed or requested, refused (as unknown) unless it can only name a folder."""
    if not _ID.fullmatch(conversation_id) or conversation_id.endswith(files.PARTIAL_SUFFIX):
        raise UnknownSessionError(f"no conversation {conversation_id!r}")
    return conversation_id


def folder_of(conversation_id: str, root: Path | None = None) -> Path:
    """The folder of an existing conversation, or UnknownSessionError."""
    root = sessions_dir() if root is None else root
    folder = root / check_id(conversation_id)
    try:
        st = os.lstat(folder)
    except OSError:
        raise UnknownSessionError(
            f"no conversation {conversation_id!r}", hint="`assistant history` lists them"
        ) from None
    if not stat.S_ISDIR(st.st_mode):  # a link or a file: never followed
        raise UnknownSessionError(f"no conversation {conversation_id!r}")
    return folder


def open_conversation(conversation_id: str, root: Path | None = None) -> Conversation:
    return describe(folder_of(conversation_id, root))


def list_conversations(root: Path | None = None) -> list[Conversation]:
    """Every entry of the sessions folder, newest first; none can break the list."""
    root = sessions_dir() if root is None else root
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise HistoryError(f"cannot list conversations ({e.strerror or e})", path=root) from None
    found = []
    for entry in entries:
        if entry.name.startswith(".") or not _ID.fullmatch(entry.name):
            continue  # our own lock files; names no id could reach
        try:
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                found.append(_not_a_conversation(Path(entry.path), "a link or a file"))
                continue
            found.append(describe(Path(entry.path)))
        except Exception as e:  # a folder that defeats every check still gets its line
            log.exception("reading %s", entry.path)
            found.append(_not_a_conversation(Path(entry.path), f"unreadable ({e})"))
    found.sort(key=_newest_first)
    return found


def describe(folder: Path) -> Conversation:
    """What one folder holds, with each problem found named."""
    c = Conversation(id=folder.name, folder=folder, started=_stamp(folder.name))
    try:
        names = {e.name: e for e in os.scandir(folder)}
    except OSError as e:
        c.problems.append(f"not a conversation: unreadable ({e.strerror or e})")
        return c
    ours = {n for n in names if files.is_session_file(n)}
    if not ours & {files.SUMMARY, files.USER_WAV, files.MOSHI_WAV}:
        c.problems.append("not a conversation: no recording and no summary.json")
        return c
    strangers = sorted(set(names) - ours)
    if strangers:
        shown = ", ".join(strangers[:3]) + (" ..." if len(strangers) > 3 else "")
        c.problems.append(f"files that are not the assistant's: {shown}")
    for wav in (files.USER_WAV, files.MOSHI_WAV):
        if wav not in names:
            c.problems.append(f"{wav} missing")
    c.recording = files.LOCK in names and files.is_recording(folder)
    if files.SUMMARY in names:
        _read_summary(c, folder)
    elif not c.recording:
        c.problems.append("summary.json missing")
    _read_transcript(c, folder, names)
    return c


def _read_summary(c: Conversation, folder: Path) -> None:
    try:
        raw = json.loads(read_regular(folder / files.SUMMARY, SUMMARY_MAX_BYTES, HistoryError))
    except HistoryError as e:
        c.problems.append(f"summary.json: {e.message}")
        return
    except ValueError:
        c.problems.append("summary.json is damaged (not JSON)")
        return
    if not isinstance(raw, dict):
        c.problems.append("summary.json is damaged (not an object)")
        return
    if isinstance(started := raw.get("started"), str):
        try:
            c.started = datetime.fromisoformat(started)
        except ValueError:
            c.problems.append("summary.json: unreadable start time")
    # The recording's length (frames heard x 80 ms): a file fed as fast as it can go takes
    # another wall-clock time than it lasts.
    frames = _number(raw.get("frames_captured"))
    c.duration_s = frames * FRAME_SECONDS if frames else _number(raw.get("elapsed_s"))
    model = _object(raw.get("model"))
    c.voice = _text(model.get("voice"))
    c.quant = _text(model.get("quantization"))
    delay = _object(_object(raw.get("stages_ms")).get("delay"))
    if _number(delay.get("count")):
        c.delay_p50_ms = _number(delay.get("p50"))
        c.delay_p95_ms = _number(delay.get("p95"))


def _read_transcript(c: Conversation, folder: Path, names: Container[str]) -> None:
    lines = None
    if files.TRANSCRIPT_JSON in names:  # (a look-up saves 1,000 failed opens in a listing)
        try:
            lines = transcripts.read(folder)
        except HistoryError as e:
            c.problems.append(e.message)
    if lines is not None:
        c.transcribed = True
        c.words_user = sum(len(x.text.split()) for x in lines if x.speaker == transcripts.USER)
        c.words_moshi = sum(len(x.text.split()) for x in lines if x.speaker == transcripts.MOSHI)
        text = " ".join(x.text for x in lines)
    else:
        text = transcripts.moshi_text_live(folder) if files.TRANSCRIPT_TXT in names else ""
        c.words_moshi = len(text.split())
    c.first_words = " ".join(text.split()[:FIRST_WORDS])


def delete(conversation_id: str, root: Path | None = None) -> list[str]:
    """Remove the conversation's own files and its folder; refused while it is recorded,
    played or transcribed. Returns what was left behind (files that are not ours)."""
    folder = folder_of(conversation_id, root)
    try:
        with files.owning(folder):
            left = []
            for entry in os.scandir(folder):
                if entry.name == files.LOCK:
                    continue
                if files.is_session_file(entry.name) and not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)  # a link is removed, never what it points to
                else:
                    left.append(entry.name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / files.LOCK)  # held until the end: nobody starts meanwhile
    except files.Busy as e:
        raise SessionBusyError(f"cannot delete {conversation_id}: it is {e.what}") from None
    except OSError as e:
        raise HistoryError(f"cannot delete ({e.strerror or e})", path=folder) from None
    if not left:
        try:
            os.rmdir(folder)
        except OSError as e:
            raise HistoryError(f"cannot delete ({e.strerror or e})", path=folder) from None
    return left


def _not_a_conversation(folder: Path, why: str) -> Conversation:
    return Conversation(
        id=folder.name,
        folder=folder,
        started=_stamp(folder.name),
        problems=[f"not a conversation: {why}"],
    )


def _stamp(name: str) -> datetime | None:
    """The start time in a folder's name (`2026-11-22_14-03-05-chat`), local time."""
    m = _STAMP.match(name)
    if not m:
        return None
    try:
        return datetime.fromisoformat(f"{m[1]}T{m[2]}:{m[3]}:{m[4]}").astimezone()
    except ValueError:
        return None


def _newest_first(c: Conversation) -> tuple[float, str]:
    t = c.started.timestamp() if c.started else 0.0
    return (-t, c.id)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and abs(value) < 1e12 else None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value[:64] if isinstance(value, str) else None
