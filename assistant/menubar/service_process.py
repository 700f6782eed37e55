"""Starting `assistant serve` when no service runs, and waiting for it without blocking the UI.

The service is started detached (its own session, output appended to a log) so it is not tied
to the menu bar's terminal or process group; the menu bar polls for it on its timer instead of
sleeping, and learns why it failed from the last line of that log.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ..errors import ServiceError, ServiceNotRunningError
from ..service.info import ServiceInfo, service_dir
from .prefs import Prefs

# Python start, the MLX import and binding the port; the model loads after the service answers.
SERVE_TIMEOUT_S = 120.0


class Client(Protocol):
    """What the menu bar uses of assistant.service.client.ServiceClient."""

    info: ServiceInfo

    def status(self) -> dict[str, Any]: ...

    def live(self) -> dict[str, Any]: ...

    def start(self) -> dict[str, Any]: ...

    def stop(self) -> dict[str, Any]: ...

    def mute(self, muted: bool) -> dict[str, Any]: ...

    def listen_first(self, on: bool) -> dict[str, Any]: ...

    def switch(
        self, voice: str | None = None, quant: str | None = None, checkpoint: str | None = None
    ) -> dict[str, Any]: ...

    def quit(self) -> dict[str, Any]: ...


def serve_command(prefs: Prefs) -> list[str]:
    voice, quant = ["--voice", prefs.voice], ["--quant", prefs.quant]
    first = ["--listen-first"] if prefs.listen_first else []
    return [sys.executable, "-m", "assistant", "serve", *voice, *quant, *first]


def service_log() -> Path:
    return service_dir() / "menubar-serve.log"


class ServiceLauncher:
    """The `assistant serve` process this app started, if any."""

    def __init__(
        self,
        connect: Callable[[], Client],
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = SERVE_TIMEOUT_S,
    ) -> None:
        self._connect = connect
        self._clock = clock
        self._timeout_s = timeout_s
        self.process: subprocess.Popen | None = None
        self._deadline: float | None = None

    @property
    def waiting(self) -> bool:
        """Started, and not answering yet."""
        return self._deadline is not None

    def spawn(self, prefs: Prefs) -> None:
        command = serve_command(prefs)
        log_path = service_log()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            stamp = datetime.now().isoformat(timespec="seconds")
            log.write(f"\n--- {stamp} menu bar runs: {shlex.join(command)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # not killed with the menu bar's process group
                    close_fds=True,
                )
            except OSError as e:
                raise ServiceError(f"cannot start the assistant service: {e}") from None
        self._deadline = self._clock() + self._timeout_s

    def poll(self) -> Client | None:
        """The client once a service answers; None while still waiting.

        Raises ServiceError (with the log's last line) if the process exited without a service
        answering, or if none answered in time (then the process is stopped)."""
        if self._deadline is None:
            return None
        try:
            client = self._connect()
            client.status()  # a service file can outlive a crashed service: ask it
        except ServiceNotRunningError:
            pass
        else:
            self._deadline = None
            return client
        code = None if self.process is None else self.process.poll()
        if code is not None:
            self._deadline = None
            raise ServiceError(
                f"the assistant service exited (code {code}): {last_line(service_log())}",
                hint=f"see {service_log()}",
            )
        if self._clock() > self._deadline:
            self._deadline = None
            self.terminate()
            raise ServiceError(
                f"the assistant service did not answer within {self._timeout_s:.0f} s",
                hint=f"see {service_log()}",
            )
        return None

    def owns(self, client: Client) -> bool:
        """Whether `client` talks to the service this app started (and it still runs)."""
        return (
            self.process is not None
            and self.process.poll() is None
            and client.info.pid == self.process.pid
        )

    def terminate(self) -> None:
        """Stop the started process if it still runs (SIGTERM: the service cleans up)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()


def last_line(path: Path, tail_bytes: int = 4096) -> str:
    """The last non-empty line of a log: the one-line error `assistant serve` ends with."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return "no log"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
