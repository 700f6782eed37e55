"""One rustymimi instance in a process of its own: both ends of the pipe.

Why a process: rustymimi 0.4.1 never trims its attention state (its memory grows ~25 KB a
frame encoding, ~66 KB decoding) and building an instance holds the GIL for 0.2-0.6 s. An
instance that lives in its own process is built without touching the main process's GIL, and
when it is retired its process exits, which gives every byte back to the system (deleting an
instance in-process returned less than half of it to the OS here).

The child (`python -m assistant.voice.codec_process`) imports numpy and rustymimi, waits for
its configuration, builds its instance, optionally warms it up, says "ready", then answers one
request per frame. Because it imports before it knows its Mimi file, `prestart` can start the
first two children at the top of a command, while the parent is still importing and checking
the checkpoint (start-up time: Python, numpy and rustymimi are ~0.2 s of each child's ~0.7 s).
The protocol on its stdin/stdout: a message is one kind byte, a little-endian uint32 payload
length, the payload.

    parent -> child   C <json>    configure (first): {"op", "mimi", "codebooks", "warmup",
                                  "max_seq_len"}
                      F <frame>   encode: float32[1920]; decode: uint32[codebooks]
                      Q           quit (also before the configuration)
    child -> parent   R <json>    ready: {"build_s": ..., "warmup_s": ...}
                      O <output>  encode: uint32[codebooks] (empty: no codes yet); decode: float32
                      E <text>    the request failed (one line); the child keeps serving

The child's own stdout is redirected to its stderr before rustymimi loads, so nothing it
prints can corrupt the protocol; the parent logs the child's stderr. A child whose parent dies
reads end-of-file and exits, also while it waits for its configuration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import CodecError
from ..frames import FRAME_SAMPLES

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<cI")
CONFIGURE, FRAME, QUIT, READY, OUTPUT, ERROR = b"C", b"F", b"Q", b"R", b"O", b"E"
MAX_MESSAGE = 1 << 20  # far above any frame: a longer length means a broken stream
STDERR_LINES = 20  # the child's last stderr lines, kept for error messages


# --- the wire --------------------------------------------------------------------------------
def write_message(fd: int, kind: bytes, payload: bytes = b"") -> None:
    data = _HEADER.pack(kind, len(payload)) + payload
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """n bytes, None at end-of-file; TimeoutError once `deadline` (monotonic) passes."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_message(fd: int, deadline: float | None = None) -> tuple[bytes, bytes] | None:
    """(kind, payload), or None at end-of-file."""
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return None
    kind, length = _HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ValueError(f"message of {length} bytes: the stream is broken")
    payload = _read_exact(fd, length, deadline) if length else b""
    if payload is None:
        return None
    return kind, payload


