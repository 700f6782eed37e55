"""The streaming Mimi codec of the live loop: encode the user's frames, decode Moshi's.

We call rustymimi's synchronous `Tokenizer` from our own threads, never its `StreamTokenizer`:
the latter prints errors from its Rust threads and drops the frame, so a poller waits forever.
Here every rustymimi failure becomes a `CodecError` naming the Mimi file and the operation.

Each side (encoder, decoder) owns its own `Tokenizer`s, so the loop may call `encode` from one
thread and `decode` from another (one instance used from two threads at once raises
`RuntimeError: Already borrowed`). Each side must be called from a single thread.

rustymimi 0.4.1 has a hard limit: its RoPE table holds 8192 transformer steps at 25 Hz, so the
call for frame 4096 (327.68 s) of an instance raises `ValueError: narrow invalid args`, and
every later call too. `reset()` clears the streaming buffers but not the position counter, so it
does not help. Hence roll-over: before the limit, a replacement instance is built in the
background, fed the last `warmup_frames` inputs alongside the old one (on a helper thread, in
parallel), then takes over. The decoder crossfades old and new outputs over `fade_frames`.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint.mimi_layout import MIMI_CODEBOOK_SIZE
from ..errors import CodecError
from ..files import require_regular
from ..frames import FRAME_SAMPLES

FRAME_LIMIT = 4096  # frames one rustymimi 0.4.1 instance can stream (max_seq_len 8192 at 25 Hz)

MAX_CODEBOOKS = 32  # the published Mimi has 32; rustymimi panics on 0


@dataclass
class SideStats:
    """Counters of one side (encode or decode); times in seconds, per call to the side."""

    frames: int = 0
    rollovers: int = 0
    last_s: float = 0.0
    total_s: float = 0.0
    max_s: float = 0.0
    last_switch_s: float = 0.0  # the call that switched to a replacement instance
    last_build_s: float = 0.0  # creating the latest replacement (background thread)

    @property
    def mean_s(self) -> float:
        return self.total_s / self.frames if self.frames else 0.0


@dataclass(frozen=True)
class CodecStats:
    encode: SideStats
    decode: SideStats


def _first_line(e: BaseException) -> str:
    # RUST_BACKTRACE=1 appends a long candle backtrace to the message: keep the headline.
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _is_rust_error(e: BaseException) -> bool:
    # A Rust panic arrives as pyo3's PanicException, a BaseException: catch it, not Ctrl-C.
    return isinstance(e, Exception) or type(e).__name__ == "PanicException"


def open_tokenizer(mimi_path: Path, codebooks: int, frame_limit: int = FRAME_LIMIT) -> Any:
    """A fresh rustymimi Tokenizer, or CodecError naming the file."""
    import rustymimi

    if not 1 <= codebooks <= MAX_CODEBOOKS:
        raise CodecError(f"codebooks must be 1..{MAX_CODEBOOKS}, not {codebooks}", path=mimi_path)
    require_regular(mimi_path, CodecError, what="Mimi codec file")  # rustymimi opens it itself
    # rustymimi counts transformer steps at 25 Hz: two per 80 ms frame.
    max_seq_len = None if frame_limit == FRAME_LIMIT else 2 * frame_limit
    try:
        return rustymimi.Tokenizer(str(mimi_path), num_codebooks=codebooks, max_seq_len=max_seq_len)
    except BaseException as e:
        if not _is_rust_error(e):
            raise
        raise CodecError(
            f"rustymimi cannot load this Mimi file ({_first_line(e)})", path=mimi_path
        ) from None


class _Side:
    """One direction of the codec with its roll-over schedule. Not thread-safe by design:
    one caller thread, plus one helper thread for builds and for the spare instance's steps."""

    op = ""

    def __init__(self, codec: StreamingCodec, first: Any) -> None:
        self.c = codec
        self.stats = SideStats()
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mimi-{self.op}")
        self._cur = first
        self._steps = 0  # calls made on self._cur, warm-up included: it dies at frame_limit
        self._build: cf.Future | None = None
        self._next: Any = None  # the replacement, being warmed up
        self._next_steps = 0
        self._old: Any = None  # the replaced decoder, still running during the crossfade
        self._fade_done = 0
        c = codec
        self._shadow_from = c.rollover_after - c.warmup_frames
        self._build_from = max(0, self._shadow_from - c.lead_frames)
        # The last moment to start warming up a replacement and still switch (and fade) in time.
        self._deadline = c.frame_limit - 1 - c.fade_frames - c.warmup_frames

    # -- the rustymimi call, wrapped ------------------------------------------------------------
    def _raw(self, tok: Any, x: np.ndarray) -> Any:
        raise NotImplementedError

    def _call(self, tok: Any, x: np.ndarray) -> Any:
        try:
            return self._raw(tok, x)
        except BaseException as e:
            if not _is_rust_error(e):
                raise
            raise CodecError(
                f"Mimi {self.op} failed ({_first_line(e)})", path=self.c.path
            ) from None

    def _build_replacement(self) -> Any:
        t0 = time.perf_counter()
        tok = open_tokenizer(self.c.path, self.c.codebooks, self.c.frame_limit)
        self.stats.last_build_s = time.perf_counter() - t0
        return tok

    def _collect(self, timeout: float | None) -> None:
        fut, self._build = self._build, None
        assert fut is not None
        try:
            self._next = fut.result(timeout=timeout)
        except cf.TimeoutError:
            self._build = fut  # still running: keep it, but don't block past the timeout
            raise CodecError(
                f"Mimi {self.op}: no replacement instance after {timeout:g} s, "
                f"{self.c.frame_limit - self._steps} frames before rustymimi's limit",
                path=self.c.path,
            ) from None
        except CodecError as e:
            raise CodecError(
                f"Mimi {self.op}: replacement failed: {e.message}", path=self.c.path
            ) from None
        except Exception as e:
            raise CodecError(
                f"Mimi {self.op}: replacement failed ({_first_line(e)})", path=self.c.path
            ) from None
        self._next_steps = 0

    def _schedule(self) -> bool:
        """Advance the roll-over state before a call; True when this call switches."""
        if self._build is not None and self._build.done():
            self._collect(timeout=None)  # a failed build surfaces here, on the next call
        idle = self._next is None and self._build is None and self._old is None
        if idle and self._steps >= self._build_from:
            self._build = self._pool.submit(self._build_replacement)
        if self._next is None and self._steps >= self._deadline:
            if self._build is None:
                self._build = self._pool.submit(self._build_replacement)
            self._collect(timeout=self.c.replace_timeout_s)
        ready = self._next is not None and self._next_steps >= self.c.warmup_frames
        if ready and self._steps >= self.c.rollover_after:
            self._old, self._cur, self._next = self._cur, self._next, None
            self._steps, self._fade_done = self._next_steps, 0
            self.stats.rollovers += 1
            if self.c.fade_frames == 0 or self.op == "encode":
                self._old = None  # codes are discrete: nothing to crossfade
            return True
        return False

    def process(self, x: np.ndarray) -> Any:
        """Run one frame through the current instance (and the spare one, if any)."""
        if self.c.closed:
            raise CodecError(f"Mimi {self.op} after close()", path=self.c.path)
        t0 = time.perf_counter()
        switched = self._schedule()
        warming = self._next is not None and self._steps >= self._shadow_from
        aux = self._next if warming else self._old
        # The spare runs on the helper thread while the caller runs the current one: rustymimi
        # releases the GIL and one call uses one core, so this costs little wall time.
        fut = self._pool.submit(self._call, aux, x) if aux is not None else None
        aux_out, aux_error = None, None
        try:
            out = self._call(self._cur, x)
        finally:
            if fut is not None:  # always wait: the spare must never run twice at once
                try:
                    aux_out = fut.result()
                except CodecError as e:
                    aux_error = e
        self._steps += 1
        if aux_error is not None:
            # The spare is unusable: drop it (a new one gets built) and say so now.
            self._next = self._old = None
            raise CodecError(f"{aux_error.message} in the spare instance", path=self.c.path)
        if warming:
            self._next_steps += 1  # warm-up output is discarded
        elif aux is not None:
            out = self._combine(out, aux_out, self._fade_done)
            self._fade_done += 1
            if self._fade_done >= self.c.fade_frames:
                self._old = None
        dt = time.perf_counter() - t0
        s = self.stats
        s.frames += 1
        s.last_s, s.total_s, s.max_s = dt, s.total_s + dt, max(s.max_s, dt)
        if switched:
            s.last_switch_s = dt
        return out

    def _combine(self, new: Any, old: Any, fade_index: int) -> Any:
        return new

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._cur = self._next = self._old = self._build = None


