"""The streaming Mimi codec of the live loop: encode the user's frames, decode Moshi's.

Each side (encoder, decoder) runs rustymimi in a worker process of its own (`process`),
so the two sides work in parallel, a build never holds this process's GIL, and memory goes
back to the system when an instance retires. Workers are forked ready-built from one fork
server (`forks`), which builds the instance once; where that fails, each worker is
spawned and builds its own. Every failure becomes a `CodecError` naming the
Mimi file and the operation; a worker that dies or hangs is replaced (and counted) or, when
it keeps dying, ends the conversation with that error: never a hang. Each side must be
called from a single thread.

Roll-over: rustymimi never trims its attention state (memory grows every frame) and fails at
its `max_seq_len`, so an instance serves `rollover_after` frames and is then replaced. The
successor's process is spawned `lead_frames` ahead, fed the last `warmup_frames` inputs
alongside the old instance (in parallel: another process), then takes over; the decoder
crossfades old into new output over `fade_frames`. With `stagger`, the decoder's first
hand-over comes half a period early, so the two sides never hold a spare at the same time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..checkpoint.mimi_layout import MIMI_CODEBOOK_SIZE
from ..errors import CodecError
from ..files import require_regular
from ..frames import FRAME_SAMPLES
from .child import PROBE_TIMEOUT_S
from .forks import ForkServer, take_spare
from .process import CodecProcess, WorkerDied

log = logging.getLogger(__name__)

FRAME_LIMIT = 4096  # frames one rustymimi 0.4.1 instance can stream (max_seq_len 8192 at 25 Hz)
MAX_CODEBOOKS = 32  # the published Mimi has 32; rustymimi panics on 0
START_TIMEOUT_S = 60.0  # starting Python and building an instance: ~1 s here, far more if swapping
PROBE_WAIT_S = PROBE_TIMEOUT_S + 5.0  # the probe's verdict, at the latest (its alarm, and margin)


@dataclass
class SideStats:
    """Counters of one side (encode or decode); times in seconds, per call to the side."""

    frames: int = 0
    rollovers: int = 0
    restarts: int = 0  # workers that died or hung and were replaced mid-conversation
    spare_failures: int = 0  # successors that failed to start or to warm up (rebuilt)
    last_s: float = 0.0
    total_s: float = 0.0
    max_s: float = 0.0
    last_switch_s: float = 0.0  # the call that switched to a replacement instance
    last_build_s: float = 0.0  # building the latest instance in its own process (0: forked)
    pid: int = 0  # the worker serving now

    @property
    def mean_s(self) -> float:
        return self.total_s / self.frames if self.frames else 0.0


@dataclass(frozen=True)
class CodecStats:
    encode: SideStats
    decode: SideStats
    forking: bool = False  # new workers are forked from the fork server (else spawned)


def check_mimi_file(mimi_path: Path, codebooks: int) -> None:
    """What can be refused before a worker starts: codebooks out of range, no such file."""
    if not 1 <= codebooks <= MAX_CODEBOOKS:
        raise CodecError(f"codebooks must be 1..{MAX_CODEBOOKS}, not {codebooks}", path=mimi_path)
    require_regular(mimi_path, CodecError, what="Mimi codec file")  # rustymimi opens it itself


class _Side:
    """One direction of the codec: its worker processes and their roll-over schedule."""

    def __init__(self, codec: StreamingCodec, op: str, first: CodecProcess, steps: int) -> None:
        self.c, self.op = codec, op
        self.stats = SideStats(pid=first.pid)
        self._cur = first
        self._steps = steps  # rustymimi steps of self._cur (warm-up included): its limit counts
        self._next: CodecProcess | None = None  # the successor: building, then warming up
        self._next_steps = 0
        self._old: CodecProcess | None = None  # the replaced decoder, during the crossfade
        self._fade_done = 0
        self._history: deque[bytes] = deque(maxlen=codec.warmup_frames)  # for restarts
        c = codec
        self._shadow_from = c.rollover_after - c.warmup_frames
        self._build_from = max(0, self._shadow_from - c.lead_frames)
        # The last moment to start warming up a successor and still switch (and fade) in time.
        self._deadline = c.frame_limit - 1 - c.fade_frames - c.warmup_frames

    def _spawn(self) -> CodecProcess:
        return self.c.new_worker(self.op)

    def start(self, timeout: float) -> None:
        """Wait for the first instance. A forked one that dies starting (its server died, or
        forking fails here) is replaced once, by a spawned one if forking fails."""
        try:
            self._cur.wait_ready(timeout)
        except WorkerDied as e:
            if not self._cur.forked:
                raise
            log.warning("Mimi %s: %s; starting another", self.op, e.message)
            self.c.check_forks(wait=True, respawn=False)
            self.respawn_first()
            self._cur.wait_ready(timeout)
        self.stats.pid = self._cur.pid
        self.stats.last_build_s = self._cur.build_s

    @property
    def first_is_forked(self) -> bool:
        """Whether the instance serving now came from the fork server."""
        return self._cur.forked

    def workers(self) -> list[CodecProcess]:
        """Its worker processes alive now: current, successor, fading."""
        return [w for w in (self._cur, self._next, self._old) if w is not None and w.alive]

    def respawn_first(self) -> None:
        """Replace a forked first instance that has not served yet with a spawned one."""
        self._cur.kill()
        self._cur = self.c.new_worker(self.op, self._cur.warmup_steps)

    # --- the schedule -----------------------------------------------------------------------
    def _successor_ready(self, wait: bool) -> bool:
        """Whether the successor is built. A failed build is counted and retried at the next
        call; it raises only when waited for (no time left) or after `max_failures`."""
        nxt = self._next
        if nxt is None:
            return False
        try:
            if wait:
                nxt.wait_ready(self.c.replace_timeout_s)
            elif not nxt.poll_ready():
                return False
        except CodecError as e:
            nxt.kill()
            self._next = None
            self.stats.spare_failures += 1
            log.warning("Mimi %s: a successor failed to start: %s", self.op, e.message)
            if wait or self.stats.spare_failures >= self.c.max_failures:
                raise CodecError(
                    f"Mimi {self.op}: replacement failed: {e.message}", path=self.c.path
                ) from None
            return False
        self.stats.last_build_s = nxt.build_s
        return True

    def _schedule(self) -> bool:
        """Advance the roll-over before a call; True when this call switches."""
        if self._next is None and self._old is None and self._steps >= self._build_from:
            self._next, self._next_steps = self._spawn(), 0
        if self._next is not None and self._next_steps == 0 and self._steps >= self._deadline:
            self._successor_ready(wait=True)  # no time left: wait for it, or fail
        warmed = self._next is not None and self._next_steps >= self.c.warmup_frames
        if warmed and self._steps >= self.c.rollover_after:
            assert self._next is not None
            retired, self._cur, self._next = self._cur, self._next, None
            self._steps, self._fade_done = self._next_steps, 0
            self.stats.rollovers += 1
            self.stats.pid = self._cur.pid
            if self.c.fade_frames and self.op == "decode":
                self._old = retired  # its output fades out over the next frames
            else:
                retired.close()  # codes are discrete: nothing to crossfade
            return True
        return False

    # --- one frame --------------------------------------------------------------------------
    def process(self, payload: bytes) -> bytes:
        if self.c.closed:
            raise CodecError(f"Mimi {self.op} after close()", path=self.c.path)
        t0 = time.perf_counter()
        switched = self._schedule()
        warming = False
        if self._next is not None and self._steps >= self._shadow_from:
            warming = self._successor_ready(wait=self.c.punctual)
        aux = self._next if warming else self._old
        # The spare runs in its own process while the current one works: in parallel.
        if aux is not None:
            try:
                aux.send(payload)
            except WorkerDied:
                self._drop_aux(aux)
                aux = None
        out = self._call_current(payload)
        aux_out = None
        if aux is not None:
            try:
                aux_out = aux.receive(self.c.call_timeout_s)
            except CodecError as e:
                log.warning("Mimi %s: spare instance failed: %s", self.op, e.message)
                self._drop_aux(aux)
                aux = None
        self._steps += 1
        self._history.append(payload)
        if aux is not None and aux is self._next:
            self._next_steps += 1  # warm-up output is discarded
        elif aux is not None and aux_out is not None:
            out = self.c.combine(out, aux_out, self._fade_done)
            self._fade_done += 1
            if self._fade_done >= self.c.fade_frames:
                self._retire_old()
        dt = time.perf_counter() - t0
        s = self.stats
        s.frames += 1
        s.last_s, s.total_s, s.max_s = dt, s.total_s + dt, max(s.max_s, dt)
        if switched:
            s.last_switch_s = dt
        return out

    def _call_current(self, payload: bytes) -> bytes:
        """The current worker's answer. A worker that died or hung is replaced, warmed with
        the last inputs and asked again, each time counted as a restart."""
        restart = False
        while True:
            try:
                if restart:
                    self._restart()
                self._cur.send(payload)
                return self._cur.receive(self.c.call_timeout_s)
            except WorkerDied as e:
                self.stats.restarts += 1
                log.warning("Mimi %s: %s; restarting it", self.op, e.message)
                if self._cur.forked:  # forking may be what fails here: spawn if so
                    self.c.check_forks(wait=True, respawn=False)
                if self.stats.restarts > self.c.max_failures:
                    raise CodecError(
                        f"{e.message}; the Mimi {self.op} worker keeps failing "
                        f"({self.stats.restarts} restarts)",
                        path=self.c.path,
                    ) from None
                restart = True

    def _restart(self) -> None:
        self._cur.kill()
        fresh = self._next if self._next is not None and self._next_steps == 0 else None
        if fresh is not None:
            self._next = None
        else:
            fresh = self._spawn()
        fresh.wait_ready(self.c.replace_timeout_s)
        for past in self._history:  # the state a continuing instance would have had
            fresh.send(past)
            fresh.receive(self.c.call_timeout_s)
        self._cur, self._steps = fresh, len(self._history)
        self.stats.pid = fresh.pid
        self.stats.last_build_s = fresh.build_s

    def _drop_aux(self, aux: CodecProcess) -> None:
        aux.kill()
        if aux is self._next:
            self._next = None
            self.stats.spare_failures += 1
        else:
            self._old = None

    def _retire_old(self) -> None:
        if self._old is not None:
            self._old.close()
            self._old = None

    def close(self) -> None:
        for worker in (self._cur, self._next, self._old):
            if worker is not None:
                worker.close()
        self._next = self._old = None


class StreamingCodec:
    """Mimi for the live loop: `encode` (one thread) and `decode` (another), with roll-over.

    rollover_after: frames an instance serves before its successor takes over (< frame_limit).
    frame_limit: frames a rustymimi instance can stream; 4096 is rustymimi's own. Other values
        set its `max_seq_len` (about 0.5 KB of RoPE table per frame).
    warmup_frames: inputs a successor sees, alongside the old instance, before it takes over.
    fade_frames: frames over which the decoder crossfades (linearly) old into new output.
    lead_frames: how long before warming up the successor's process is started (it takes
        ~0.3 s to start Python and 0.2-0.6 s to build an instance).
    start_warmup: frames of silence each first instance runs before serving (slow first calls).
    stagger: the decoder's first hand-over comes half a period early (one spare at a time).
    punctual: hand over exactly on schedule, waiting for a successor that is late to start
        (deterministic, for tests); by default a late successor only delays the hand-over.
    replace_timeout_s: how long a call near the limit (or a restart) waits for a new instance.
    call_timeout_s: a worker silent this long on one frame is taken as hung, killed, replaced.
    max_failures: restarts (and failed successors) tolerated per side before giving up.
    wait: block until both first instances are ready (else the first call waits).
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
        start_warmup: int = 0,
        stagger: bool = False,
        punctual: bool = False,
        replace_timeout_s: float = 20.0,
        call_timeout_s: float = 10.0,
        max_failures: int = 3,
        wait: bool = True,
    ) -> None:
        self.path = Path(mimi_path)
        self.codebooks = codebooks
        self.rollover_after = rollover_after
        self.frame_limit = frame_limit
        self.warmup_frames = warmup_frames
        self.fade_frames = fade_frames
        self.lead_frames = lead_frames
        self.replace_timeout_s = replace_timeout_s
        self.call_timeout_s = call_timeout_s
        self.max_failures = max_failures
        self.punctual = punctual
        self.closed = False
        if warmup_frames < 0 or fade_frames < 0 or lead_frames < 0 or start_warmup < 0:
            raise CodecError("warm-up, fade and lead frames must be >= 0", path=self.path)
        # A successor takes over at `warmup_frames` steps and its predecessor fades out over
        # the next `fade_frames`; only then can the next successor start its warm-up, which must
        # end by `rollover_after` (one spare at a time). The old one must finish its crossfade
        # before the limit. (Below the lower bound a hand-over slipped, and an instance ran into
        # its frame limit.)
        lowest = 2 * warmup_frames + fade_frames
        if not lowest <= rollover_after < frame_limit - fade_frames:
            raise CodecError(
                f"rollover_after must lie in [{lowest}, {frame_limit - fade_frames}), "
                f"not {rollover_after}",
                path=self.path,
            )
        check_mimi_file(self.path, codebooks)
        # rustymimi counts transformer steps at 25 Hz: two per 80 ms frame.
        self.max_seq_len = None if frame_limit == FRAME_LIMIT else 2 * frame_limit
        self._server_lock = threading.Lock()
        self._server = self._start_server()
        try:  # both first instances at once, each in its own process
            enc = self.new_worker("encode", start_warmup)
            try:
                dec = self.new_worker("decode", start_warmup)
            except BaseException:
                enc.kill()
                raise
        except BaseException:
            self._drop_server("")
            raise
        self._enc = _Side(self, "encode", enc, start_warmup)
        # Staggered: the decoder's first instance counts as older, so it retires earlier.
        older = rollover_after // 2 if stagger else 0
        self._dec = _Side(self, "decode", dec, start_warmup + older)
        self._started = False
        self._start_lock = threading.Lock()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until both first instances are built (CodecError if one fails)."""
        if self._started:
            return
        limit = START_TIMEOUT_S if timeout is None else timeout
        with self._start_lock:  # the encoder's and decoder's threads may both get here
            if self._started:
                return
            try:
                for side in (self._enc, self._dec):
                    side.start(limit)
                if not self.check_forks(wait=False):  # some may have been spawned anew
                    for side in (self._enc, self._dec):
                        side.start(limit)
            except BaseException:
                self.close()
                raise
            self._started = True

    def encode(self, frame: np.ndarray) -> np.ndarray | None:
        """One 80 ms frame (float[1920]) -> uint32[codebooks] codes; None only if rustymimi
        still buffers, which whole frames never made it do."""
        payload = self._pcm_input(frame)
        self.wait_ready()
        out = self._enc.process(payload)
        if not out:
            return None
        return np.frombuffer(out, dtype=np.uint32).copy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """uint32[codebooks] codes -> one 80 ms frame, float32[1920]."""
        payload = self._codes_input(codes)
        self.wait_ready()
        pcm = np.frombuffer(self._dec.process(payload), dtype=np.float32)
        if pcm.shape != (FRAME_SAMPLES,):
            raise CodecError(
                f"Mimi decode returned {pcm.size} samples for a frame of {FRAME_SAMPLES}",
                path=self.path,
            )
        return pcm.copy()

    def combine(self, new: bytes, old: bytes, fade_index: int) -> bytes:
        """The decoder's crossfade: old and new renderings of the same codes are ~99%
        correlated after warm-up, so a linear fade keeps the level (an equal-power one would
        bulge by up to 3 dB)."""
        a = np.frombuffer(new, dtype=np.float32)
        b = np.frombuffer(old, dtype=np.float32)
        if a.shape != b.shape:
            return new
        n = self.fade_frames * FRAME_SAMPLES
        w = (np.arange(len(a), dtype=np.float32) + 1 + fade_index * FRAME_SAMPLES) / n
        return ((1.0 - w) * b + w * a).astype(np.float32).tobytes()

    @property
    def stats(self) -> CodecStats:
        """Copies of both sides' counters: cheap, and fine to read from any thread."""
        return CodecStats(
            encode=replace(self._enc.stats), decode=replace(self._dec.stats), forking=self.forking
        )

    def worker_pids(self) -> list[int]:
        """Every codec worker process alive now (current, successors, fading)."""
        pids = []
        for side in (self._enc, self._dec):
            pids += [w.pid for w in side.workers()]
        return pids

    def close(self) -> None:
        """Stop every worker process (each frees its instance, ~365 MB, as it exits)."""
        self.closed = True
        self._enc.close()
        self._dec.close()
        self._drop_server("")

    # --- where workers come from ------------------------------------------------------------
    def _start_server(self) -> ForkServer | None:
        """The prestarted fork server, or a new one; None if none can start."""
        server = take_spare()
        if server is None:
            try:
                server = ForkServer()
            except OSError as e:
                log.warning("Mimi: cannot start the fork server (%s); spawning workers", e)
                return None
        if not server.configure(str(self.path), self.codebooks, self.max_seq_len):
            server.close()
            return None
        return server

    def check_forks(self, *, wait: bool, respawn: bool = True) -> bool:
        """Whether workers are still forked. The fork server's probe (see `child`) gives
        its verdict ~2 steps after the build, in parallel with the first frames: start-up
        does not wait for it, and `wait=False` takes only a verdict already given. When it
        says forked workers fail here, forking stops and (`respawn`) first workers that have
        not served yet are spawned anew."""
        with self._server_lock:
            server = self._server
        if server is None:
            return False
        works, why = server.forks_work(PROBE_WAIT_S if wait else 0.0)
        if works is None and wait:
            works, why = False, f"its probe gave no verdict within {PROBE_WAIT_S:g} s"
        if works is not False:
            return True
        self._drop_server(f"forked Mimi workers cannot be used: {why}")
        for side in (self._enc, self._dec) if respawn else ():
            if side.first_is_forked and not side.stats.frames:  # it has not served yet
                side.respawn_first()
        return False

    def new_worker(self, op: str, warmup: int = 0) -> CodecProcess:
        """A worker forked from the server while it is usable, else a spawned one."""
        child = None
        with self._server_lock:
            server = self._server
        if server is not None and not self.check_forks(wait=False, respawn=False):
            server = None
        if server is not None and not server.usable:
            self._drop_server("the Mimi fork server exited")
        elif server is not None:
            try:
                child = server.fork()
            except OSError as e:
                self._drop_server(f"the Mimi fork server failed ({e})")
        try:
            return CodecProcess(
                op, self.path, self.codebooks, self.max_seq_len, warmup=warmup, child=child
            )
        except BaseException:
            if child is not None:  # forked for nothing: it must not wait on its pipe forever
                child.kill()
            raise

    def _drop_server(self, why: str) -> None:
        """Stop forking (from now on each worker is spawned); workers already forked go on."""
        with self._server_lock:
            server, self._server = self._server, None
        if server is None:
            return
        if why:
            log.warning("%s; spawning each worker from now on", why)
        server.close()

    @property
    def forking(self) -> bool:
        """Whether new workers are forked from the fork server (else spawned)."""
        with self._server_lock:
            return self._server is not None

    def __enter__(self) -> StreamingCodec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- input checks: cheap next to a ~30-70 ms codec call -------------------------------------
    def _pcm_input(self, frame: np.ndarray) -> bytes:
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
        return a.tobytes()

    def _codes_input(self, codes: np.ndarray) -> bytes:
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
        return np.ascontiguousarray(a, dtype=np.uint32).tobytes()
