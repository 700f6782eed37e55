"""A fuzzer that keeps looking: property-based tests of every reader of hostile input.

Each property says what a reader may do with anything at all: return something sane, or
refuse with its own one-line error; never another exception, a hang or a crash. The readers:
the audio reader (any WAV header, any bytes behind any magic), the safetensors header reader,
the strict JSON reader, the settings file and the service's request bodies.

In the suite each property runs a fixed, derandomized set of examples (`FUZZ_EXAMPLES`,
default 100: seconds in all). `bash scripts/fuzz.sh` runs them for longer, randomly, keeping
what it finds in `.hypothesis/`. Every failure found is kept below as an `@example` (and
in tests/test_hostile_input.py as a plain test), so it is checked on every run.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant.app_settings import VARIABLES, load_settings
from assistant.audio.audio_headers import MAX_SECONDS
from assistant.audio.sound_files import MAX_SAMPLE, read_audio
from assistant.checkpoint.layout import DTYPE_BYTES
from assistant.checkpoint.safetensors_reader import read_header
from assistant.errors import AssistantError, AudioError, CheckpointError
from assistant.frames import SAMPLE_RATE
from assistant.service.connections import Limits
from assistant.service.http_policy import parse_body
from assistant.strict_json import load_strict, nesting_depth

LONG = os.environ.get("FUZZ_LONG") == "1"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000" if LONG else "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a loaded CI machine is slow; a hang is caught by the test's timeout
    derandomize=not LONG,  # the suite sees the same examples every run
    database=None if not LONG else settings.default.database,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # the settings file: rewritten by each example
    ],
    print_blob=True,
)


@contextmanager
def file_with(data: bytes, suffix: str = "") -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        yield path


# --- the audio reader ------------------------------------------------------------------------


def wav_bytes(
    tag: int, channels: int, rate: int, bits: int, align: int, length: int, data: bytes
) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", length) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _sane_audio(pcm: np.ndarray) -> None:
    assert pcm.dtype == np.float32 and pcm.ndim == 1 and pcm.size > 0
    assert np.isfinite(pcm).all() and float(np.abs(pcm).max()) <= MAX_SAMPLE
    assert pcm.size <= MAX_SECONDS * SAMPLE_RATE * 1.01


u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)


@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    """WAV files whose every header field may be anything, near-valid most of the time."""
    tag = draw(st.sampled_from([1, 3, 0xFFFE]) | u16)
    channels = draw(st.integers(1, 3) | u16)
    rate = draw(st.sampled_from([8000, 16000, 24000, 44100]) | u32)
    bits = draw(st.sampled_from([8, 16, 24, 32, 64]) | u16)
    align = draw(st.just(max(1, channels * bits // 8) & 0xFFFF) | u16)
    data = draw(st.binary(max_size=3000))
    length = draw(st.just(len(data)) | st.sampled_from([0, 0xFFFFFFFF]) | u32)
    return wav_bytes(tag, channels, rate, bits, align, length, data)


@FUZZ
@given(wav_files())
@example(wav_bytes(1, 1, 0, 16, 2, 4, bytes(4)))  # rate 0: a panic inside the native decoder
@example(wav_bytes(1, 1, 1, 16, 2, 48000, bytes(48000)))  # 1 Hz: hours at 24 kHz
@example(wav_bytes(3, 1, 24000, 32, 4, 8, struct.pack("<2f", math.nan, 0)))  # NaN samples
def test_the_audio_reader_takes_any_wav_header(data: bytes) -> None:
    with file_with(data, ".wav") as path:
        try:
            pcm = read_audio(path)
        except AudioError as e:
            assert str(path) in str(e) and "\n" not in str(e)
            return
    _sane_audio(pcm)


MAGIC = [b"RIFF\x24\x00\x00\x00WAVE", b"fLaC", b"OggS\x00", b"ID3\x03\x00\x00", b"\xff\xfb\x90"]


@FUZZ
@given(st.sampled_from([*MAGIC, b""]), st.binary(max_size=2000))
def test_the_audio_reader_takes_any_bytes_behind_any_magic(magic: bytes, rest: bytes) -> None:
    with file_with(magic + rest) as path:
        try:
            pcm = read_audio(path)
        except AudioError as e:
            assert str(path) in str(e) and "\n" not in str(e)
            return
    _sane_audio(pcm)


# --- the safetensors header reader ---------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text()


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    """A header of tensors with any dtype, shape and offsets (often right), any data after."""
    entries: dict[str, Any] = {}
    offset = 0
    for i in range(draw(st.integers(0, 5))):
        dtype = draw(st.sampled_from(sorted(DTYPE_BYTES)) | st.text(max_size=4))
        shape = draw(
            st.lists(st.integers(0, 6) | st.integers(-3, 2**40) | json_scalars, max_size=3)
        )
        numel = math.prod(d for d in shape if isinstance(d, int) and not isinstance(d, bool))
        size = numel * DTYPE_BYTES.get(dtype, 1) if 0 <= numel < 10_000 else 8
        begin = draw(st.just(offset) | st.integers(-5, 2**64))
        end = draw(st.just(offset + size) | st.integers(-5, 2**64))
        entries[draw(st.text(max_size=6)) + str(i)] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": draw(st.just([begin, end]) | st.lists(json_scalars, max_size=3)),
        }
        offset += size
    if draw(st.booleans()):
        entries["__metadata__"] = draw(
            st.dictionaries(st.text(max_size=4), json_scalars) | json_scalars
        )
    header = json.dumps(entries).encode()
    header = draw(st.just(header) | st.binary(max_size=200))
    length = draw(st.just(len(header)) | st.integers(0, 2**64 - 1))
    data = draw(st.just(bytes(offset)) | st.binary(max_size=100))
    return struct.pack("<Q", length) + header + data


@FUZZ
@given(safetensors_files())
# A newline in a tensor name was echoed into the message: the file wrote its own lines.
@example(
    (lambda h: struct.pack("<Q", len(h)) + h + bytes(2))(
        b'{"\\n0": {"dtype": "BF16", "shape": [null], "data_offsets": [0, 2]}}'
    )
)
def test_the_safetensors_header_reader_takes_any_header(data: bytes) -> None:
    with file_with(data, ".safetensors") as path:
        try:
            header = read_header(path)
        except CheckpointError as e:
            assert str(path) in str(e) and "\n" not in str(e)
            return
    # What it accepts covers the data exactly, in order, with no gap.
    spans = sorted((t.begin, t.end) for t in header.tensors.values())
    assert sum(end - begin for begin, end in spans) == header.file_size - 8 - header.header_size
    for t in header.tensors.values():
        assert t.nbytes == t.numel * DTYPE_BYTES[t.dtype]


# --- the strict JSON reader ----------------------------------------------------------------------

# Strings full of what trips a bracket counter: quotes, backslashes, brackets.
tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\ a\u00e9\n')), max_size=12) | st.text()
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


@FUZZ
@given(json_values, st.integers(1, 8))
@example('\\"[', 1)  # an escaped quote then a bracket, inside a string
def test_strict_json_reads_every_valid_document_within_its_depth(value: Any, limit: int) -> None:
    raw = json.dumps(value).encode()
    assert nesting_depth(raw) == depth_of(value)
    if depth_of(value) > limit:
        with pytest.raises(AssistantError, match="nested"):
            load_strict(raw, max_depth=limit, error=AssistantError, path="x")
    else:
        assert load_strict(raw, max_depth=limit, error=AssistantError, path="x") == value


@FUZZ
@given(
    st.binary(max_size=300)
    | st.text(
        alphabet=st.sampled_from(list('[]{}"\\:,0123456789.eE-+ntruefalsNI')), max_size=300
    ).map(str.encode)
)
@example(b"[" * 100_000)
@example(b"9" * 5000)
@example(b'{"a": 1, "a": 2}')
@example(b"[NaN, Infinity, 1e999]")
def test_strict_json_refuses_anything_else_in_one_line(raw: bytes) -> None:
    try:
        value = load_strict(raw, max_depth=8, error=AssistantError, path="x")
    except AssistantError as e:
        assert "\n" not in str(e) and str(e).startswith("x: invalid JSON")
        return
    assert depth_of(value) <= 8
    assert json.loads(json.dumps(value, allow_nan=False)) == value  # finite, plain JSON


# --- the settings file ---------------------------------------------------------------------------


@FUZZ
@given(
    data=st.binary(max_size=200)
    | st.dictionaries(st.sampled_from([*VARIABLES, "EVIL"]), json_scalars | json_values).map(
        lambda d: json.dumps(d).encode()
    )
)
def test_the_settings_file_never_stops_a_command(data: bytes, isolated_settings: Path) -> None:
    isolated_settings.write_bytes(data)
    loaded = load_settings()
    assert set(loaded) <= set(VARIABLES)
    assert all(isinstance(v, str) and v for v in loaded.values())


# --- the service's request bodies ----------------------------------------------------------------

ALLOWED = {"voice", "quant", "checkpoint"}


@FUZZ
@given(
    st.binary(max_size=300)
    | st.dictionaries(st.sampled_from([*ALLOWED, "muted", "x"]), json_values).map(
        lambda d: json.dumps(d).encode()
    )
)
@example(b"[" * 8000 + b"]" * 8000)  # was a RecursionError: answered 500
@example(b'{"voice": NaN}')
def test_a_request_body_is_an_object_of_known_fields_or_a_400(raw: bytes) -> None:
    try:
        body = parse_body(raw, ALLOWED, Limits())
    except web.HTTPBadRequest as e:
        assert e.text and "\n" not in e.text
        return
    assert isinstance(body, dict) and set(body) <= ALLOWED
    assert depth_of(body) <= Limits().max_json_depth
