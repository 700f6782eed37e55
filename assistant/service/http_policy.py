"""Who may call the service, and what a request may carry: aiohttp middlewares.

Who: a process of the local user. The server binds 127.0.0.1 and refuses any other peer
address; every request but the dashboard's page must carry the random token from the service
file, which only the user can read (mode 0600). The Host header must be one, naming the
loopback address, so a web page elsewhere cannot reach the service by DNS rebinding, and a
browser request from another origin is refused (CSRF). The dashboard page holds no secret:
it gets the token from its URL's fragment (never sent over the wire). A conversation's audio,
which an <audio> element fetches with no way to add a header, may carry instead a key made
from the token for that one path (`link_key`): it opens nothing else and reveals no token.

What: a JSON object of at most 16 kB and 8 levels deep (strict JSON: finite numbers, unique
keys), with only the fields its endpoint knows, arriving whole within 5 s of the request's
first byte (the limits: `connections.Limits`). aiohttp's own parser refuses what is not
HTTP (a negative or doubled Content-Length, a malformed header) with 400 before any of this
runs.

Every refusal is a JSON {"error": reason} with its status; an unexpected failure is logged
with its traceback and answered 500, and the service carries on.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import AssistantError, ServiceRefusedError
from ..strict_json import load_strict
from .connections import ConnectionGuard, Limits

if TYPE_CHECKING:  # annotations only: the protocols' home moved between aiohttp versions
    from aiohttp.typedefs import Handler, Middleware

logger = logging.getLogger(__name__)

MAX_BODY = Limits.max_body  # (the message of a 413 aiohttp raises itself)
BODY = "body"  # where `read_body` leaves the parsed body on the request
NO_STORE = {"Cache-Control": "no-store"}
TOKEN_HINT = "missing or wrong token (it is in the service file, readable by its user)"
LINK_HINT = "wrong or stale link key (open the conversation again)"


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, headers=NO_STORE)


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    408: web.HTTPRequestTimeout,
    503: web.HTTPServiceUnavailable,
}


def refusal(status: int, reason: str) -> web.HTTPException:
    """An HTTP error to raise; `json_errors` turns it into {"error": reason}."""
    return _ERRORS[status](text=reason)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: every error as JSON, every unexpected one logged with its traceback."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        response = json_response({"error": _reason(request, e)}, status=e.status)
        if "Allow" in e.headers:
            response.headers["Allow"] = e.headers["Allow"]
        if e.status in (408, 413):
            response.force_close()  # the rest of the body is not worth waiting for
        return response
    except ServiceRefusedError as e:
        return json_response({"error": str(e)}, status=e.status)
    except ConnectionResetError:  # the caller left before its answer: nothing to answer
        logger.debug("%s %s: the caller went away", request.method, request.path)
        return web.Response(status=499)
    except Exception:
        logger.exception("answering %s %s failed", request.method, request.path)
        return json_response({"error": "internal error (the service log has the details)"}, 500)


def _reason(request: web.Request, e: web.HTTPException) -> str:
    if e.status == 404:
        return f"no such endpoint: {request.path}"
    if e.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if e.status == 413:
        return f"body over {MAX_BODY} bytes"
    return e.text or e.reason


def local_only(port: int) -> Middleware:
    """A loopback peer, one Host header naming the loopback address, no foreign Origin."""
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    origins = {f"http://{host}" for host in hosts}

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_loopback(request.remote):
            raise refusal(403, "only local connections are served")
        host = request.headers.getall("Host", [])
        if len(host) != 1 or host[0] not in hosts:
            raise refusal(403, f"unexpected Host header {_shown(host)}")
        origin = request.headers.getall("Origin", [])
        if len(origin) > 1 or (origin and origin[0] not in origins):
            raise refusal(403, f"requests from {_shown(origin)} are refused")
        return await handler(request)

    return check


def bearer_token(
    token: str, public: set[str], linkable: Callable[[str], bool] = lambda path: False
) -> Middleware:
    """Every request but GET/HEAD of the `public` pages carries `Authorization: Bearer token`;
    a GET/HEAD of a `linkable` path may carry its `link_key` as `?key=` instead."""
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        reading = request.method in ("GET", "HEAD")
        if not (reading and request.path in public):
            given = request.headers.getall("Authorization", [])
            keys = request.query.getall("key", []) if reading and linkable(request.path) else []
            if keys and not given:
                if len(keys) != 1 or not _key_matches(keys[0], link_key(token, request.path)):
                    raise refusal(401, LINK_HINT)
            elif len(given) != 1 or not _token_matches(given[0], expected):
                raise refusal(401, TOKEN_HINT)
        return await handler(request)

    return check


def link_key(token: str, path: str) -> str:
    """The key that opens one path without the token, for what a page cannot give a header
    (an <audio> element's requests): it opens that path only, and reveals nothing of the
    token."""
    digest = hmac.new(token.encode(), b"link:" + path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def read_body(fields: Mapping[str, set[str]], guard: ConnectionGuard) -> Middleware:
    """POST bodies, before the handler runs: a JSON object of known fields, on time (the
    request's deadline counts from its first byte, headers included)."""

    @web.middleware
    async def read(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and request.path in fields:
            deadline = guard.request_deadline(request.transport)
            request[BODY] = await _json_object(
                request, fields[request.path], deadline, guard.limits
            )
        return await handler(request)

    return read


def in_flight(guard: ConnectionGuard) -> Middleware:
    """Outermost: the connection is busy, not idle, while a request is answered (a live feed
    included), and its request ends with its answer, whatever the answer is."""

    @web.middleware
    async def mark(request: web.Request, handler: Handler) -> web.StreamResponse:
        with guard.answering(request.transport):
            return await handler(request)

    return mark


# --- helpers -------------------------------------------------------------------------------------
def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _token_matches(header: str, expected: bytes) -> bool:
    scheme, _, value = header.partition(" ")
    # aiohttp decodes header bytes as UTF-8, keeping undecodable ones as surrogates; compared
    # as the bytes that came, anything (non-ASCII included) is just a wrong token.
    given = value.strip().encode("utf-8", "surrogateescape")
    return scheme == "Bearer" and hmac.compare_digest(given, expected)


def _key_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def _shown(values: list[str]) -> str:
    """Header values for an error message: quoted, and short."""
    text = ", ".join(repr(v[:100]) for v in values)
    return text or "(none)"


async def _json_object(
    request: web.Request, allowed: set[str], deadline: float, limits: Limits
) -> dict:
    length = request.content_length
    if length is not None and length > limits.max_body:
        raise web.HTTPRequestEntityTooLarge(max_size=limits.max_body, actual_size=length)
    try:
        # Over max_body (a chunked body has no length up front) read() raises 413 itself.
        raw = await asyncio.wait_for(request.read(), max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        raise refusal(
            408, f"the request did not arrive within {limits.request_timeout_s:g} s"
        ) from None
    return parse_body(raw, allowed, limits)


def parse_body(raw: bytes, allowed: set[str], limits: Limits) -> dict[str, Any]:
    """A request body as a JSON object of `allowed` fields, or a 400 saying why."""
    try:
        # Depth measured before parsing: thousands of "[" are a 400, not a RecursionError.
        body = load_strict(
            raw or b"{}",
            max_depth=limits.max_json_depth,
            error=AssistantError,
            path=None,
            what="body is not JSON",
        )
    except AssistantError as e:
        raise refusal(400, str(e)) from None
    if not isinstance(body, dict):
        raise refusal(400, "body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise refusal(400, f"unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    return body
