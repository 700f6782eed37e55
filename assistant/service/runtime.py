"""Running the service: one instance per user (a lock), its address and token in a private
file (see info.py)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from ..errors import ServiceError
from .controller import Controller
from .http_api import ServiceServer
from .info import DEFAULT_PORT, ServiceInfo, info_file, read_info, service_dir, write_info


@contextlib.contextmanager
def single_instance() -> Iterator[IO[str]]:
    """Hold the service lock, or fail naming the instance that holds it."""
    folder = service_dir()
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    handle = (folder / "lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        other = read_info()
        where = f" (pid {other.pid}, {other.url})" if other else ""
        raise ServiceError(
            f"another assistant service is already running{where}",
            hint="`assistant ctl status` talks to it; `assistant ctl quit` stops it",
        ) from None
    try:
        yield handle
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def bind(port: int, controller: Controller, token: str) -> ServiceServer:
    try:
        return ServiceServer(port, controller, token)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ServiceError(
                f"port {port} on 127.0.0.1 is already in use by another program",
                hint="choose another with --port (0 picks a free one)",
            ) from None
        raise ServiceError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None


def serve(
    controller: Controller,
    port: int = DEFAULT_PORT,
    *,
    on_ready: Callable[[ServiceInfo], None] = lambda info: None,
    preload: bool = True,
) -> None:
    """Run until SIGINT or SIGTERM (or `ctl quit`), then stop the conversation and clean up."""
    with single_instance():
        token = secrets.token_urlsafe(32)
        server = bind(port, controller, token)
        info = ServiceInfo(os.getpid(), server.port, token)
        write_info(info)
        previous = _stop_on_signals(server)
        try:
            if preload:
                controller.load()
            on_ready(info)
            server.serve_forever(poll_interval=0.2)
        finally:
            server.stopping.set()
            controller.shutdown()
            server.server_close()
            with contextlib.suppress(OSError):
                info_file().unlink()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _stop_on_signals(server: ServiceServer) -> dict[int, Any]:
    """SIGINT/SIGTERM end serve_forever (from another thread: it cannot stop its own)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
