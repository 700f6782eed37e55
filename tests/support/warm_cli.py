"""`python -m assistant ...` in a fresh process, without paying for Python's start each time.

A command's start is mostly imports: numpy, MLX, typer and rich take ~0.3 s of CPU before the
command reads its first argument, and the corpora run ~150 commands. `WarmStarter` keeps one
server process that has imported those libraries (only libraries that read no environment and
start no thread at import: never huggingface_hub or the assistant itself) and forks it once per
command. The child is a fresh process of its own, as `subprocess` would make it: its own pid and
session, the environment, working folder, stdin and output it is given, `sys.argv` and
`sys.path` as `python -m assistant` sets them; it imports the assistant afresh and runs it as
`__main__`, and ends through the interpreter's own exit (atexit handlers, threads joined,
output flushed, SystemExit's code). What it shares with the server is only memory pages of
modules that no command writes to.

Where a process cannot be forked safely (macOS: system frameworks refuse a fork after they
start) `run_assistant` starts `python -m assistant` itself.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.program import run_bounded

# What the commands import that reads no environment and starts no thread when imported (typer
# reads TYPER_USE_RICH, which no test sets). Never huggingface_hub (it reads HF_HOME once),
# sounddevice (it opens PortAudio), or the assistant.
PRELOAD = (
    *("numpy", "mlx.core", "mlx.nn", "moshi_mlx", "sentencepiece", "sphn", "psutil", "requests"),
    *("typer", "rich.console", "rich.table", "rich.progress", "rich.live", "rich.markup"),
)
FORK_OK = sys.platform.startswith("linux")


class WarmStarter:
    """The server: started at construction, ended by `close()`."""

    def __init__(self) -> None:
        # (packets: one request a message, however long its environment)
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.warm_cli", str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            cwd=Path(__file__).resolve().parents[2],
        )
        theirs.close()
        self._pending = b""
        self.last_pid = 0  # the last command's (its session's id too)

    def run(
        self, args: list[str], *, env: dict[str, str], timeout: float, cwd: Path | None = None
    ) -> tuple[int | None, str, float]:
        """Like `program.run_bounded([python, -m, assistant, *args], ...)`: (exit code, or None
        when it had to be killed at `timeout` with everything it started; stdout and stderr
        together; seconds)."""
        with tempfile.TemporaryFile() as out:
            started = time.monotonic()
            request = {"args": args, "env": env, "cwd": str(cwd or os.getcwd())}
            socket.send_fds(self._sock, [json.dumps(request).encode()], [out.fileno()])
            pid = self.last_pid = int(self._reply(None))
            try:
                status: int | None = int(self._reply(started + timeout))
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)  # (its own session: all it started too)
                self._reply(None)
                status = None
            seconds = time.monotonic() - started
            out.seek(0)
            text = out.read().decode(errors="replace")
        return (None if status is None else os.waitstatus_to_exitcode(status)), text, seconds

    def _reply(self, deadline: float | None) -> str:
        """The server's next line, waiting until `deadline` (monotonic; None: for ever)."""
        while b"\n" not in self._pending:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and (wait <= 0 or not select.select([self._sock], [], [], wait)[0]):
                raise TimeoutError
            try:
                chunk = self._sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise RuntimeError("the warm starter ended: its error is in the test's output")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        self._sock.close()  # the server ends when its requests do
        self._proc.wait(timeout=30)


def run_assistant(
    starter: WarmStarter | None,
    args: list[str],
    *,
    env: dict[str, str],
    timeout: float,
    cwd: Path | None = None,
    python: str = sys.executable,
) -> tuple[int | None, str, float]:
    """`python -m assistant *args`, forked from `starter` when there is one (it runs this
    interpreter), else started by `python`."""
    if starter is None:
        return run_bounded([python, "-m", "assistant", *args], env=env, timeout=timeout, cwd=cwd)
    return starter.run(args, env=env, timeout=timeout, cwd=cwd)


# --- the server --------------------------------------------------------------------------------


def _serve(sock: socket.socket) -> dict[str, Any] | None:
    """Answer requests until the socket closes (None); in a forked child, return its request."""
    replies = sock.makefile("w")
    while True:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 1)
        if not data:
            return None
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            replies.close()
            sock.close()
            os.setsid()
            os.dup2(fds[0], 1)
            os.dup2(fds[0], 2)
            os.close(fds[0])
            return request
        os.close(fds[0])
        replies.write(f"{pid}\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        replies.write(f"{status}\n")
        replies.flush()


def main(fd: int) -> None:
    import importlib
    import runpy

    for name in PRELOAD:
        importlib.import_module(name)
    request = _serve(socket.socket(fileno=fd))
    if request is None:
        return
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(str(request["cwd"]))
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["-m", *request["args"]]
    sys.path[0] = os.getcwd()  # as `python -m` puts it
    runpy.run_module("assistant", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
