"""A WAV file written as audio arrives, valid on disk after every flush.

The RIFF and data sizes in the header are patched at each flush, so a crash or a kill loses at
most what came since the last flush (the operating system keeps what was written even if the
process dies; `fsync=True` also survives a power cut, at a cost per flush). Writes are
unbuffered and the header is patched only once the data is written; a write that fails (a
full disk) is cut back to the last flush, so the header always matches the data.

`replace=True` (a file the user names, `chat --output`) writes beside the target and renames
it over the target at `close`: a file that was there stays whole until then (or for good, if
the writing fails), and a file this process read is never the target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np

from ..errors import AudioError
from ..files import partial_path, was_read
from ..frames import SAMPLE_RATE

_HEADER_BYTES = 44
_MAX_DATA = 0xFFFFFFFF - 36  # RIFF sizes are 32-bit


def _header(sample_rate: int, data_bytes: int) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] to int16, clipping overs and zeroing NaNs."""
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1), nan=0.0)
    return np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")


def _write_all(f: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = f.write(view)
        if not written:  # an unbuffered file that takes nothing: as good as full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def _patch_sizes(f: BinaryIO, data_bytes: int) -> None:
    f.seek(4)
    _write_all(f, struct.pack("<I", 36 + data_bytes))
    f.seek(40)
    _write_all(f, struct.pack("<I", data_bytes))


class StreamingWavWriter:
    """Mono 16-bit PCM WAV. `write` buffers in memory; `flush` (automatic every
    `flush_every_s` seconds of audio, None = only when asked) puts it on disk with a valid
    header. After an OSError (disk full...) it raises one AudioError naming the file, then
    ignores further writes (`failed` is True) so the caller can keep running."""

    def __init__(
        self,
        path: str | Path,
        sample_rate: int = SAMPLE_RATE,
        *,
        flush_every_s: float | None = 1.0,
        fsync: bool = False,
        replace: bool = False,
    ) -> None:
        self.path = Path(path)
        if replace and was_read(self.path):
            raise AudioError(
                "is a file this command reads; writing there would destroy it (choose another)",
                path=self.path,
            )
        # Where the samples go until `close` renames them into place (replace=True).
        self._partial = partial_path(self.path) if replace else None
        self.sample_rate = sample_rate
        self.fsync = fsync
        self._flush_every = None if flush_every_s is None else int(flush_every_s * sample_rate)
        self._pending: list[bytes] = []
        self._pending_samples = 0
        self._data_bytes = 0
        self.failed = False
        self.closed = False
        self._file: BinaryIO | None = None
        try:
            # Unbuffered: nothing is left in a buffer to be written after a failure.
            target = self._partial or self.path
            self._file = cast(BinaryIO, open(target, "wb", buffering=0))  # noqa: SIM115
            _write_all(self._file, _header(sample_rate, 0))
        except OSError as e:
            self._fail(e)

    @property
    def samples_written(self) -> int:
        """Samples accepted so far (on disk or waiting for the next flush)."""
        return self._data_bytes // 2 + self._pending_samples

    @property
    def duration_s(self) -> float:
        return self.samples_written / self.sample_rate

    def write(self, samples: np.ndarray) -> None:
        if self.failed or self.closed:
            return
        pcm = to_pcm16(samples)
        self._pending.append(pcm.tobytes())
        self._pending_samples += len(pcm)
        if self._flush_every is not None and self._pending_samples >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered and patch the header: the file is a valid WAV after this."""
        if self.failed or self._file is None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_samples = 0
        room = _MAX_DATA - self._data_bytes
        data = data[: max(0, room - room % 2)]
        f = self._file
        size = self._data_bytes + len(data)
        try:
            if data:
                f.seek(_HEADER_BYTES + self._data_bytes)
                _write_all(f, data)
            _patch_sizes(f, size)
            if self.fsync:
                os.fsync(f.fileno())
        except OSError as e:
            # Back to the last flush: its data, and a header that says so.
            with contextlib.suppress(OSError):
                os.ftruncate(f.fileno(), _HEADER_BYTES + self._data_bytes)
                _patch_sizes(f, self._data_bytes)
            self._fail(e)
        self._data_bytes = size

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
        if self._partial is not None and not self.failed:
            try:
                os.replace(self._partial, self.path)
            except OSError as e:
                self._discard_partial()
                raise AudioError(
                    f"cannot write the recording ({e.strerror or e})", path=self.path
                ) from None

    def _fail(self, e: OSError) -> None:
        self.failed = True
        self._pending.clear()
        self._pending_samples = 0
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self._discard_partial()  # the file that was there, if any, stays whole
        reason = e.strerror or str(e)
        raise AudioError(f"cannot write the recording ({reason})", path=self.path) from None

    def _discard_partial(self) -> None:
        if self._partial is not None:
            with contextlib.suppress(OSError):
                self._partial.unlink()

    def __enter__(self) -> StreamingWavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
