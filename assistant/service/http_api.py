"""The control API and the web dashboard, over HTTP on the loopback interface only.

Who may call it: a process of the local user. The server binds 127.0.0.1 and refuses any
other peer address; every /api request must carry the random token from the service file,
which only the user can read (mode 0600). The Host header must name the loopback address,
so a web page elsewhere cannot reach it by DNS rebinding, and a browser request from another
origin is refused (CSRF). The dashboard page itself holds no secret: it gets the token from
its URL's fragment (never sent over the wire) and sends it with each request.

    GET  /api/status              state, model, mute, last error
    GET  /api/live                status + metrics snapshot + transcript (the dashboard's feed)
    GET  /api/stream              the same as server-sent events, twice a second
    POST /api/start | /api/stop
    POST /api/mute                {"muted": true|false}
    POST /api/switch              {"voice": "moshika", "quant": "q8"} or {"checkpoint": "..."}
    POST /api/quit                stop the conversation and the service
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from ..errors import ServiceRefusedError
from .controller import Controller

MAX_BODY = 16 * 1024
STREAM_PERIOD_S = 0.5
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
ALLOWED_FIELDS = {
    "/api/start": set(),
    "/api/stop": set(),
    "/api/mute": {"muted"},
    "/api/switch": {"voice", "quant", "checkpoint"},
    "/api/quit": set(),
}


class BadRequest(Exception):
    pass


class ServiceServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use must be an error, not shared

    def __init__(self, port: int, controller: Controller, token: str) -> None:
        self.controller = controller
        self.token = token
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", port), Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def origins(self) -> set[str]:
        return {f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"}


class Handler(BaseHTTPRequestHandler):
    server: ServiceServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints state
        pass

    # --- routing ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if not self._allowed():
            return
        path = self.path.split("?", 1)[0]
        if path in STATIC:
            self._static(*STATIC[path])
            return
        if not self._authorised():
            return
        c = self.server.controller
        if path == "/api/status":
            self._json(HTTPStatus.OK, c.status())
        elif path == "/api/live":
            self._json(HTTPStatus.OK, c.live())
        elif path == "/api/stream":
            self._stream()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})

    def do_POST(self) -> None:
        if not self._allowed() or not self._authorised():
            return
        path = self.path.split("?", 1)[0]
        if path not in ALLOWED_FIELDS:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
            return
        try:
            body = self._body(ALLOWED_FIELDS[path])
            self._act(path, body)
        except BadRequest as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        except ServiceRefusedError as e:
            self._json(e.status, {"error": str(e)})
            return
        self._json(HTTPStatus.OK, self.server.controller.status())

    def _act(self, path: str, body: dict[str, Any]) -> None:
        c = self.server.controller
        if path == "/api/start":
            c.start()
        elif path == "/api/stop":
            c.stop()
        elif path == "/api/mute":
            if not isinstance(body.get("muted"), bool):
                raise BadRequest('"muted" must be true or false')
            c.set_muted(body["muted"])
        elif path == "/api/quit":
            # serve_forever cannot be shut down from its own request thread's caller: detach.
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        elif path == "/api/switch":
            for key, value in body.items():
                if not isinstance(value, str) or not value or len(value) > 4096:
                    raise BadRequest(f'"{key}" must be a non-empty string')
            if not body:
                raise BadRequest('give "voice", "quant" or "checkpoint"')
            c.switch(body.get("voice"), body.get("quant"), body.get("checkpoint"))

    # --- checks -------------------------------------------------------------------------------
    def _allowed(self) -> bool:
        """Loopback peer, a loopback Host header, and no foreign browser origin."""
        peer = ipaddress.ip_address(self.client_address[0])
        if not peer.is_loopback:
            self._json(HTTPStatus.FORBIDDEN, {"error": "only local connections are served"})
            return False
        port = self.server.port
        host = self.headers.get("Host", "")
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
            self._json(HTTPStatus.FORBIDDEN, {"error": f"unexpected Host header {host!r}"})
            return False
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.server.origins:
            self._json(HTTPStatus.FORBIDDEN, {"error": f"requests from {origin} are refused"})
            return False
        return True

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme == "Bearer" and hmac.compare_digest(token.strip(), self.server.token):
            return True
        self._json(
            HTTPStatus.UNAUTHORIZED,
            {"error": "missing or wrong token (it is in the service file, readable by its user)"},
        )
        return False

    def _body(self, allowed: set[str]) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length > MAX_BODY:
            raise BadRequest(f"body over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        unknown = set(body) - allowed
        if unknown:
            raise BadRequest(f"unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        return body

    # --- responses ----------------------------------------------------------------------------
    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _static(self, name: str, content_type: str) -> None:
        data = resources.files("assistant.service.web").joinpath(name).read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        # Everything the page needs is served from here: nothing from the internet.
        self.send_header(
            "Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'"
        )
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            while not self.server.stopping.is_set():
                event = json.dumps(self.server.controller.live())
                self.wfile.write(f"data: {event}\n\n".encode())
                self.wfile.flush()
                self.server.stopping.wait(STREAM_PERIOD_S)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the watcher went away
