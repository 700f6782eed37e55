"""Talking to the running service: `assistant ctl` and the menu bar use this."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import requests

from ..errors import ServiceError, ServiceNotRunningError, ServiceRefusedError
from .info import ServiceInfo, read_info

TIMEOUT_S = 5.0
BUSY_RETRIES, BUSY_RETRY_S = 6, 0.25  # a service at its connection limit frees one within 1 s
STOP_TIMEOUT_S = 30.0  # a conversation ends and its session is written before the service exits


class ServiceClient:
    def __init__(self, info: ServiceInfo) -> None:
        self.info = info
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {info.token}"

    @classmethod
    def connect(cls) -> ServiceClient:
        """The running service, found through its service file."""
        info = read_info()
        if info is None:
            raise ServiceNotRunningError(
                "the assistant service is not running", hint="start it with `assistant serve`"
            )
        return cls(info)

    # --- requests -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self._call("GET", "/api/status")

    def live(self) -> dict[str, Any]:
        return self._call("GET", "/api/live")

    def start(self) -> dict[str, Any]:
        return self._call("POST", "/api/start")

    def stop(self) -> dict[str, Any]:
        return self._call("POST", "/api/stop")

    def mute(self, muted: bool) -> dict[str, Any]:
        return self._call("POST", "/api/mute", {"muted": muted})

    def listen_first(self, on: bool) -> dict[str, Any]:
        return self._call("POST", "/api/listen-first", {"listen_first": on})

    def switch(
        self, voice: str | None = None, quant: str | None = None, checkpoint: str | None = None
    ) -> dict[str, Any]:
        body = {k: v for k, v in (("voice", voice), ("quant", quant), ("checkpoint", checkpoint))}
        return self._call("POST", "/api/switch", {k: v for k, v in body.items() if v})

    def quit(self) -> dict[str, Any]:
        """Ask the service to stop; it answers first, then stops (see `wait_stopped`)."""
        return self._call("POST", "/api/quit")

    def wait_stopped(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Wait until the service's process has ended (its port and lock are free then)."""
        import psutil

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if psutil.Process(self.info.pid).status() == psutil.STATUS_ZOMBIE:
                    return True  # ended; its parent has not collected it yet
            except psutil.NoSuchProcess:
                return True
            time.sleep(0.05)
        return False

    def stream(self) -> Iterator[dict[str, Any]]:
        """The live feed (status, metrics, transcript), about twice a second, until closed."""
        try:
            with self._session.get(self.info.url + "/api/stream", stream=True, timeout=10) as r:
                self._check(r)
                for line in r.iter_lines(decode_unicode=True):
                    if isinstance(line, str) and line.startswith("data: "):
                        yield json.loads(line[len("data: ") :])
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ):
            raise self._not_running() from None  # a feed cut off: the service went away

    # --- internals ----------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            for attempt in range(BUSY_RETRIES + 1):
                r = self._session.request(
                    method,
                    self.info.url + path,
                    json=body if method == "POST" else None,
                    timeout=TIMEOUT_S,
                )
                # 503 with Retry-After: turned away at the connection limit, unread; ask again.
                if r.status_code != 503 or "Retry-After" not in r.headers:
                    break
                if attempt < BUSY_RETRIES:
                    time.sleep(BUSY_RETRY_S)
        except (requests.ConnectionError, requests.Timeout):
            raise self._not_running() from None
        except requests.RequestException as e:
            raise ServiceError(f"the service's answer to {path} was cut short: {e}") from None
        self._check(r)
        try:
            answer = r.json()
        except ValueError:
            raise ServiceError(f"the service's answer to {path} is not JSON") from None
        if not isinstance(answer, dict):
            raise ServiceError(f"the service's answer to {path} is not a JSON object")
        return answer

    def _check(self, r: requests.Response) -> None:
        if r.ok:
            return
        try:
            reason = r.json().get("error", r.text)
        except ValueError:
            reason = r.text or r.reason
        raise ServiceRefusedError(f"the service refused: {reason}", status=r.status_code)

    def _not_running(self) -> ServiceNotRunningError:
        return ServiceNotRunningError(
            f"no answer from the assistant service at {self.info.url} (pid {self.info.pid})",
            hint="it may have stopped; start it with `assistant serve`",
        )
