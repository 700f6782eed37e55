"""Where the running service can be found: a small private file, read by its clients.

    <data dir>/service/lock          held (flock) while a service runs: one instance at a time
    <data dir>/service/service.json  {"pid", "port", "token", "url"}, mode 0600: what clients
                                     (`assistant ctl`, the menu bar) read to find and call it

Kept apart from the service itself so clients start fast (no MLX import).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServiceError
from ..files import read_regular
from ..paths import data_dir
from ..strict_json import load_strict

DEFAULT_PORT = 8737  # the loopback port `assistant serve` listens on unless told otherwise
MAX_INFO_BYTES = 4096  # a pid, a port, a token and a URL


@dataclass(frozen=True)
class ServiceInfo:
    pid: int
    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The web dashboard; the token rides in the fragment, which browsers never send."""
        return f"{self.url}/#token={self.token}"

    @property
    def conversations_url(self) -> str:
        """The dashboard's Conversations page (past conversations: list, play, search)."""
        return f"{self.url}/#view=conversations&token={self.token}"


def service_dir() -> Path:
    return data_dir() / "service"


def info_file() -> Path:
    return service_dir() / "service.json"


def read_info() -> ServiceInfo | None:
    """The running service's address and token, or None if no service file is there."""
    path = info_file()
    if not os.path.lexists(path):
        return None
    # Read like any file: a FIFO or a device put there is named, never waited on.
    data = read_regular(path, MAX_INFO_BYTES, ServiceError, what="service file")
    try:
        raw = load_strict(data, max_depth=2, error=ServiceError, path=path)
        return ServiceInfo(int(raw["pid"]), int(raw["port"]), str(raw["token"]))
    except (ServiceError, ValueError, KeyError, TypeError):
        return None  # not one a service wrote (they are written whole): no service there


def write_info(info: ServiceInfo) -> None:
    path = info_file()
    tmp = path.with_suffix(".partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": info.pid, "port": info.port, "token": info.token, "url": info.url}, f)
    os.replace(tmp, path)
