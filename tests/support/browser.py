"""A headless Chromium for tests that need a real browser (Perfetto's trace importer, the web
dashboard). The browser comes from the system (`scripts/setup.sh --test-tools` installs it on
Linux) or from `playwright install chromium`. Without one the tests skip with the reason, except
under CI, where a missing browser is a failure."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    mac = Path("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome")
    return str(mac) if mac.exists() else None  # else playwright's own build, if installed


@contextmanager
def launch() -> Iterator[Any]:
    """A playwright Browser; skips (fails under CI) when no Chromium can be started."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        except Error as e:
            message = f"no headless Chromium: {str(e).splitlines()[0]}"
            if os.environ.get("CI"):
                pytest.fail(message + " (run scripts/setup.sh --test-tools)")
            pytest.skip(message + " (run scripts/setup.sh --test-tools)")
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def static_server(root: Path, extra: dict[str, Path] | None = None) -> Iterator[str]:
    """Serve `root` (and `extra` URL paths mapped to files) on loopback; yields the base URL."""
    paths = extra or {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            clean = path.split("?", 1)[0]
            if clean in paths:
                return str(paths[clean])
            return super().translate_path(path)

        def end_headers(self) -> None:
            self.send_header("Access-Control-Allow-Origin", "*")
            super().end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
