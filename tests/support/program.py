"""`python -m assistant ...` in the background, as a user would start it, its output read line by
line while it runs. `wait()` returns only once every line is in: the readers are joined, not
given a moment to drain, so a last line ("Stopped.") is never missed under load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

# How long the output may stay open after the program ended: only a process it left behind,
# still holding the pipe, keeps it open that long.
DRAIN_S = 10.0


class Program:
    """The assistant in the background. `stdout` and `stderr` are kept apart unless
    `merge_stderr` (then both are in `stdout`). `listening` is set at the "Listening" line."""

    def __init__(
        self,
        *args: str,
        home: Path,
        env: dict[str, str] | None = None,
        merge_stderr: bool = False,
    ) -> None:
        env = (os.environ if env is None else env) | {
            "ASSISTANT_HOME": str(home),
            "HF_HUB_OFFLINE": "1",
            "COLUMNS": "100",
        }
        env.pop("ASSISTANT_DEBUG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "assistant", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.listening = threading.Event()
        self._readers = [self._reader(self.proc.stdout, self.out)]
        if not merge_stderr:
            self._readers.append(self._reader(self.proc.stderr, self.err))

    def _reader(self, stream: IO[str] | None, into: list[str]) -> threading.Thread:
        assert stream is not None

        def read() -> None:
            for line in stream:
                into.append(line)
                if "Listening" in line:
                    self.listening.set()

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    def wait(self, timeout: float = 60) -> int:
        """The exit code, once the program ended and all its output was read. One still
        running after `timeout` is killed, and the wait fails."""
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(DRAIN_S)
            assert not reader.is_alive(), (
                f"the program ended (exit {code}) but its output stayed open {DRAIN_S:.0f} s: "
                f"a process it started still holds it\n{self.stdout}{self.stderr}"
            )
        return code

    def kill(self) -> None:
        """End it now if it still runs (a test's way out)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


def run_bounded(
    args: list[str], *, env: dict[str, str], timeout: float, cwd: Path | None = None
) -> tuple[int | None, str, float]:
    """`args` in a session of its own, stdout and stderr together: (exit code, or None when it
    had to be killed at `timeout` with everything it started; output; seconds)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    return code, out, time.monotonic() - started
