"""The parent's side of the codec's fork server: one process builds Mimi once and forks every
worker from it (why, and why it is safe: `child`).

`prestart()` starts a server first thing in a command that will open a codec, while this
process still imports and checks the checkpoint; the codec takes it (`take_spare`), configures
it with its Mimi file, and asks it for workers: the first two at once, then each roll-over's
successor and each restart, every one ready ~25 ms after the server has built. A worker is the
server's child, not ours, so the server reports how each ended; `ForkedChild` shows a worker
through the interface of `subprocess.Popen` that `CodecProcess` uses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO

import psutil

from .process import CHILD_MODULE, worker_env
from .wire import (
    CONFIGURE,
    ERROR,
    EXITED,
    FORKED,
    PROBING,
    QUIT,
    READY,
    read_message,
    send_fork,
    write_message,
)

log = logging.getLogger(__name__)

ORPHAN_POLL_S = 0.05  # how often a worker whose server is gone is looked for


class ForkedChild:
    """A worker the server forked, seen as `CodecProcess` sees a `subprocess.Popen`."""

    def __init__(self, server: ForkServer, fds: tuple[int, int, int]) -> None:
        self._server = server
        self._pid = 0
        self.returncode: int | None = None
        stdin_w, stdout_r, stderr_r = fds
        self.stdin: IO[bytes] | None = os.fdopen(stdin_w, "wb", buffering=0)
        self.stdout: IO[bytes] | None = os.fdopen(stdout_r, "rb", buffering=0)
        self.stderr: IO[bytes] | None = os.fdopen(stderr_r, "rb", buffering=0)

    @property
    def pid(self) -> int:
        return self._pid

    def learn_pid(self, pid: int) -> None:
        with self._server.changed:
            if not self._pid and pid > 0:
                self._pid = pid
                self._server.by_pid[pid] = self

    def poll(self) -> int | None:
        with self._server.changed:
            if self.returncode is None and self._server.gone:
                self._check_orphan()
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._server.changed:
            while self.returncode is None:
                if self._server.gone:
                    self._check_orphan()
                    if self.returncode is not None:
                        break
                pause = ORPHAN_POLL_S if self._server.gone else 0.5  # reports notify at once
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise subprocess.TimeoutExpired(CHILD_MODULE, timeout or 0.0)
                    pause = min(pause, left)
                self._server.changed.wait(pause)
            return self.returncode

    def kill(self) -> None:
        with self._server.changed:
            pid, done = self._pid, self.returncode is not None
        if done:
            return
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        elif self.stdin is not None:  # not forked yet: once it is, it reads end-of-file
            # and exits. The pipe is replaced by /dev/null, not closed: its descriptor stays
            # ours (CodecProcess writes by number), never a reused one.
            with contextlib.suppress(OSError):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, self.stdin.fileno(), inheritable=False)
                os.close(null)

    def _check_orphan(self) -> None:
        """The server is gone, and its workers with it went to init: a worker never forked,
        or no longer running (gone, or a zombie init has yet to reap), has ended; how,
        nobody can say."""
        if not self._pid:
            self.returncode = 1
            return
        try:
            ended = psutil.Process(self._pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            ended = True
        except psutil.Error:  # not ours to inspect: take it as running
            ended = False
        if ended:
            self.returncode = 1


class ForkServer:
    """The server process, from spawn to exit. `fork()` may be called from any thread."""

    def __init__(self) -> None:
        parent, child = socket.socketpair()
        self._sock = parent
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE, "--fork-server", str(child.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(child.fileno(),),
                env=worker_env(),
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self.changed = threading.Condition()  # guards what follows; notified on each report
        self.gone = False  # the server has exited (end-of-file on its socket)
        self.build_error: str | None = None
        self.by_pid: dict[int, ForkedChild] = {}
        self._by_request: dict[int, ForkedChild] = {}
        self._next_request = 1
        self._send_lock = threading.Lock()
        self._key: tuple[str, int, int | None] | None = None
        self._probe_pid = 0
        self.probe_code: int | None = None  # how the fork-safety probe ended (0: it worked)
        self._reader = threading.Thread(target=self._read, name="mimi-forks", daemon=True)
        self._reader.start()
        threading.Thread(target=self._drain_stderr, name="mimi-forks-stderr", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def usable(self) -> bool:
        return not self.gone and self._proc.poll() is None

    def configure(self, mimi: str, codebooks: int, max_seq_len: int | None) -> bool:
        """Send the Mimi file it builds for (once); False if the server is not there."""
        key = (mimi, codebooks, max_seq_len)
        if self._key is not None:
            return self._key == key
        config = {"mimi": mimi, "codebooks": codebooks, "max_seq_len": max_seq_len}
        try:
            with self._send_lock:
                self._send(CONFIGURE, json.dumps(config).encode())
        except OSError:
            return False
        self._key = key
        return True

    def forks_work(self, timeout: float) -> tuple[bool | None, str]:
        """The probe's verdict (see `child`), waited for up to `timeout` seconds: True
        when forked workers work (or when the build failed: the workers then report why),
        False with the reason when they do not, None while the probe runs."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.probe_code is None and self.build_error is None and not self.gone:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, ""
                self.changed.wait(left)
            if self.build_error is not None or self.probe_code == 0:
                return True, ""
            if self.probe_code is None:
                return False, "the fork server exited"
            how = f"killed by signal {-self.probe_code}" if self.probe_code < 0 else "failed"
            return False, f"a forked probe {how} (exit status {self.probe_code})"

    def fork(self) -> ForkedChild:
        """A worker, forked as soon as the server has built (OSError: the server is gone)."""
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        theirs, ours = (stdin_r, stdout_w, stderr_w), (stdin_w, stdout_r, stderr_r)
        try:
            with self._send_lock:
                with self.changed:
                    request, self._next_request = self._next_request, self._next_request + 1
                    child = ForkedChild(self, ours)
                    self._by_request[request] = child
                try:
                    send_fork(self._sock, request, list(theirs))
                except OSError:
                    with self.changed:
                        del self._by_request[request]
                    for pipe in (child.stdin, child.stdout, child.stderr):
                        if pipe is not None:
                            pipe.close()
                    raise
        finally:
            for fd in theirs:  # the server has its own copies now (or none is needed)
                os.close(fd)
        return child

    def close(self, timeout: float = 2.0) -> None:
        """Ask it to quit, then kill it if it doesn't (its workers keep their own pipes)."""
        if self._proc.poll() is None:
            with contextlib.suppress(OSError), self._send_lock:
                self._send(QUIT)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(5.0)
        self._sock.close()

    def _send(self, kind: bytes, payload: bytes = b"") -> None:
        write_message(self._sock.fileno(), kind, payload)

    def _read(self) -> None:
        """The server's reports, as they come, until it exits."""
        try:
            while True:
                message = read_message(self._sock.fileno())
                if message is None:
                    break
                self._on_report(*message)
        except (OSError, ValueError) as e:
            log.debug("Mimi fork server %d: %s", self.pid, e)
        with self.changed:
            self.gone = True
            self.changed.notify_all()

    def _on_report(self, kind: bytes, payload: bytes) -> None:
        with self.changed:
            if kind == READY:
                log.debug("Mimi fork server %d built: %s", self.pid, payload.decode())
            elif kind == ERROR:
                self.build_error = payload.decode(errors="replace")
                log.debug("Mimi fork server %d: %s", self.pid, self.build_error)
            elif kind == PROBING:
                self._probe_pid = int(json.loads(payload)["pid"])
            elif kind == FORKED:
                info = json.loads(payload)
                child = self._by_request.pop(int(info["id"]), None)
                if child is not None and not child.pid:
                    child._pid = int(info["pid"])
                    self.by_pid[child.pid] = child
            elif kind == EXITED:
                info = json.loads(payload)
                if int(info["pid"]) == self._probe_pid:
                    self.probe_code = int(info["code"])
                exited = self.by_pid.pop(int(info["pid"]), None)
                if exited is not None:
                    exited.returncode = int(info["code"])
            self.changed.notify_all()

    def _drain_stderr(self) -> None:
        stream = self._proc.stderr
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            log.debug("mimi fork server %d: %s", self.pid, raw.decode(errors="replace").rstrip())
        stream.close()


# --- the one started ahead of time -----------------------------------------------------------
_spare: ForkServer | None = None
_spare_lock = threading.Lock()


def prestart() -> None:
    """Start a server now, for the next codec to take (a command that will open a codec calls
    this first thing; `discard_spares` ends it if nobody took it)."""
    global _spare
    with _spare_lock:
        if _spare is None:
            try:
                _spare = ForkServer()
            except OSError as e:  # the codec will start its workers without one
                log.warning("cannot start the Mimi fork server: %s", e)


def take_spare() -> ForkServer | None:
    global _spare
    with _spare_lock:
        server, _spare = _spare, None
    if server is not None and not server.usable:
        server.close()
        return None
    return server


def discard_spares() -> None:
    """End the prestarted server nobody took (a command that failed early, or --help)."""
    server = take_spare()
    if server is not None:
        server.close()