# --- the child -------------------------------------------------------------------------------
def _first_line(e: BaseException) -> str:
    # RUST_BACKTRACE=1 appends a long candle backtrace to the message: keep the headline.
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def run_child() -> int:
    """The child's main loop; returns its exit status."""
    proto_in, proto_out = 0, os.dup(1)
    os.dup2(2, 1)  # from here on, stray prints (Python's or Rust's) go to stderr
    import numpy as np  # imported while the parent still decides what to ask (start-up time)

    try:
        import rustymimi
    except ImportError as e:
        missing: ImportError | None = e
    else:
        missing = None
    message = read_message(proto_in)
    if message is None or message[0] == QUIT:  # a spare that was not needed
        return 0
    if message[0] != CONFIGURE:
        write_message(proto_out, ERROR, f"expected a configuration, got {message[0]!r}".encode())
        return 1
    config = json.loads(message[1])
    op, mimi, codebooks = config["op"], config["mimi"], int(config["codebooks"])
    warmup, max_seq_len = int(config["warmup"]), config["max_seq_len"]
    t0 = time.perf_counter()
    try:
        if missing is not None:
            raise missing
        tok = rustymimi.Tokenizer(mimi, num_codebooks=codebooks, max_seq_len=max_seq_len)
    except BaseException as e:  # a Rust panic is a BaseException: report it, don't die silently
        write_message(
            proto_out, ERROR, f"rustymimi cannot load this Mimi file ({_first_line(e)})".encode()
        )
        return 1
    build_s = time.perf_counter() - t0

    def step(x: Any) -> Any:
        return tok.encode_step(x) if op == "encode" else tok.decode_step(x)

    t1 = time.perf_counter()
    try:
        # First calls through Mimi are slow (allocation): done here, not on a live frame.
        if op == "encode":
            silence = np.zeros((1, 1, FRAME_SAMPLES), dtype=np.float32)
            for _ in range(warmup):
                step(silence)
        else:
            zeros = np.zeros((1, codebooks, 1), dtype=np.uint32)
            for _ in range(warmup):
                step(zeros)
    except BaseException as e:
        write_message(proto_out, ERROR, f"Mimi {op} warm-up failed ({_first_line(e)})".encode())
        return 1
    ready = {"build_s": build_s, "warmup_s": time.perf_counter() - t1}
    write_message(proto_out, READY, json.dumps(ready).encode())
    while True:
        message = read_message(proto_in)
        if message is None or message[0] == QUIT:
            return 0
        payload = message[1]
        try:
            if op == "encode":
                pcm = np.frombuffer(payload, dtype=np.float32).reshape(1, 1, -1)
                codes = step(pcm)
                out = (
                    b""
                    if codes is None
                    else np.ascontiguousarray(codes[0, :, 0], np.uint32).tobytes()
                )
            else:
                codes = np.frombuffer(payload, dtype=np.uint32).reshape(1, -1, 1)
                pcm = step(codes)
                if pcm is None:
                    raise ValueError("no audio for a whole frame")
                out = np.ascontiguousarray(pcm[0, 0], dtype=np.float32).tobytes()
        except BaseException as e:
            write_message(proto_out, ERROR, f"Mimi {op} failed ({_first_line(e)})".encode())
            continue
        write_message(proto_out, OUTPUT, out)


