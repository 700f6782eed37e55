"""The worker's side of the codec: one rustymimi instance answering one frame at a time, and
the fork server that builds that instance once and forks ready workers from it.

A standalone worker (`python -m assistant.codec.child`) imports numpy and rustymimi,
waits for its configuration, builds its instance, says "ready", then answers one request per
frame (the messages: `wire`). Because it imports before it knows its Mimi file, it can
start at the top of a command, while the parent still imports and checks the checkpoint.

The fork server (`... --fork-server FD`, FD a Unix socket to the parent) builds the instance
once, then forks a worker per request. Why: building costs each process ~0.5 s of CPU (most
of it page faults, copying the 385 MB file) on top of ~0.15 s of imports; on a 2-core machine
that CPU, twice over at start-up, was time "Listening" waited for. A forked worker is ready in
~25 ms, and shares the weights' pages with the server (copy-on-write; weights are never
written), so two workers hold one copy of them, not two.

Fork safety: the server forks while single-threaded (its numpy's OpenBLAS is held to one
thread, and an instance that never ran a step has not started rustymimi's thread pool; each
worker starts its own). Whatever a platform's libraries do at fork, a probe proves it: right
after the build the server forks a throwaway child that encodes and decodes one frame under
an alarm (a hang dies within `PROBE_TIMEOUT_S`) and reports how it ended; a failed probe makes
the parent spawn standalone workers instead. (Not the first worker itself: rustymimi's
`reset` does not undo a step, so a worker must start with no step taken.)

Each worker's stdout is redirected to its stderr before rustymimi loads, so nothing it prints
can corrupt the protocol; the parent logs the stderr. A worker whose parent dies reads
end-of-file and exits, also while it waits for its configuration; so does the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from ..frames import FRAME_SAMPLES
from .wire import (
    CONFIGURE,
    ERROR,
    EXITED,
    FORK,
    FORK_FDS,
    FORK_ID,
    FORKED,
    OUTPUT,
    PROBING,
    QUIT,
    READY,
    read_message,
    read_server_message,
    write_message,
)

PROBE_TIMEOUT_S = 10  # a forked worker's first step: ~0.1 s here, slower only when swapping
REAP_INTERVAL_S = 0.05  # how often the server looks for exited workers (reported to the parent)


@dataclass(frozen=True)
class Built:
    """An instance built before the worker knew its request (the fork server's), or why not."""

    key: tuple[str, int, int | None]  # (mimi path, codebooks, max_seq_len)
    tokenizer: Any
    error: str | None
    build_s: float


def _first_line(e: BaseException) -> str:
    # RUST_BACKTRACE=1 appends a long candle backtrace to the message: keep the headline.
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _import_rustymimi() -> tuple[Any, BaseException | None]:
    try:
        import rustymimi
    except ImportError as e:
        return None, e
    return rustymimi, None


def build(key: tuple[str, int, int | None]) -> Built:
    """One instance for `key`; a failure is kept as its one-line reason."""
    rustymimi, missing = _import_rustymimi()
    mimi, codebooks, max_seq_len = key
    t0 = time.perf_counter()
    try:
        if missing is not None:
            raise missing
        tok = rustymimi.Tokenizer(mimi, num_codebooks=codebooks, max_seq_len=max_seq_len)
    except BaseException as e:  # a Rust panic is a BaseException: report it, don't die silently
        return Built(key, None, f"rustymimi cannot load this Mimi file ({_first_line(e)})", 0.0)
    return Built(key, tok, None, time.perf_counter() - t0)


def serve(proto_in: int, proto_out: int, built: Built | None = None) -> int:
    """A worker's life after its imports: configuration, instance (`built` when it matches),
    warm-up, "ready", then one answer per frame; returns the exit status."""
    import numpy as np

    message = read_message(proto_in)
    if message is None or message[0] == QUIT:  # a spare that was not needed
        return 0
    if message[0] != CONFIGURE:
        write_message(proto_out, ERROR, f"expected a configuration, got {message[0]!r}".encode())
        return 1
    config = json.loads(message[1])
    op, codebooks = config["op"], int(config["codebooks"])
    key = (config["mimi"], codebooks, config["max_seq_len"])
    warmup = int(config["warmup"])
    if built is not None and built.key == key:
        build_s = 0.0  # forked ready-built: the build was the server's
    else:
        built = build(key)
        build_s = built.build_s
    if built.error is not None:
        write_message(proto_out, ERROR, built.error.encode())
        return 1
    tok = built.tokenizer

    def step(x: Any) -> Any:
        return tok.encode_step(x) if op == "encode" else tok.decode_step(x)

    t1 = time.perf_counter()
    try:
        # First calls through Mimi can be slow (allocation): done here, not on a live frame.
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
    ready = {"build_s": build_s, "warmup_s": time.perf_counter() - t1, "pid": os.getpid()}
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


def run_standalone() -> int:
    proto_in, proto_out = 0, os.dup(1)
    os.dup2(2, 1)  # from here on, stray prints (Python's or Rust's) go to stderr
    import numpy  # noqa: F401  (imported while the parent still decides what to ask)

    _import_rustymimi()
    return serve(proto_in, proto_out)


# --- the fork server -------------------------------------------------------------------------
def _reap(children: set[int], sock: socket.socket) -> None:
    """Collect exited workers and tell the parent how each ended (it cannot wait for them:
    they are this process's children, not its)."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        report = {"pid": pid, "code": os.waitstatus_to_exitcode(status)}
        with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
            write_message(sock.fileno(), EXITED, json.dumps(report).encode())


def _become_worker(sock: socket.socket, fds: list[int], built: Built) -> None:
    """In the forked child: the request's pipes become stdin and stderr (stdout too: stray
    prints), the protocol goes out on its own pipe; never returns."""
    code = 1
    try:
        sock.close()
        stdin_r, stdout_w, stderr_w = fds
        os.dup2(stdin_r, 0)
        os.dup2(stderr_w, 1)
        os.dup2(stderr_w, 2)
        os.close(stdin_r)
        os.close(stderr_w)
        code = serve(0, stdout_w, built)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _probe(built: Built) -> None:
    """In a throwaway forked child: one frame encoded and one decoded (every kernel and thread
    pool a worker of either kind uses), ended by an alarm if it hangs (SIGALRM's default
    action ends the process); never returns. At low priority: its verdict is not needed for
    start-up, the CPU is."""
    import numpy as np

    code = 1
    try:
        os.nice(10)
        signal.alarm(PROBE_TIMEOUT_S)
        tok = built.tokenizer
        codes = tok.encode_step(np.zeros((1, 1, FRAME_SAMPLES), dtype=np.float32))
        pcm = tok.decode_step(np.zeros((1, built.key[1], 1), dtype=np.uint32))
        code = 0 if codes is not None and pcm is not None else 1
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def run_fork_server(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    os.dup2(2, 1)
    import numpy  # noqa: F401

    message = read_server_message(sock)
    if message is None or message[0] == QUIT:  # a spare that was not needed
        return 0
    kind, payload, fds = message
    for extra in fds:
        os.close(extra)
    if kind != CONFIGURE:
        write_message(sock.fileno(), ERROR, f"expected a configuration, got {kind!r}".encode())
        return 1
    config = json.loads(payload)
    built = build((config["mimi"], int(config["codebooks"]), config["max_seq_len"]))
    if built.error is None:
        write_message(sock.fileno(), READY, json.dumps({"build_s": built.build_s}).encode())
    else:
        write_message(sock.fileno(), ERROR, built.error.encode())
    children: set[int] = set()
    if built.error is None:
        probe = os.fork()
        if probe == 0:
            sock.close()
            _probe(built)
        children.add(probe)
        write_message(sock.fileno(), PROBING, json.dumps({"pid": probe}).encode())
    while True:
        _reap(children, sock)
        if not select.select([sock], [], [], REAP_INTERVAL_S)[0]:
            continue
        message = read_server_message(sock)
        if message is None or message[0] == QUIT:
            break
        kind, payload, fds = message
        if kind != FORK or len(fds) != FORK_FDS:
            for extra in fds:
                os.close(extra)
            write_message(sock.fileno(), ERROR, f"unexpected request {kind!r}".encode())
            continue
        pid = os.fork()
        if pid == 0:
            _become_worker(sock, fds, built)
        for extra in fds:  # the worker's now: its parent sees end-of-file when it exits
            os.close(extra)
        children.add(pid)
        (request,) = FORK_ID.unpack(payload)
        write_message(sock.fileno(), FORKED, json.dumps({"id": request, "pid": pid}).encode())
    # The workers serve their own pipes until the parent closes them; they need nothing here.
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--fork-server":
        return run_fork_server(int(argv[1]))
    return run_standalone()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
