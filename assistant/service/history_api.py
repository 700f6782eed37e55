"""Past conversations over the API (assistant/history), addressed by id only.

    GET    /api/sessions[?q=words]   {"conversations": [...]}, newest first; with q, only those
                                     where the words were said, each with its "matches"
    GET    /api/sessions/{id}        {"conversation", "lines" (both sides), "latency"
                                     ([{t, delay_p50, delay_p95}], at most 600), "audio" (link)}
    GET    /api/sessions/{id}/audio  the stereo WAV (you left, Moshi right); byte ranges (206)
    DELETE /api/sessions/{id}        every file of it: 409 while it is recorded or played

An id is checked against the sessions folder (`store.folder_of`): no path from a request is
ever opened. An unknown id is 404. Disk work runs on this API's own threads, so neither the
event loop nor the live dashboard's reads wait on it. The audio is sent a piece at a time,
the folder held (`session_files.using`) only while each piece is read: a paused player does
not keep a conversation from being deleted.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ..conversation import session_files as files
from ..errors import HistoryError, ServiceRefusedError, SessionBusyError, UnknownSessionError
from ..history import store
from ..history.audio import StereoWav
from ..history.latency import delay_series
from ..history.search import lines_of, search
from .http_policy import json_response, link_key, refusal

logger = logging.getLogger(__name__)

PREFIX = "/api/sessions"
MAX_QUERY = 200  # characters of a search
MATCHES_SHOWN = 5  # lines found per conversation in a search's answer
CHUNK_BYTES = 1 << 20  # the audio is read and sent this much at a time (~11 s)
_AUDIO_PATH = re.compile(r"/api/sessions/[^/]+/audio")
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")

T = TypeVar("T")


def audio_path(conversation_id: str) -> str:
    return f"{PREFIX}/{conversation_id}/audio"


def is_audio_path(path: str) -> bool:
    """Paths a link key may open (`http_policy.bearer_token`)."""
    return _AUDIO_PATH.fullmatch(path) is not None


class HistoryApi:
    def __init__(self, token: str, root: Path | None = None) -> None:
        self.token = token
        self.root = root  # None: the sessions folder of the moment (`paths.sessions_dir`)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="service-history")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX, self.listing),
            web.get(PREFIX + "/{id}", self.show),
            web.get(PREFIX + "/{id}/audio", self.audio),
            web.delete(PREFIX + "/{id}", self.delete),
        ]

    # --- handlers -----------------------------------------------------------------------------
    async def listing(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "")
        if len(query) > MAX_QUERY:
            raise refusal(400, f'"q" must be at most {MAX_QUERY} characters')
        return json_response({"conversations": await self._run(lambda: self._list(query))})

    async def show(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["id"]
        return json_response(await self._run(lambda: self._show(conversation_id)))

    async def delete(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["id"]
        left = await self._run(lambda: store.delete(conversation_id, self.root))
        return json_response({"deleted": conversation_id, "left": left})

    async def audio(self, request: web.Request) -> web.StreamResponse:
        conversation_id = request.match_info["id"]
        size = await self._run(lambda: self._read_audio(conversation_id, lambda wav: wav.size))
        try:
            wanted = byte_range(request.headers.get("Range"), size)
        except ValueError:
            headers = {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}
            outside = json_response({"error": f"the range is outside {size} bytes"}, 416)
            outside.headers.update(headers)
            return outside
        start, end = wanted or (0, size)
        response = web.StreamResponse(
            status=200 if wanted is None else 206,
            headers={
                "Content-Type": "audio/wav",
                "Accept-Ranges": "bytes",
                "Cache-Control": "no-store",
                "Content-Disposition": f'inline; filename="{conversation_id}.wav"',
            },
        )
        if wanted is not None:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response.content_length = end - start
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        try:
            for at in range(start, end, CHUNK_BYTES):
                upto = min(at + CHUNK_BYTES, end)
                piece = await self._run(
                    lambda at=at, upto=upto: self._read_audio(  # type: ignore[misc]
                        conversation_id, lambda wav: wav.read(at, upto)
                    )
                )
                await response.write(piece)
            await response.write_eof()
        except (ServiceRefusedError, HistoryError) as e:
            # The answer has begun: all that can be said now is a cut-off body.
            logger.info("audio of %s cut off: %s", conversation_id, e)
            response.force_close()
        except ConnectionResetError:  # the player moved on (a seek): nothing to answer
            pass
        return response

    # --- on the worker threads ----------------------------------------------------------------
    def _list(self, query: str) -> list[dict[str, Any]]:
        conversations = store.list_conversations(self.root)
        if not query.strip():
            return [c.to_dict() for c in conversations]
        found: dict[str, list[dict[str, object]]] = {}
        for m in search(query, self.root):
            shown = found.setdefault(m.conversation, [])
            if len(shown) < MATCHES_SHOWN:
                shown.append({k: v for k, v in m.to_dict().items() if k != "id"})
        return [c.to_dict() | {"matches": found[c.id]} for c in conversations if c.id in found]

    def _show(self, conversation_id: str) -> dict[str, Any]:
        c = store.open_conversation(conversation_id, self.root)
        return {
            "conversation": c.to_dict(),
            "lines": [x.to_dict() for x in lines_of(c)] if c.is_conversation else [],
            "latency": [p.to_dict() for p in delay_series(c.folder)],
            "audio": f"{audio_path(c.id)}?key={link_key(self.token, audio_path(c.id))}",
        }

    def _read_audio(self, conversation_id: str, read: Callable[[StereoWav], T]) -> T:
        folder = store.folder_of(conversation_id, self.root)
        try:
            with files.using(folder):
                return read(StereoWav(folder))
        except files.Busy as e:
            raise ServiceRefusedError(f"cannot play {conversation_id}: it is {e.what}") from None

    async def _run(self, call: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except UnknownSessionError as e:
            raise ServiceRefusedError(e.message, status=404) from None
        except SessionBusyError as e:
            raise ServiceRefusedError(e.message, status=409) from None
        except HistoryError as e:  # a damaged recording, a folder that cannot be removed
            raise ServiceRefusedError(str(e), status=500) from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `Range: bytes=...` as [start, end), or None to send the whole file (no header, or one
    this does not serve: several ranges, another unit, bad syntax; RFC 9110 lets a server
    ignore those). ValueError: a range that starts past the end (answered 416)."""
    m = _RANGE.fullmatch(header.strip()) if header else None
    if m is None or m[0] == "bytes=-":
        return None
    first, last = m[1], m[2]
    if not first:  # the last N bytes
        if int(last) == 0:
            raise ValueError("an empty range")
        return max(size - int(last), 0), size
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise ValueError("past the end")
    return start, size if not last else min(int(last) + 1, size)
