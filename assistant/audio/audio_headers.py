"""What an audio file says it holds, read from its header in Python, before any decoder runs.

The native decoders (symphonia, inside sphn) panic on some values a header can carry (a
sample rate of 0) and believe others (a rate of 1 Hz turns one second of data into hours at
24 kHz, gigabytes of memory). So each format the assistant reads is recognised by its magic
bytes and its header checked here against what any real recording could be: WAV (PCM or
float: decoded here too, no native code at all), FLAC (STREAMINFO), Ogg Vorbis (its
identification header and last page) and MP3 (the first frame header). Anything else is
refused by name. Every problem is a `ValueError` with a short reason; `sound_files` turns it
into one line naming the file.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

ReadAt = Callable[[int, int], bytes]  # (offset, length) -> at most that many bytes from there

# What any recording a user could mean lies within. One home for each bound.
MIN_RATE, MAX_RATE = 8_000, 192_000  # Hz
MAX_CHANNELS = 8
MAX_SECONDS = 3600.0  # an hour of input: 345 MB of samples at 24 kHz
MAX_WAV_CHUNKS = 64  # chunks before the audio data (fmt, LIST, fact ...): a few in practice
MP3_SCAN_BYTES = 64 * 1024  # where the first MP3 frame must start (after any ID3 tag)
OGG_TAIL_BYTES = 64 * 1024  # where the last Ogg page header is looked for

WAV_PCM, WAV_FLOAT, WAV_EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
WAV_BITS = {WAV_PCM: (8, 16, 24, 32), WAV_FLOAT: (32, 64)}


@dataclass(frozen=True)
class AudioHeader:
    """A header's claims, checked: the container, the rate, the channels and the length."""

    kind: str  # "WAV", "FLAC", "Ogg Vorbis", "MP3"
    sample_rate: int
    channels: int
    frames: int | None  # None: the format does not say before decoding (MP3)
    # WAV only: where the samples are and how they are stored.
    data_offset: int = 0
    format_tag: int = 0
    bits: int = 0

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate


