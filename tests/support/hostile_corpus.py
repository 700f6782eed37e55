"""Hostile input beyond checkpoints, made on purpose: the corpus every refusal is tested on.

The companion of tests/support/broken_corpus.py (broken checkpoints). Each case names what a hostile
or careless user could hand a command: an audio file whose header lies or whose samples are
not numbers, an output path that reaches the input, a special file where a file is read, a
number far out of range. `prepare` makes its files in a fresh work folder; `run_hostile` runs
the real command line in a fresh process, as a user would, and measures what came back and
whether any file in the work folder changed. (The service's hostile requests, a body nested
8000 deep, NaN, a request trickled a line a second, are kinds of tests/http_storm.py.)
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.support.warm_cli import WarmStarter, run_assistant

SPEECH = Path(__file__).resolve().parents[2] / "assistant" / "data" / "hello.wav"
MAX_LINES = 4
ABSENT = "absent-checkpoint"  # had the command got past its input, it would name this instead

KINDS = ("audio", "collision", "special file", "number")


@dataclass(frozen=True)
class HostileCase:
    name: str
    kind: str  # one of KINDS
    fault: str  # one line: what is wrong
    args: list[str]  # `assistant` arguments; {w} is the work folder
    culprit: str  # what the output must name: a path ({w} ...) or an option
    exit_code: int
    prepare: Callable[[Path], None] = lambda w: None
    env: dict[str, str] = field(default_factory=dict)  # values may hold {w}


# --- audio files -------------------------------------------------------------------------------


def wav(
    tag: int = 1,
    channels: int = 1,
    rate: int = 24000,
    bits: int = 16,
    data: bytes | None = None,
    *,
    align: int | None = None,
    length: int | None = None,
    fmt_size: int = 16,
    chunks: bytes = b"",
    fmt_first: bool = True,
) -> bytes:
    """A WAV file with any header values."""
    if data is None:
        data = (np.sin(np.arange(2400) / 7) * 8000).astype("<i2").tobytes()
    align = max(channels * bits // 8, 1) & 0xFFFF if align is None else align
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    fmt_chunk = b"fmt " + struct.pack("<I", fmt_size) + fmt[:fmt_size]
    data_chunk = b"data" + struct.pack("<I", len(data) if length is None else length) + data
    body = chunks + (fmt_chunk + data_chunk if fmt_first else data_chunk + fmt_chunk)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def float_wav(values: list[float]) -> bytes:
    return wav(3, 1, 24000, 32, np.asarray(values * 100, "<f4").tobytes())


def flac(rate: int, channels: int = 1, samples: int = 24000) -> bytes:
    info = (rate << 44) | ((channels - 1) << 41) | (15 << 36) | samples
    streaminfo = struct.pack(">HH", 4096, 4096) + bytes(6) + info.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + b"\x80" + (34).to_bytes(3, "big") + streaminfo + os.urandom(256)


def ogg(packet: bytes) -> bytes:
    return b"OggS\x00\x02" + bytes(20) + b"\x01" + bytes([len(packet)]) + packet


def _file(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    def make(w: Path) -> None:
        (w / name).write_bytes(data() if callable(data) else data)

    return make


def _long_wav(w: Path) -> None:
    """A header claiming 2 hours at 8 kHz, over a sparse file that holds them (no disk used)."""
    seconds = 7200
    head = wav(rate=8000, data=b"", length=seconds * 8000 * 2)
    with (w / "in.wav").open("wb") as f:
        f.write(head)
        f.truncate(len(head) + seconds * 8000 * 2)


def _fifo(name: str) -> Callable[[Path], None]:
    return lambda w: os.mkfifo(w / name)


def _link(name: str, target: str) -> Callable[[Path], None]:
    return lambda w: (w / name).symlink_to(target)


def _folder(name: str) -> Callable[[Path], None]:
    return lambda w: (w / name).mkdir()


def _speech(name: str = "in.wav") -> Callable[[Path], None]:
    return _file(name, SPEECH.read_bytes)


def _both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(w: Path) -> None:
        for step in steps:
            step(w)

    return make


def _chat(*extra: str) -> list[str]:
    return ["chat", "--checkpoint", f"{{w}}/{ABSENT}", "--no-dashboard", *extra]


IN = "{w}/in.wav"


def _audio(name: str, fault: str, data: bytes | Callable[[Path], None]) -> HostileCase:
    prepare = data if callable(data) else _file("in.wav", data)
    return HostileCase(name, "audio", fault, _chat("--input", IN), IN, 1, prepare)


def audio_cases() -> list[HostileCase]:
    nan, inf = float("nan"), float("inf")
    opus = b"OpusHead\x01\x02" + bytes(10)
    return [
        _audio("wav rate 0", "a WAV at 0 Hz (a panic in the native decoder)", wav(rate=0)),
        _audio("wav rate 1", "a WAV at 1 Hz (hours at 24 kHz: gigabytes)", wav(rate=1)),
        _audio("wav rate 4e9", "a WAV at 4,000,000,000 Hz", wav(rate=4_000_000_000, align=2)),
        _audio("wav 0 channels", "a WAV of 0 channels", wav(channels=0, align=2)),
        _audio("wav 65535 channels", "a WAV of 65,535 channels", wav(channels=65535, align=2)),
        _audio("wav 7 bits", "7 bits per sample", wav(bits=7, align=2)),
        _audio("wav 0 bits", "0 bits per sample", wav(bits=0, align=2)),
        _audio("wav float 16", "16-bit float", wav(tag=3, bits=16)),
        _audio("wav block size", "a block size that does not match", wav(align=7)),
        _audio("wav adpcm", "an ADPCM WAV", wav(tag=0x11, bits=4, align=256)),
        _audio("wav extensible", "an extensible fmt chunk cut short", wav(0xFFFE, fmt_size=18)),
        _audio("wav short fmt", "a fmt chunk of 8 bytes", wav(fmt_size=8)),
        _audio("wav data first", "the data before its format", wav(fmt_first=False)),
        _audio("wav no data", "no data chunk", wav()[:36]),
        _audio("wav cut", "a data chunk claiming more than the file", wav(length=10**9)),
        _audio("wav empty data", "a data chunk of 0 samples", wav(data=b"")),
        _audio(
            "wav many chunks", "1000 chunks before the data", wav(chunks=b"junk\0\0\0\0" * 1000)
        ),
        _audio("wav 2 hours", "2 hours of audio (the limit is 1)", _long_wav),
        _audio("wav nan", "float samples all NaN", float_wav([nan])),
        _audio("wav inf", "a float sample infinite", float_wav([0.1, inf, 0.0])),
        _audio("wav 1e30", "float samples of 1e30", float_wav([1e30, -1e30])),
        _audio("wav rifx", "a big-endian RIFX WAV", b"RIFX" + wav()[4:]),
        _audio("empty", "an empty file", b""),
        _audio("noise", "random bytes", os.urandom(4096)),
        _audio("text", "a text file", b"hello, this is not audio\n" * 20),
        _audio("flac rate 0", "a FLAC at 0 Hz", flac(0)),
        _audio("flac 1 hz", "a FLAC at 1 Hz", flac(1)),
        _audio("flac noise", "a FLAC header, then noise", flac(24000)),
        _audio("ogg opus", "Opus in Ogg (not read)", ogg(opus)),
        _audio(
            "ogg rate 0", "Ogg Vorbis at 0 Hz", ogg(b"\x01vorbis" + bytes(4) + b"\x01" + bytes(4))
        ),
        _audio(
            "mp3 noise", "an MP3 frame header, then noise", b"\xff\xfb\x90\x00" + os.urandom(4096)
        ),
        _audio(
            "id3 only",
            "an ID3 tag and nothing after",
            b"ID3\x03\x00\x00\x00\x00\x00\x10" + bytes(16),
        ),
        _audio("audio fifo", "the input is a named pipe", _fifo("in.wav")),
        _audio("audio /dev/zero", "the input links to /dev/zero", _link("in.wav", "/dev/zero")),
        _audio("audio folder", "the input is a folder", _folder("in.wav")),
        HostileCase(
            "bench rate 0",
            "audio",
            "bench --input: a WAV at 0 Hz",
            ["bench", "--checkpoint", f"{{w}}/{ABSENT}", "--input", IN],
            IN,
            1,
            _file("in.wav", wav(rate=0)),
        ),
        HostileCase(
            "bench nan",
            "audio",
            "bench --input: NaN samples",
            ["bench", "--checkpoint", f"{{w}}/{ABSENT}", "--input", IN],
            IN,
            1,
            _file("in.wav", float_wav([nan])),
        ),
        HostileCase(
            "demo 1 hz",
            "audio",
            "demo --input: a WAV at 1 Hz",
            ["demo", "--input", IN, "--no-dashboard"],
            IN,
            1,
            _file("in.wav", wav(rate=1)),
        ),
    ]


# --- paths that collide ------------------------------------------------------------------------


def _collision(name: str, fault: str, output: str, prepare: Callable[[Path], None]) -> HostileCase:
    return HostileCase(
        name,
        "collision",
        fault,
        _chat("--input", IN, "--output", output),
        "--output",
        2,
        _both(_speech(), prepare),
    )


def collision_cases() -> list[HostileCase]:
    def hard_link(w: Path) -> None:
        os.link(w / "in.wav", w / "hard.wav")

    return [
        _collision("same path", "--output is --input", IN, lambda w: None),
        _collision(
            "symlink", "--output links to --input", "{w}/link.wav", _link("link.wav", "in.wav")
        ),
        _collision("hard link", "--output is a hard link of --input", "{w}/hard.wav", hard_link),
        _collision(
            "relative", "--output reaches --input through ..", "{w}/sub/../in.wav", _folder("sub")
        ),
        _collision("double slash", "--output spelled //", "{w}//in.wav", lambda w: None),
    ]


# --- special files where a file is read --------------------------------------------------------

SETTINGS = "{w}/settings.json"


def _settings(name: str, fault: str, prepare: Callable[[Path], None]) -> HostileCase:
    """The settings file is read by every command: `info` of a missing checkpoint still
    ends (exit 1, naming the checkpoint), after one warning naming the settings file."""
    return HostileCase(
        name,
        "special file",
        fault,
        ["info", f"{{w}}/{ABSENT}"],
        SETTINGS,
        1,
        prepare,
        {"ASSISTANT_SETTINGS": SETTINGS},
    )


def special_cases() -> list[HostileCase]:
    def service_fifo(w: Path) -> None:
        (w / "home" / "service").mkdir(parents=True)
        os.mkfifo(w / "home" / "service" / "service.json")

    return [
        _settings(
            "settings fifo",
            "the settings file is a named pipe (it hung every command)",
            _fifo("settings.json"),
        ),
        _settings(
            "settings /dev/zero",
            "the settings file links to /dev/zero",
            _link("settings.json", "/dev/zero"),
        ),
        _settings(
            "settings /dev/urandom",
            "the settings file links to /dev/urandom",
            _link("settings.json", "/dev/urandom"),
        ),
        _settings("settings folder", "the settings file is a folder", _folder("settings.json")),
        _settings(
            "settings huge", "a settings file of 1 MB", _file("settings.json", b" " * (1 << 20))
        ),
        _settings(
            "settings deep", "settings nested 100,000 deep", _file("settings.json", b"[" * 100_000)
        ),
        _settings(
            "settings nan", "settings holding NaN", _file("settings.json", b'{"HF_HOME": NaN}')
        ),
        _settings(
            "settings binary",
            "a settings file of random bytes",
            _file("settings.json", os.urandom(512)),
        ),
        HostileCase(
            "service file fifo",
            "special file",
            "the service file is a named pipe",
            ["ctl", "status"],
            "{w}/home/service/service.json",
            1,
            service_fifo,
        ),
    ]


# --- numbers far out of range ------------------------------------------------------------------


def _number(command: list[str], option: str, value: str) -> HostileCase:
    name = f"{command[0]} {option} {value}"
    if command == ["chat"]:
        command = _chat()
    elif command in (["bench"], ["load"]):
        command = [*command, f"{{w}}/{ABSENT}"] if command == ["load"] else command
    return HostileCase(name, "number", f"{option} {value}", [*command, option, value], option, 2)


def number_cases() -> list[HostileCase]:
    big = "9" * 25
    return [
        _number(["chat"], "--seed", "-1"),
        _number(["chat"], "--seed", big),
        _number(["chat"], "--text-top-k", big),
        _number(["chat"], "--audio-top-k", "-5"),
        _number(["chat"], "--text-temperature", "nan"),
        _number(["chat"], "--audio-temperature", "1e308"),
        _number(["chat"], "--max-delay-ms", "1e308"),
        _number(["chat"], "--max-delay-ms", "-inf"),
        _number(["chat"], "--duration", "inf"),
        _number(["chat"], "--duration", "0"),
        _number(["bench"], "--steps", "0"),
        _number(["bench"], "--steps", big),
        _number(["bench"], "--warmup", "-1"),
        _number(["bench"], "--seed", "-1"),
        _number(["load"], "--steps", big),
        _number(["make-checkpoint", "{w}/made"], "--seed", "-1"),
        _number(["make-checkpoint", "{w}/made"], "--seed", big),
        _number(["latency"], "--every", "0"),
        _number(["latency"], "--every", "nan"),
        _number(["latency"], "--duration", "-1"),
        _number(["serve"], "--port", "99999"),
        _number(["serve"], "--port", "-1"),
        _number(["serve"], "--max-delay-ms", "nan"),
        _number(["ctl", "watch"], "--count", "0"),
        _number(["demo"], "--seed", "-1"),
    ]


def hostile_cases() -> list[HostileCase]:
    return [*audio_cases(), *collision_cases(), *special_cases(), *number_cases()]


# --- running a case as a user would ------------------------------------------------------------


@dataclass(frozen=True)
class HostileOutcome:
    case: str
    exit_code: int | None  # None: killed at the timeout
    seconds: float
    lines: list[str]
    named: bool
    changed: list[str]  # files of the work folder changed, added or removed

    @property
    def traceback(self) -> bool:
        return any("Traceback" in line for line in self.lines)

    @property
    def internal(self) -> bool:
        return any("internal error" in line for line in self.lines)

    def verdict(self, case: HostileCase) -> str:
        """ "ok", or what misses the target (the test asserts the same)."""
        misses = []
        if self.exit_code is None:
            misses.append("still running at the timeout")
        elif self.exit_code != case.exit_code:
            misses.append(f"exit {self.exit_code}, not {case.exit_code}")
        if self.traceback or self.internal:
            misses.append("a traceback" if self.traceback else "an internal error")
        if len(self.lines) > MAX_LINES:
            misses.append(f"{len(self.lines)} lines")
        if not self.named:
            misses.append("does not name it")
        if self.changed:
            misses.append(f"changed {len(self.changed)} file(s)")
        return "; ".join(misses) or "ok"


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (but the data folder `home`), without following links or
    opening special files: its type, and a regular file's size, time and content hash."""
    seen: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not (root == str(folder) and d == "home")]
        for name in dirs + files:
            path = Path(root) / name
            st = path.lstat()
            if path.is_symlink():
                seen[str(path)] = f"link {os.readlink(path)}"
            elif path.is_file():
                small = st.st_size <= 1 << 20
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if small else ""
                seen[str(path)] = f"file {st.st_size} {st.st_mtime_ns} {digest}"
            else:
                seen[str(path)] = f"mode {st.st_mode:o}"
    return seen


def run_hostile(
    case: HostileCase,
    work: Path,
    env: dict[str, str],
    timeout: float = 60.0,
    starter: WarmStarter | None = None,
) -> HostileOutcome:
    """Prepare `case` in `work` and run `python -m assistant ...` there (stdout and stderr
    together), as a user would: a fresh process, forked from `starter` if given."""
    (work / "home").mkdir(parents=True, exist_ok=True)
    case.prepare(work)
    before = snapshot(work)
    w = str(work)
    args = [a.replace("{w}", w) for a in case.args]
    env = (
        env
        | {"ASSISTANT_HOME": f"{w}/home"}
        | {k: v.replace("{w}", w) for k, v in case.env.items()}
    )
    code, out, seconds = run_assistant(starter, args, env=env, timeout=timeout, cwd=work)
    after = snapshot(work)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    lines = [line for line in out.splitlines() if line.strip()]
    culprit = case.culprit.replace("{w}", w)
    text = " ".join(" ".join(lines).split())  # a long path may be wrapped
    named = culprit in text or culprit.replace("//", "/") in text
    return HostileOutcome(case.name, code, seconds, lines, named, changed)
