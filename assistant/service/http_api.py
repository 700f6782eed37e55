"""The control API and the web dashboard, on aiohttp, on the loopback interface only.

Who may call it and what a request may carry: http_policy.py. How many connections, for how
long: connections.py.

    GET  /api/status              state, model, mute, last error
    GET  /api/live                status + metrics snapshot + transcript (the dashboard's feed)
    GET  /api/stream              the same as server-sent events, twice a second
    POST /api/start | /api/stop
    POST /api/mute                {"muted": true|false}
    POST /api/listen-first        {"listen_first": true|false}  (from the next conversation)
    POST /api/switch              {"voice": "moshika", "quant": "q8"} or {"checkpoint": "..."}
    POST /api/quit                answer, then stop the conversation and the service

    GET    /api/sessions[?q=words]   past conversations, newest first (history_api.py)
    GET    /api/sessions/{id}        one: details, both sides' lines, delay over time
    GET    /api/sessions/{id}/audio  its stereo WAV, by byte ranges (a `?key=` link)
    DELETE /api/sessions/{id}        delete it (409 while recorded or played; 404 unknown)

The controller is synchronous and thread-based; handlers call it on worker threads so the
event loop never waits on it: reads on two threads, actions one at a time on a third; the
history's disk work on two more of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web

from .connections import ConnectionGuard, Limits
from .controller import Controller
from .history_api import HistoryApi, is_audio_path
from .http_policy import (
    BODY,
    NO_STORE,
    bearer_token,
    in_flight,
    json_errors,
    json_response,
    local_only,
    read_body,
    refusal,
)

STREAM_PERIOD_S = 0.5
LIVE_MAX_AGE_S = 0.2  # callers within this long share one snapshot (dashboards, streams)
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/conversations.js": ("conversations.js", "text/javascript; charset=utf-8"),
}
# Everything the page needs is served from here: nothing from the internet (the conversations'
# audio included: media-src falls back to 'self').
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self'"
FIELDS = {
    "/api/start": set(),
    "/api/stop": set(),
    "/api/mute": {"muted"},
    "/api/listen-first": {"listen_first"},
    "/api/switch": {"voice", "quant", "checkpoint"},
    "/api/quit": set(),
}
MAX_PATH = 4096

T = TypeVar("T")


class Api:
    def __init__(
        self, controller: Controller, guard: ConnectionGuard, stopping: asyncio.Event
    ) -> None:
        self.controller = controller
        self.guard = guard
        self.limits: Limits = guard.limits
        self.stopping = stopping  # set: the service is shutting down (by `quit` or a signal)
        self.history: HistoryApi | None = None
        self._reads = ThreadPoolExecutor(2, thread_name_prefix="service-read")
        self._actions = ThreadPoolExecutor(1, thread_name_prefix="service-action")
        self._live_lock = asyncio.Lock()
        self._live: tuple[float, dict[str, Any]] | None = None
        self._streams = 0

    def app(self, token: str, port: int) -> web.Application:
        app = web.Application(
            client_max_size=self.limits.max_body,
            middlewares=[
                in_flight(self.guard),
                json_errors,
                local_only(port),
                bearer_token(token, public=set(PAGES), linkable=is_audio_path),
                read_body(FIELDS, self.guard),
            ],
        )
        pages = {path: self._page(name, kind) for path, (name, kind) in PAGES.items()}
        app.add_routes([web.get(path, handler) for path, handler in pages.items()])
        app.add_routes(
            [
                web.get("/api/status", self.status),
                web.get("/api/live", self.live),
                web.get("/api/stream", self.stream),
                web.post("/api/start", self.start),
                web.post("/api/stop", self.stop),
                web.post("/api/mute", self.mute),
                web.post("/api/listen-first", self.listen_first),
                web.post("/api/switch", self.switch),
                web.post("/api/quit", self.quit),
            ]
        )
        self.history = HistoryApi(token)
        app.add_routes(self.history.routes())
        return app

    # --- reads --------------------------------------------------------------------------------
    async def status(self, request: web.Request) -> web.Response:
        return json_response(await self._read(self.controller.status))

    async def live(self, request: web.Request) -> web.Response:
        return json_response(await self._snapshot())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self._streams >= self.limits.max_streams:
            raise refusal(503, f"{self._streams} live feeds are open already; close one")
        self._streams += 1
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **NO_STORE})
            await response.prepare(request)
            while not self.stopping.is_set():
                event = json.dumps(await self._snapshot())
                await response.write(f"data: {event}\n\n".encode())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), STREAM_PERIOD_S)
            await response.write_eof()
            return response
        except ConnectionResetError:  # the watcher went away
            return response
        finally:
            self._streams -= 1

    # --- actions ------------------------------------------------------------------------------
    async def start(self, request: web.Request) -> web.Response:
        return await self._act(self.controller.start)

    async def stop(self, request: web.Request) -> web.Response:
        return await self._act(self.controller.stop)

    async def mute(self, request: web.Request) -> web.Response:
        muted = request[BODY].get("muted")
        if not isinstance(muted, bool):
            raise refusal(400, '"muted" must be true or false')
        return await self._act(lambda: self.controller.set_muted(muted))

    async def listen_first(self, request: web.Request) -> web.Response:
        on = request[BODY].get("listen_first")
        if not isinstance(on, bool):
            raise refusal(400, '"listen_first" must be true or false')
        return await self._act(lambda: self.controller.set_listen_first(on))

    async def switch(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = request[BODY]
        if not body:
            raise refusal(400, 'give "voice", "quant" or "checkpoint"')
        for key, value in body.items():
            if not isinstance(value, str) or not value or len(value) > MAX_PATH:
                raise refusal(400, f'"{key}" must be a non-empty string')
        # The controller refuses (4xx, with the reason) anything that could not load before
        # it touches the running model.
        voice, quant, checkpoint = body.get("voice"), body.get("quant"), body.get("checkpoint")
        return await self._act(lambda: self.controller.switch(voice, quant, checkpoint))

    async def quit(self, request: web.Request) -> web.StreamResponse:
        """Answer in full first; only then stop (the caller must not see a cut reply)."""
        response = json_response(await self._read(self.controller.status) | {"stopping": True})
        response.force_close()
        try:
            await response.prepare(request)
            await response.write_eof()
        finally:
            self.stopping.set()  # even if the caller left without its answer
        return response

    # --- internals ----------------------------------------------------------------------------
    def _page(self, name: str, content_type: str) -> Callable[[web.Request], Any]:
        data = resources.files("assistant.service.web").joinpath(name).read_bytes()
        headers = {"Content-Type": content_type, "Content-Security-Policy": PAGE_POLICY}

        async def page(request: web.Request) -> web.Response:
            return web.Response(body=data, headers=headers)

        return page

    async def _read(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reads, call)

    async def _act(self, action: Callable[[], None]) -> web.Response:
        await asyncio.get_running_loop().run_in_executor(self._actions, action)
        self._live = None  # the next snapshot shows what the action did
        return json_response(await self._read(self.controller.status))

    async def _snapshot(self) -> dict[str, Any]:
        """`controller.live()`, computed at most once per LIVE_MAX_AGE_S however many ask."""
        async with self._live_lock:
            cached = self._live
            if cached is not None and time.monotonic() - cached[0] < LIVE_MAX_AGE_S:
                return cached[1]
            live = await self._read(self.controller.live)
            self._live = (time.monotonic(), live)
            return live

    def close(self) -> None:
        """After the server stopped: no more calls into the controller."""
        self._reads.shutdown(wait=False, cancel_futures=True)
        self._actions.shutdown(wait=False, cancel_futures=True)
        if self.history is not None:
            self.history.close()