def check_stream(rate: int, channels: int, frames: int | None) -> None:
    """The bounds every format shares; ValueError naming the first value out of them."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"sample rate {rate:,} Hz is out of range ({MIN_RATE:,}..{MAX_RATE:,})")
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{channels} channels is out of range (1..{MAX_CHANNELS})")
    if frames is not None:
        if frames <= 0:
            raise ValueError("holds no samples")
        if frames / rate > MAX_SECONDS:
            raise ValueError(
                f"{frames / rate:,.0f} s of audio is too long (at most {MAX_SECONDS:,.0f} s)"
            )


def parse_header(read_at: ReadAt, size: int) -> AudioHeader:
    """The header of a file of `size` bytes, read through `read_at`."""
    head = read_at(0, 64)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return parse_wav(read_at, size)
    if head[:4] in (b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        raise ValueError(f"a {head[:4].decode()} WAV (only little-endian RIFF WAV is read)")
    if head[:4] == b"fLaC":
        return parse_flac(head)
    if head[:4] == b"OggS":
        tail_at = max(0, size - OGG_TAIL_BYTES)
        return parse_ogg(read_at(0, OGG_TAIL_BYTES), read_at(tail_at, OGG_TAIL_BYTES))
    if head[:3] == b"ID3" or _mp3_frame_at(head, 0) is not None:
        return parse_mp3(read_at, head)
    raise ValueError("not a WAV, FLAC, Ogg Vorbis or MP3 file")


# --- WAV -----------------------------------------------------------------------------------------


def parse_wav(read_at: ReadAt, size: int) -> AudioHeader:
    """RIFF chunks up to `data`."""
    pos, fmt = 12, None
    for _ in range(MAX_WAV_CHUNKS):
        head = read_at(pos, 8)
        if len(head) < 8:
            raise ValueError("no audio data chunk")
        chunk, length = head[:4], struct.unpack_from("<I", head, 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            fmt = _wav_format(read_at(body, min(length, 64)), length)
        elif chunk == b"data":
            if fmt is None:
                raise ValueError("the audio data comes before its format (no fmt chunk)")
            tag, channels, rate, bits = fmt
            block = channels * bits // 8
            available = size - body
            if length > available and length not in (0, 0xFFFFFFFF):
                raise ValueError(
                    f"the data chunk claims {length:,} bytes but only {available:,} follow "
                    "(a cut file)"
                )
            if length in (0, 0xFFFFFFFF):  # written by a recorder that never finished it
                length = available
            frames = length // block
            check_stream(rate, channels, frames)
            return AudioHeader("WAV", rate, channels, frames, body, tag, bits)
        pos = body + length + (length & 1)  # chunks are padded to an even size
    raise ValueError(f"more than {MAX_WAV_CHUNKS} chunks before the audio data")


def _wav_format(fmt: bytes, length: int) -> tuple[int, int, int, int]:
    """(format tag, channels, rate, bits) from a fmt chunk, each checked."""
    if length < 16 or len(fmt) < 16:
        raise ValueError(f"fmt chunk of {length} bytes (at least 16)")
    tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == WAV_EXTENSIBLE:
        if len(fmt) < 26:
            raise ValueError("an extensible fmt chunk without its sub-format")
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if tag not in WAV_BITS:
        raise ValueError(f"WAV encoding 0x{tag:04x} (only PCM and float are read)")
    if bits not in WAV_BITS[tag]:
        kind = "PCM" if tag == WAV_PCM else "float"
        allowed = ", ".join(map(str, WAV_BITS[tag]))
        raise ValueError(f"{bits} bits per sample for {kind} (one of {allowed})")
    check_stream(rate, channels, None)
    if align != channels * bits // 8:
        raise ValueError(
            f"block size {align} does not match {channels} channels of {bits} bits "
            f"({channels * bits // 8})"
        )
    return tag, channels, rate, bits


# --- FLAC ----------------------------------------------------------------------------------------


def parse_flac(head: bytes) -> AudioHeader:
    if len(head) < 42 or head[4] & 0x7F != 0 or int.from_bytes(head[5:8], "big") != 34:
        raise ValueError("a FLAC file without its STREAMINFO block")
    info = int.from_bytes(head[18:26], "big")  # rate 20 bits, channels 3, bits 5, samples 36
    rate, channels, total = info >> 44, ((info >> 41) & 0x7) + 1, info & ((1 << 36) - 1)
    check_stream(rate, channels, total or None)  # 0 samples: "unknown" in FLAC
    return AudioHeader("FLAC", rate, channels, total or None)


# --- Ogg Vorbis ----------------------------------------------------------------------------------


def parse_ogg(head: bytes, tail: bytes) -> AudioHeader:
    if len(head) < 27 or head[4] != 0:
        raise ValueError("an Ogg page of an unknown version")
    segments = head[26]
    packet = head[27 + segments :]
    if packet[:7] != b"\x01vorbis" or len(packet) < 16:
        what = "Opus" if packet[:8] == b"OpusHead" else "an unknown codec"
        raise ValueError(f"an Ogg stream of {what} (only Ogg Vorbis is read)")
    channels, rate = packet[11], struct.unpack_from("<I", packet, 12)[0]
    check_stream(rate, channels, None)
    frames = None
    last = tail.rfind(b"OggS")
    if last >= 0 and last + 14 <= len(tail):
        granule = struct.unpack_from("<q", tail, last + 6)[0]
        frames = granule if granule > 0 else None
    check_stream(rate, channels, frames)
    return AudioHeader("Ogg Vorbis", rate, channels, frames)


# --- MP3 -----------------------------------------------------------------------------------------

_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame_at(data: bytes, pos: int) -> tuple[int, int] | None:
    """(rate, channels) if a valid MPEG audio frame header starts at `pos`."""
    if pos + 4 > len(data):
        return None
    h = int.from_bytes(data[pos : pos + 4], "big")
    version, layer = (h >> 19) & 3, (h >> 17) & 3
    bitrate, rate_index, mode = (h >> 12) & 0xF, (h >> 10) & 3, (h >> 6) & 3
    if h >> 21 != 0x7FF or version == 1 or layer == 0 or bitrate in (0, 15) or rate_index == 3:
        return None
    return _MP3_RATES[version][rate_index], 1 if mode == 3 else 2


def parse_mp3(read_at: ReadAt, head: bytes) -> AudioHeader:
    start = 0
    if head[:3] == b"ID3" and len(head) >= 10:
        size = head[6:10]
        if any(b & 0x80 for b in size):
            raise ValueError("an ID3 tag of a malformed size")
        start = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(size))
    data = read_at(start, MP3_SCAN_BYTES)
    for pos in range(len(data) - 3):
        found = _mp3_frame_at(data, pos)
        if found is not None:
            rate, channels = found
            check_stream(rate, channels, None)
            return AudioHeader("MP3", rate, channels, None)
    raise ValueError("no MP3 frame where the audio should start")
