"""`assistant serve` as a real subprocess, for the service and web dashboard tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

from assistant.service.client import ServiceClient
from assistant.service.info import read_info

T = TypeVar("T")
SPEECH = Path(str(resources.files("assistant").joinpath("data/hello.wav")))


class ServiceProcess:
    """`assistant serve *args` on `port` (0: any free one); `close()` stops it, whatever
    happened (quit, else kill)."""

    def __init__(self, *args: str, port: int = 0) -> None:
        self.log = Path(os.environ["ASSISTANT_HOME"]) / f"serve-{time.monotonic_ns()}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--port", str(port), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            self.client = self._connect()
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout: float = 60.0) -> ServiceClient:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = read_info()
            if info is not None and info.pid == self.proc.pid:
                return ServiceClient(info)
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"no service file after {timeout} s: {self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.client.quit()
                self.proc.wait(timeout=20)
            except Exception:  # no client yet, or it did not stop: end it
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        left = read_info()
        assert left is None or left.pid != self.proc.pid or self.proc.returncode < 0, left


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, what: str = "") -> T:
    """Poll until `predicate()` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")