# --- the parent ------------------------------------------------------------------------------
def _spawn() -> subprocess.Popen[bytes]:
    """A child, unconfigured: it imports, then waits for its configuration."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    # The child does no linear algebra through numpy (rustymimi has its own kernels), and
    # OpenBLAS's thread pool, started at numpy's import, cost each child ~0.15 s of CPU there
    # (Linux; macOS's numpy uses Accelerate and ignores this). Encode and decode times: equal.
    env["OPENBLAS_NUM_THREADS"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", __name__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=env,
        close_fds=True,
    )


_spares: list[subprocess.Popen[bytes]] = []
_spares_lock = threading.Lock()


def prestart(count: int) -> None:
    """Start `count` children now, to be configured by the next CodecProcesses (a command that
    will open a codec calls this first thing; `discard_spares` ends those not taken)."""
    with _spares_lock:
        while len(_spares) < count:
            _spares.append(_spawn())


def _take_spare() -> subprocess.Popen[bytes] | None:
    with _spares_lock:
        while _spares:
            proc = _spares.pop(0)
            if proc.poll() is None:
                return proc
            _close_unused(proc)
    return None


def discard_spares() -> None:
    """End the prestarted children nobody took (a command that failed early, or --help)."""
    with _spares_lock:
        spares = list(_spares)
        _spares.clear()
    for proc in spares:
        _close_unused(proc)


def _close_unused(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()  # it holds nothing yet: no need to wait for its imports to finish
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


class WorkerDied(CodecError):
    """The worker process exited, or stopped answering (it is then killed)."""


class CodecProcess:
    """Parent side of one codec worker: spawned at once, built in the background.

    `op` is "encode" or "decode"; `warmup` frames of silence (or zero codes) run in the child
    before it says ready. Calls come from one thread (the side's caller)."""

    def __init__(
        self,
        op: str,
        mimi_path: Path,
        codebooks: int,
        max_seq_len: int | None,
        *,
        warmup: int = 0,
    ) -> None:
        self.op = op
        self.path = mimi_path
        self.codebooks = codebooks
        self.build_s = 0.0
        self.warmup_steps = warmup
        self._ready = False
        self._error: str | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self.started = time.monotonic()
        self._proc = _take_spare() or _spawn()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name=f"mimi-{op}-{self.pid}-stderr", daemon=True
        )
        self._stderr_thread.start()
        config = {
            "op": op,
            "mimi": str(mimi_path),
            "codebooks": codebooks,
            "warmup": warmup,
            "max_seq_len": max_seq_len,
        }
        try:
            write_message(self._in, CONFIGURE, json.dumps(config).encode())
        except OSError:  # EPIPE: it died before its configuration
            self._error = str(self._died("while starting"))

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    # --- start-up ---------------------------------------------------------------------------
    def poll_ready(self) -> bool:
        """True once the instance is built and warmed; False while it builds. A failed build
        raises CodecError (with the child's reason)."""
        if self._ready:
            return True
        if self._error is not None:
            raise CodecError(self._error, path=self.path)
        if not select.select([self._out], [], [], 0)[0]:
            return False
        try:  # the child writes its whole (small) ready message at once
            message = read_message(self._out, time.monotonic() + 5.0)
        except (TimeoutError, OSError, ValueError):
            raise self._died("while starting") from None
        self._on_ready_message(message)
        return True

    def wait_ready(self, timeout: float) -> None:
        """Block until ready; CodecError on failure, WorkerDied if it exits or times out."""
        if self._ready:
            return
        if self._error is not None:
            raise CodecError(self._error, path=self.path)
        try:
            message = read_message(self._out, time.monotonic() + timeout)
        except TimeoutError:
            self.kill()
            raise WorkerDied(
                f"Mimi {self.op} worker not ready after {timeout:g} s", path=self.path
            ) from None
        except (OSError, ValueError):
            raise self._died("while starting") from None
        self._on_ready_message(message)

    def _on_ready_message(self, message: tuple[bytes, bytes] | None) -> None:
        if message is None:
            raise self._died("while starting")
        kind, payload = message
        if kind == ERROR:
            self._error = payload.decode(errors="replace")
            self.close()
            raise CodecError(self._error, path=self.path)
        if kind != READY:
            raise self._died(f"with an unexpected {kind!r} message while starting")
        info = json.loads(payload)
        self.build_s = float(info.get("build_s", 0.0))
        self._ready = True

    # --- frames -----------------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        try:
            write_message(self._in, FRAME, payload)
        except OSError:  # EPIPE: it is gone
            raise self._died("") from None

    def receive(self, timeout: float) -> bytes:
        """The answer to the last `send`; CodecError for a failed frame, WorkerDied when the
        worker is gone or silent for `timeout` seconds (it is then killed)."""
        try:
            message = read_message(self._out, time.monotonic() + timeout)
        except TimeoutError:
            self.kill()
            raise WorkerDied(
                f"Mimi {self.op} worker (pid {self.pid}) did not answer within {timeout:g} s",
                path=self.path,
            ) from None
        except (OSError, ValueError):
            raise self._died("") from None
        if message is None:
            raise self._died("")
        kind, payload = message
        if kind == ERROR:
            raise CodecError(payload.decode(errors="replace"), path=self.path)
        if kind != OUTPUT:
            raise self._died(f"with an unexpected {kind!r} message")
        return payload

    # --- the end ----------------------------------------------------------------------------
    def close(self, timeout: float = 2.0) -> None:
        """Ask it to quit, then kill it if it doesn't; closes the pipes."""
        if self.alive:
            with contextlib.suppress(OSError):
                write_message(self._in, QUIT)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()

    def kill(self) -> None:
        if self.alive:
            self._proc.kill()
        self._reap()

    def _reap(self) -> None:
        try:
            self._proc.wait(5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill that did not take
            log.error("Mimi %s worker %d ignored SIGKILL", self.op, self.pid)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def _died(self, when: str) -> WorkerDied:
        try:
            code = self._proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        self._stderr_thread.join(1.0)
        last = next((line for line in reversed(self._stderr) if line.strip()), "")
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        detail = f": {last.strip()}" if last else ""
        where = f" {when}" if when else ""
        return WorkerDied(
            f"Mimi {self.op} worker (pid {self.pid}) {how}{where}{detail}", path=self.path
        )

    def _drain_stderr(self) -> None:
        stream = self._proc.stderr
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self._stderr.append(line)
            log.debug("mimi %s worker %d: %s", self.op, self.pid, line)
        stream.close()


if __name__ == "__main__":
    sys.exit(run_child())