class _Encoder(_Side):
    op = "encode"

    def _raw(self, tok: Any, x: np.ndarray) -> Any:
        return tok.encode_step(x)


class _Decoder(_Side):
    op = "decode"

    def _raw(self, tok: Any, x: np.ndarray) -> Any:
        return tok.decode_step(x)

    def _combine(self, new: Any, old: Any, fade_index: int) -> Any:
        if new is None or old is None:
            return new
        # Old and new renderings of the same codes are ~99% correlated after warm-up, so a
        # linear fade keeps the level; an equal-power one would bulge by up to 3 dB.
        n = self.c.fade_frames * FRAME_SAMPLES
        w = (np.arange(FRAME_SAMPLES, dtype=np.float32) + 1 + fade_index * FRAME_SAMPLES) / n
        return (1.0 - w) * old + w * new


class StreamingCodec:
    """Mimi for the live loop: `encode` (one thread) and `decode` (another), with roll-over.

    rollover_after: frames an instance serves before its replacement takes over (< frame_limit).
    frame_limit: frames a rustymimi instance can stream; 4096 is rustymimi's own. Other values
        set its `max_seq_len` (about 0.5 KB of RoPE table per frame): tests use small ones.
    warmup_frames: inputs a replacement sees, alongside the old instance, before it takes over.
    fade_frames: frames over which the decoder crossfades (linearly) old into new output.
    lead_frames: how long before warming up the replacement is built (~0.2-0.6 s to create).
    replace_timeout_s: how long a call near the limit waits for a late replacement.
    """

    def __init__(
        self,
        mimi_path: str | Path,
        codebooks: int = 8,
        rollover_after: int = 4000,
        *,
        frame_limit: int = FRAME_LIMIT,
        warmup_frames: int = 8,
        fade_frames: int = 2,
        lead_frames: int = 125,
        replace_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(mimi_path)
        self.codebooks = codebooks
        self.rollover_after = rollover_after
        self.frame_limit = frame_limit
        self.warmup_frames = warmup_frames
        self.fade_frames = fade_frames
        self.lead_frames = lead_frames
        self.replace_timeout_s = replace_timeout_s
        self.closed = False
        if warmup_frames < 0 or fade_frames < 0 or lead_frames < 0:
            raise CodecError("warmup, fade and lead frames must be >= 0", path=self.path)
        # A replacement starts at `warmup_frames` steps; it must serve some frames, and the old
        # one must finish its crossfade before the limit.
        if not warmup_frames + fade_frames < rollover_after < frame_limit - fade_frames:
            raise CodecError(
                f"rollover_after must lie in ({warmup_frames + fade_frames}, "
                f"{frame_limit - fade_frames}), not {rollover_after}",
                path=self.path,
            )
        # Build both instances at once: creation holds the GIL most of the time, yet this was
        # still ~15-30% faster than one after the other.
        with cf.ThreadPoolExecutor(max_workers=1) as pool:
            dec = pool.submit(open_tokenizer, self.path, codebooks, frame_limit)
            enc = open_tokenizer(self.path, codebooks, frame_limit)
            dec_tok = dec.result()
        self._enc = _Encoder(self, enc)
        self._dec = _Decoder(self, dec_tok)

    def encode(self, frame: np.ndarray) -> np.ndarray | None:
        """One 80 ms frame (float[1920]) -> uint32[codebooks] codes; None only if rustymimi
        still buffers, which whole frames never made it do."""
        codes = self._enc.process(self._pcm_input(frame))
        if codes is None:
            return None
        return np.ascontiguousarray(codes[0, :, 0], dtype=np.uint32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """uint32[codebooks] codes -> one 80 ms frame, float32[1920]."""
        pcm = self._dec.process(self._codes_input(codes))
        if pcm is None:
            raise CodecError("Mimi decode returned no audio for a whole frame", path=self.path)
        return np.ascontiguousarray(pcm[0, 0], dtype=np.float32)

    @property
    def stats(self) -> CodecStats:
        """Copies of both sides' counters: cheap, and fine to read from any thread."""
        return CodecStats(encode=replace(self._enc.stats), decode=replace(self._dec.stats))

    def close(self) -> None:
        """Join the helper threads and drop the instances (~350 MB each)."""
        self.closed = True
        self._enc.close()
        self._dec.close()

    def __enter__(self) -> StreamingCodec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- input checks: cheap next to a ~30-50 ms codec call -------------------------------------
    def _pcm_input(self, frame: np.ndarray) -> np.ndarray:
        a = np.asarray(frame)
        if a.shape != (FRAME_SAMPLES,):
            raise CodecError(
                f"encode expects {FRAME_SAMPLES} samples, got shape {a.shape}", path=self.path
            )
        if a.dtype.kind != "f":
            raise CodecError(f"encode expects float samples, got {a.dtype}", path=self.path)
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            raise CodecError("encode got NaN or infinite samples", path=self.path)
        return a.reshape(1, 1, FRAME_SAMPLES)

    def _codes_input(self, codes: np.ndarray) -> np.ndarray:
        a = np.asarray(codes)
        if a.shape != (self.codebooks,):
            raise CodecError(
                f"decode expects {self.codebooks} codes, got shape {a.shape}", path=self.path
            )
        if a.dtype.kind not in "iu":
            raise CodecError(f"decode expects integer codes, got {a.dtype}", path=self.path)
        if a.min() < 0 or a.max() >= MIMI_CODEBOOK_SIZE:
            raise CodecError(
                f"decode expects codes in 0..{MIMI_CODEBOOK_SIZE - 1}, got {a.tolist()}",
                path=self.path,
            )
        return np.ascontiguousarray(a, dtype=np.uint32).reshape(1, self.codebooks, 1)
