"""The codec workers' wire: how the parent and a worker (or the fork server) frame messages.

A message is one kind byte, a little-endian uint32 payload length, the payload. Between the
parent and one worker (its stdin and stdout pipes):

    parent -> worker  C <json>    configure (first): {"op", "mimi", "codebooks", "warmup",
                                  "max_seq_len"}
                      F <frame>   encode: float32[1920]; decode: uint32[codebooks]
                      Q           quit (also before the configuration)
    worker -> parent  R <json>    ready: {"build_s", "warmup_s", "pid"}
                      O <output>  encode: uint32[codebooks] (empty: no codes yet); decode: float32
                      E <text>    the request failed (one line); the worker keeps serving

Between the parent and the fork server (a Unix stream socket, which can carry descriptors):

    parent -> server  C <json>    configure: {"mimi", "codebooks", "max_seq_len"}
                      K <id>      fork a worker (uint32 id); its stdin, stdout and stderr pipes
                                  ride along as SCM_RIGHTS descriptors
                      Q           quit
    server -> parent  R <json>    built: {"build_s"} (or E <text>: the build failed; forked
                                  workers then report that error as their own)
                      P <json>    probing fork safety: {"pid"} (its exit comes as X)
                      W <json>    forked: {"id", "pid"}
                      X <json>    a forked worker exited: {"pid", "code"} (code < 0: a signal)
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time

HEADER = struct.Struct("<cI")
CONFIGURE, FRAME, QUIT, READY, OUTPUT, ERROR = b"C", b"F", b"Q", b"R", b"O", b"E"
FORK, FORKED, EXITED, PROBING = b"K", b"W", b"X", b"P"
FORK_ID = struct.Struct("<I")
MAX_MESSAGE = 1 << 20  # far above any frame: a longer length means a broken stream
FORK_FDS = 3  # a forked worker's stdin (read end), stdout and stderr (write ends)


def write_message(fd: int, kind: bytes, payload: bytes = b"") -> None:
    data = HEADER.pack(kind, len(payload)) + payload
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
    header = _read_exact(fd, HEADER.size, deadline)
    if header is None:
        return None
    return _finish(fd, header, deadline)


def _finish(fd: int, header: bytes, deadline: float | None) -> tuple[bytes, bytes] | None:
    kind, length = HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ValueError(f"message of {length} bytes: the stream is broken")
    payload = _read_exact(fd, length, deadline) if length else b""
    if payload is None:
        return None
    return kind, payload


def send_fork(sock: socket.socket, request: int, fds: list[int]) -> None:
    """A fork request, its descriptors attached to its first byte (a stream socket delivers
    them with the read that takes that byte)."""
    socket.send_fds(sock, [HEADER.pack(FORK, FORK_ID.size) + FORK_ID.pack(request)], fds)


def read_server_message(sock: socket.socket) -> tuple[bytes, bytes, list[int]] | None:
    """The fork server's side: (kind, payload, descriptors), or None at end-of-file."""
    data, fds, _flags, _addr = socket.recv_fds(sock, HEADER.size, FORK_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    short = HEADER.size - len(data)
    rest = _read_exact(sock.fileno(), short, None) if short else b""
    message = None if rest is None else _finish(sock.fileno(), data + rest, None)
    if message is None:
        for fd in fds:
            os.close(fd)
        return None
    return message[0], message[1], fds
