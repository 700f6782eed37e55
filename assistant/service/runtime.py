"""Running the service: one instance per user (a lock), its address and token in a private
file (see info.py), the HTTP API on an asyncio loop until `quit`, SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import resource
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import IO

from aiohttp import web
from aiohttp.http import HttpProcessingError

from ..errors import ServiceError
from .connections import ConnectionGuard, Limits
from .controller import Controller
from .http_api import Api
from .info import DEFAULT_PORT, ServiceInfo, info_file, read_info, service_dir, write_info

logger = logging.getLogger(__name__)

BACKLOG = 1024  # connections the kernel queues before we accept them (capped by the OS)
SHUTDOWN_GRACE_S = 2.0  # requests still running at shutdown get this long to finish
FD_RESERVE = 256  # descriptors beside the connections: model files, audio, logs, threads
LINGER_S = 1.0  # after refusing a request, read what is left of its body this long, then close


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


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port.

    SO_REUSEADDR: the connections of a service that just stopped (or was killed) linger in
    TIME_WAIT for a minute; without it the same port could not be bound again until they are
    gone. It does not let two programs listen on one address: that stays an error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ServiceError(
                f"port {port} on 127.0.0.1 is already in use by another program",
                hint="choose another with --port (0 picks a free one)",
            ) from None
        raise ServiceError(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None
    return sock


def serve(
    controller: Controller,
    port: int = DEFAULT_PORT,
    *,
    on_ready: Callable[[ServiceInfo], None] = lambda info: None,
    preload: bool = True,
    limits: Limits | None = None,
) -> None:
    """Run until SIGINT or SIGTERM (or `ctl quit`), then stop the conversation and clean up."""
    limits = limits or Limits()
    with single_instance():
        token = secrets.token_urlsafe(32)
        sock = bind(port)
        try:
            limits = _fit_descriptors(limits)
            info = ServiceInfo(os.getpid(), sock.getsockname()[1], token)
            asyncio.run(_serve(controller, sock, info, limits, on_ready, preload))
        finally:
            sock.close()
            controller.shutdown()
            with contextlib.suppress(OSError):
                info_file().unlink()


async def _serve(
    controller: Controller,
    sock: socket.socket,
    info: ServiceInfo,
    limits: Limits,
    on_ready: Callable[[ServiceInfo], None],
    preload: bool,
) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    guard = ConnectionGuard(limits)
    api = Api(controller, guard, stopping)
    runner = web.AppRunner(
        api.app(info.token, info.port),
        access_log=None,  # the CLI prints state; a line per dashboard poll would drown the log
        logger=_protocol_logger(),
        keepalive_timeout=limits.idle_s,
        lingering_time=LINGER_S,
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )
    await runner.setup()
    assert runner.server is not None  # set by setup()
    server = await loop.create_server(guard.factory(runner.server), sock=sock, backlog=BACKLOG)
    guard.start()
    write_info(info)
    signals = _stop_on_signals(loop, stopping)
    try:
        if preload:
            controller.load()
        on_ready(info)
        await stopping.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        stopping.set()  # live feeds end
        server.close()  # no new connections
        await runner.cleanup()  # idle ones closed, running requests given SHUTDOWN_GRACE_S
        await guard.stop()
        api.close()
        logger.info(
            "service stopped; connections refused %d, evicted %d, closed idle %d",
            guard.refused,
            guard.evicted,
            guard.idle_closed,
        )


def _stop_on_signals(
    loop: asyncio.AbstractEventLoop, stopping: asyncio.Event
) -> list[signal.Signals]:
    """SIGINT/SIGTERM stop the service like `ctl quit` (signals reach the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return []
    sigs = [signal.SIGINT, signal.SIGTERM]
    for sig in sigs:
        loop.add_signal_handler(sig, stopping.set)
    return sigs


def _fit_descriptors(limits: Limits) -> Limits:
    """Make room for the connections in the open-file limit (macOS starts apps at 256),
    raising the soft limit up to the hard one; serve fewer if it cannot be raised."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.max_open + limits.max_refusing + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            logger.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, e)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fewer = max(16, soft - limits.max_refusing - FD_RESERVE)
        logger.warning("open-file limit %d: serving at most %d connections", soft, fewer)
        return replace(limits, max_open=fewer)
    return limits


class _ClientFaults(logging.Filter):
    """A request that is not valid HTTP is the caller's fault: aiohttp answers it 400 and
    logs it as an error with a traceback; here it becomes one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            record.msg = f"{record.getMessage()}: {record.exc_info[1].message}"
            record.args = ()
            record.exc_info = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _protocol_logger() -> logging.Logger:
    log = logging.getLogger(__name__ + ".http")
    if not any(isinstance(f, _ClientFaults) for f in log.filters):
        log.addFilter(_ClientFaults())
    return log
