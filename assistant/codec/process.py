"""The parent's side of one codec worker: a rustymimi instance in a process of its own.

Why a process: rustymimi 0.4.1 never trims its attention state (its memory grows ~25 KB a
frame encoding, ~66 KB decoding) and building an instance holds the GIL for 0.2-0.6 s. An
instance that lives in its own process never touches this process's GIL, and when it retires
its process exits, which gives every byte back to the system (deleting an instance
in-process returned less than half of it to the OS here).

A worker is either forked, ready-built, by the codec's fork server (`forks`), or spawned
standalone (`python -m assistant.codec.child`) and built there; the protocol on its pipes
is the same (`wire`), and so is this side.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Protocol

from ..errors import CodecError
from .wire import CONFIGURE, ERROR, FRAME, OUTPUT, QUIT, READY, read_message, write_message

log = logging.getLogger(__name__)

STDERR_LINES = 20  # the child's last stderr lines, kept for error messages
CHILD_MODULE = "assistant.codec.child"


class WorkerHandle(Protocol):
    """What a worker is seen through: a `subprocess.Popen`, or a forked worker's stand-in."""

    stdin: IO[bytes] | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


def worker_env() -> dict[str, str]:
    """The environment of a codec child: this package importable, OpenBLAS on one thread."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    # The child does no linear algebra through numpy (rustymimi has its own kernels), and
    # OpenBLAS's thread pool, started at numpy's import, cost each child ~0.15 s of CPU there
    # (Linux; macOS's numpy uses Accelerate and ignores this). Encode and decode times: equal.
    # One thread also keeps the fork server single-threaded when it forks.
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def _spawn() -> subprocess.Popen[bytes]:
    """A standalone child, unconfigured: it imports, then waits for its configuration."""
    return subprocess.Popen(
        [sys.executable, "-m", CHILD_MODULE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        env=worker_env(),
        close_fds=True,
    )


class WorkerDied(CodecError):
    """The worker process exited, or stopped answering (it is then killed)."""


class CodecProcess:
    """Parent side of one codec worker: started at once, built (or forked) in the background.

    `op` is "encode" or "decode"; `warmup` frames of silence (or zero codes) run in the child
    before it says ready. `child`: a worker the fork server forked (else one is spawned).
    Calls come from one thread (the side's caller)."""

    def __init__(
        self,
        op: str,
        mimi_path: Path,
        codebooks: int,
        max_seq_len: int | None,
        *,
        warmup: int = 0,
        child: WorkerHandle | None = None,
    ) -> None:
        self.op = op
        self.path = mimi_path
        self.codebooks = codebooks
        self.build_s = 0.0
        self.warmup_steps = warmup
        self.forked = child is not None
        self._ready = False
        self._error: str | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self.started = time.monotonic()
        self._proc: WorkerHandle = child if child is not None else _spawn()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin.fileno()
        self._out = self._proc.stdout.fileno()
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, name=f"mimi-{op}-stderr", daemon=True
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
        """The worker's process id (0 for a forked one until the server has forked it)."""
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
        learn_pid = getattr(self._proc, "learn_pid", None)
        if learn_pid is not None:  # a forked worker may say so before the server does
            learn_pid(int(info.get("pid", 0)))
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
