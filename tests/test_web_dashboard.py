"""The web dashboard in a real headless Chromium: it loads offline, its figures update as the
conversation runs, its buttons drive the service, and a screenshot shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import launch
from tests.support.service_harness import SPEECH, ServiceProcess, wait_for

SCREENSHOT = Path("web-dashboard.png")


def text(page, selector: str) -> str:
    # Read through selectors, not evaluated JavaScript: the page's CSP forbids eval.
    return page.text_content(selector) or ""


@pytest.mark.slow
def test_dashboard_page_updates_live(tiny_checkpoint, tmp_path: Path) -> None:
    svc = ServiceProcess("--checkpoint", str(tiny_checkpoint("bf16")), "--input", str(SPEECH))
    try:
        c = svc.client
        wait_for(lambda: c.status()["model"], what="model")
        base = c.info.url
        with launch() as browser:
            page = browser.new_page(viewport={"width": 1200, "height": 1100})
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.goto(c.info.dashboard_url)
            # The token left the address bar once read.
            assert "token" not in page.url
            wait_for(lambda: text(page, "#state") == "idle", what="the page's state")
            assert page.text_content("#model-label") == c.status()["model"]["label"]
            assert page.text_content("#model-quant") == "bf16 (16 bits)"

            page.click("#start")  # the page's own button drives the service
            wait_for(lambda: int(text(page, "#frames")) > 5, what="frames on the page")
            first = int(text(page, "#frames"))
            wait_for(lambda: int(text(page, "#frames")) > first + 5, what="the page to update")
            step_p50 = page.text_content("#latency tr[data-stage=step] td:nth-child(3)")
            assert float(step_p50) > 0
            assert page.text_content("#rtf").startswith(("0.", "1.", "2."))
            wait_for(lambda: text(page, "#transcript"), what="the transcript")
            shot = tmp_path / SCREENSHOT
            page.screenshot(path=str(shot), full_page=True)
            page.click("#mute")
            wait_for(lambda: c.status()["muted"], what="muted from the page")
            wait_for(lambda: page.is_visible("#muted"), what="the muted badge")
            # Muted elsewhere (the menu bar, its global shortcut: the same call): shown too.
            c.mute(False)
            wait_for(lambda: not page.is_visible("#muted"), what="the badge gone")
            c.mute(True)
            wait_for(lambda: page.is_visible("#muted"), what="the badge, muted elsewhere")
            page.click("#stop")
            wait_for(lambda: c.status()["state"] == "idle", what="stopped from the page")

            # Everything came from the service itself: no request left this machine.
            assert requested and all(u.startswith(base) for u in requested), requested
            # Without the token, the page says how to open it and the API stays closed. (A
            # context of its own: nothing the first page stored, as in a fresh browser.)
            page = browser.new_context().new_page()
            page.goto(base + "/")
            wait_for(lambda: text(page, "#state") == "no token", what="the no-token notice")
            assert "assistant ctl open" in page.text_content("#error")
        png = shot.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    finally:
        svc.close()
