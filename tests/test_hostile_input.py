"""The readers and writers behind the hostile-input corpus, in process: the audio reader reads
what users have exactly as the native decoder did, and refuses the rest naming the file; no
write lands on a file the process read; special files are never waited on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sphn

from assistant import files
from assistant.app_settings import load_settings, settings_problem
from assistant.audio.sound_files import read_audio, write_wav
from assistant.audio.wav_writer import StreamingWavWriter
from assistant.errors import AudioError, ServiceError
from assistant.files import replace_atomically, same_file
from assistant.service import info as service_info
from tests.support.hostile_corpus import float_wav, wav

SPEECH = Path(__file__).resolve().parents[1] / "assistant" / "data" / "hello.wav"
SOX = shutil.which("sox")


def _noise(n: int) -> bytes:
    """Bytes no format starts with (no 0xff: MP3's sync), the same in every process: xdist's
    workers must collect the same test ids."""
    return np.random.default_rng(0).integers(0, 255, n, dtype=np.uint8).tobytes()


def _sphn(path: Path) -> np.ndarray:
    data, _ = sphn.read(str(path), sample_rate=24000)
    return np.asarray(data, np.float32).mean(axis=0)


@pytest.mark.skipif(SOX is None, reason="needs sox")
@pytest.mark.parametrize(
    "sox_args",
    [
        ["-b", "16"],
        ["-r", "44100", "-c", "2", "-b", "24"],
        ["-r", "16000", "-b", "8"],
        ["-r", "48000", "-e", "floating-point", "-b", "64"],
        ["-r", "22050", "-c", "2", "-b", "32"],
        ["-e", "floating-point", "-b", "32"],
    ],
)
def test_wav_is_read_as_the_native_decoder_read_it(tmp_path: Path, sox_args: list[str]) -> None:
    """WAV is decoded here, not by sphn: the samples must be the same, bit for bit."""
    path = tmp_path / "speech.wav"
    assert SOX is not None
    subprocess.run([SOX, str(SPEECH), *sox_args, str(path)], check=True)
    np.testing.assert_array_equal(read_audio(path), _sphn(path))


@pytest.mark.skipif(SOX is None, reason="needs sox")
@pytest.mark.parametrize("suffix", ["flac", "ogg"])
def test_compressed_formats_still_decode(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"speech.{suffix}"
    assert SOX is not None
    subprocess.run([SOX, str(SPEECH), "-r", "44100", str(path)], check=True)
    pcm = read_audio(path)
    assert pcm.dtype == np.float32 and abs(len(pcm) - len(read_audio(SPEECH))) < 2400
    np.testing.assert_allclose(pcm, _sphn(path)[: len(pcm)], atol=1e-6)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (wav(rate=0), "sample rate 0 Hz is out of range (8,000..192,000)"),
        (wav(rate=1), "sample rate 1 Hz is out of range"),
        (wav(channels=0, align=2), "0 channels is out of range (1..8)"),
        (wav(bits=7, align=2), "7 bits per sample for PCM (one of 8, 16, 24, 32)"),
        (wav(align=7), "block size 7 does not match 1 channels of 16 bits"),
        (wav(tag=0x11, bits=4, align=256), "WAV encoding 0x0011 (only PCM and float are read)"),
        (wav(length=10**9), "the data chunk claims 1,000,000,000 bytes"),
        (wav(data=b""), "holds no samples"),
        (wav(chunks=b"junk\0\0\0\0" * 100), "more than 64 chunks before the audio data"),
        (float_wav([float("nan")]), "100 samples are NaN or infinite (the first at 0.000 s"),
        (float_wav([0.0, float("-inf")]), "100 samples are NaN or infinite (the first at 0.000 s"),
        (float_wav([1e30]), "samples reach 1e+30, far outside audio's [-1, 1]"),
        (b"OggS\x00" + bytes(21) + b"\x01\x13OpusHead" + bytes(11), "Ogg stream of Opus"),
        (_noise(64), "not a WAV, FLAC, Ogg Vorbis or MP3 file"),
    ],
)
def test_absurd_audio_is_refused_in_one_line_naming_the_input(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = tmp_path / "in.wav"
    path.write_bytes(data)
    with pytest.raises(AudioError) as e:
        read_audio(path)
    assert str(e.value).startswith(f"{path}: ") and reason in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_an_audio_file_over_the_size_bound_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.wav"
    with path.open("wb") as f:  # sparse: no disk used
        f.write(wav(data=b"", length=0xFFFFFFFF))
        f.truncate((1 << 30) + 1)
    with pytest.raises(AudioError, match="too large for an audio file"):
        read_audio(path)


def test_an_hour_is_the_longest_input(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    with path.open("wb") as f:
        f.write(wav(rate=8000, data=b"", length=3601 * 8000 * 2))
        f.truncate(44 + 3601 * 8000 * 2)
    with pytest.raises(AudioError, match="3,601 s of audio is too long"):
        read_audio(path)


# --- never writing over a file that was read ---------------------------------------------------


def test_no_write_lands_on_a_file_that_was_read_whatever_path_reaches_it(tmp_path: Path) -> None:
    source = tmp_path / "in.wav"
    shutil.copyfile(SPEECH, source)
    before = source.read_bytes()
    (tmp_path / "link.wav").symlink_to("in.wav")
    os.link(source, tmp_path / "hard.wav")
    read_audio(source)
    for target in ("in.wav", "link.wav", "hard.wav", "sub/../in.wav"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        path = tmp_path / target
        assert same_file(path, source)
        with pytest.raises(AudioError, match="a file this command reads"):
            write_wav(path, np.zeros(2400, np.float32))
        with pytest.raises(AudioError, match="a file this command reads"):
            StreamingWavWriter(path, replace=True)
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.wav", "in.wav", "link.wav", "sub"]


def test_an_output_is_replaced_only_whole(tmp_path: Path) -> None:
    """Written beside, renamed at the end: a failure leaves the old file as it was."""
    out = tmp_path / "answer.wav"
    out.write_bytes(b"the old answer")

    def fail(partial: Path) -> None:
        partial.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        replace_atomically(out, fail)
    assert out.read_bytes() == b"the old answer" and os.listdir(tmp_path) == ["answer.wav"]

    writer = StreamingWavWriter(out, replace=True, flush_every_s=None)
    writer.write(np.full(2400, 0.5, np.float32))
    writer.flush()
    assert out.read_bytes() == b"the old answer"  # not yet: still beside it
    writer.close()
    assert read_audio(out).shape == (2400,) and os.listdir(tmp_path) == ["answer.wav"]


# --- special files where a file is read --------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "huge", "deep"])
def test_a_settings_file_that_cannot_be_used_is_ignored_at_once(
    isolated_settings: Path, kind: str
) -> None:
    if kind == "fifo":
        os.mkfifo(isolated_settings)
    elif kind == "device":
        isolated_settings.symlink_to("/dev/zero")
    elif kind == "folder":
        isolated_settings.mkdir()
    elif kind == "huge":
        isolated_settings.write_bytes(b" " * (1 << 20))
    else:
        isolated_settings.write_bytes(b"[" * 50_000)
    assert load_settings() == {}  # (a FIFO would hang here: opened non-blocking, refused)
    problem = settings_problem()
    assert problem is not None and problem.startswith(str(isolated_settings))


def test_a_service_file_that_is_a_fifo_is_named_not_waited_on(tmp_path: Path) -> None:
    path = service_info.info_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    with pytest.raises(ServiceError, match="named pipe"):
        service_info.read_info()


def test_every_file_opened_by_name_is_remembered(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"x")
    assert not files.was_read(path)
    files.read_regular(path, 10)
    assert files.was_read(path)
    path.write_bytes(b"changed: another file now")  # (what identifies it changed)
    assert not files.was_read(path)
