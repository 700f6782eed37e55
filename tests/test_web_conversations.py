"""The dashboard's Conversations page in a real headless Chromium (issue 20): opened as the
menu bar opens it, it lists and searches past conversations, plays one with the transcript
following (a click on a line seeks there and lights it), and deletes one after a
confirmation, from the list and from the disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from assistant.conversation import session_files as files
from tests.support.browser import launch
from tests.support.service_harness import ServiceProcess, wait_for
from tests.support.session_folders import make_conversation

FIRST = "2026-11-22_14-03-05-chat"
SECOND = "2026-11-23_09-00-00-chat"
PLAYER = "document.getElementById('player')"


def text(page, selector: str) -> str:
    return page.text_content(selector) or ""


def count(page, selector: str) -> int:
    return page.locator(selector).count()


def lit(page) -> list[int]:
    """The transcript lines lit as being heard (1-based)."""
    classes = page.locator("#lines li").evaluate_all("items => items.map(i => i.className)")
    return [i + 1 for i, c in enumerate(classes) if "current" in c.split()]


def position(page) -> float:
    return page.evaluate(PLAYER + ".currentTime")


@pytest.mark.slow
def test_conversations_page_lists_searches_seeks_and_deletes(tmp_path: Path) -> None:
    first = make_conversation(FIRST)
    second = make_conversation(
        SECOND,
        seconds=3.0,
        lines=[("user", 0.5, 1.0, "what time is it"), ("moshi", 1.5, 2.5, "nine")],
    )
    svc = ServiceProcess("--no-preload")
    try:
        info = svc.client.info
        with launch() as browser:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            requested: list[str] = []
            audio: list[int] = []
            page.on("request", lambda r: requested.append(r.url))
            page.on("response", lambda r: audio.append(r.status) if "/audio" in r.url else None)
            page.goto(info.conversations_url)  # what "Recent conversations" opens
            assert "token" not in page.url and page.url.endswith("#view=conversations")
            wait_for(lambda: count(page, "#conversations li") == 2, what="the list")
            assert page.is_hidden("#view-live") and page.is_visible("#view-conversations")
            assert text(page, "#list-note") == "2 conversations"
            assert "what time" in text(page, "#conversations li:first-child")

            # Search both sides; a line found opens its conversation at that moment.
            page.fill("#search", "the WEATHER")
            wait_for(lambda: count(page, "#conversations li") == 1, what="the search")
            assert text(page, "#list-note") == "1 conversation with “the WEATHER”"
            assert "tell me about the weather" in text(page, "#conversations .match")
            page.click("#conversations .match")
            wait_for(lambda: count(page, "#lines li.line") == 4, what="the transcript")
            wait_for(lambda: lit(page) == [3], what="the found line lit")
            assert abs(position(page) - 3.0) < 0.05
            assert [text(page, f"#lines li:nth-child({i}) .who") for i in (1, 2)] == [
                "You",
                "Moshi",
            ]
            assert count(page, "#latency-chart polyline") == 2  # median and p95
            page.fill("#search", "")
            wait_for(lambda: count(page, "#conversations li") == 2, what="the whole list")

            # Seek: a click on a line moves the player there and lights that line only.
            wait_for(lambda: page.evaluate(PLAYER + ".readyState") >= 1, what="the audio")
            assert page.evaluate(PLAYER + ".duration") == pytest.approx(6.0, abs=0.01)
            page.click("#lines li:nth-child(4)")
            wait_for(lambda: lit(page) == [4], what="the clicked line lit")
            assert abs(position(page) - 4.4) < 0.05
            page.click("#lines li:nth-child(1)")
            wait_for(lambda: lit(page) == [1], what="the first line lit")
            assert abs(position(page) - 0.4) < 0.05
            # Playing, the lit line follows what is heard.
            page.click("#lines li:nth-child(2)")  # 1.6 s, Moshi
            page.evaluate(PLAYER + ".play()")
            wait_for(lambda: lit(page) == [3], timeout=20, what="the next line lit in turn")
            page.evaluate(PLAYER + ".pause()")
            # The browser fetched the audio by byte ranges (it can seek without all of it).
            assert 206 in audio, audio
            page.screenshot(path=str(tmp_path / "conversations.png"), full_page=True)

            # One being recorded: the page says why it cannot play it, nor delete it.
            held = files.hold_recording(second)
            try:
                page.click(f"#conversations li[data-id='{SECOND}'] a.head")
                wait_for(lambda: page.is_visible("#audio-error"), what="the audio refused")
                assert text(page, "#audio-error").endswith(
                    f"cannot play {SECOND}: it is being recorded"
                )
                page.click("#delete")
                page.click("#confirm-delete")
                wait_for(
                    lambda: text(page, "#opened-error").startswith("Not deleted"),
                    what="the delete refused",
                )
                refused = text(page, "#opened-error")
                assert refused.endswith(f"cannot delete {SECOND}: it is being recorded")
                assert second.is_dir()
            finally:
                files.release(held)
            page.click(f"#conversations li[data-id='{FIRST}'] a.head")
            wait_for(lambda: count(page, "#lines li.line") == 4, what="the first one again")
            assert page.is_hidden("#opened-error") and page.is_hidden("#audio-error")

            # Delete: nothing happens until confirmed.
            page.click("#delete")
            assert page.is_visible("#confirm")
            page.click("#cancel-delete")
            assert page.is_hidden("#confirm") and first.is_dir()
            page.click("#delete")
            page.click("#confirm-delete")
            wait_for(lambda: count(page, "#conversations li") == 1, what="the list after delete")
            assert text(page, "#list-note") == f"1 conversation · deleted {FIRST}"
            assert page.is_hidden("#opened")
            assert not first.exists() and second.is_dir()
            r = requests.get(
                f"{info.url}/api/sessions/{FIRST}",
                headers={"Authorization": f"Bearer {info.token}"},
                timeout=5,
            )
            assert r.status_code == 404

            # Back to the live view, and everything came from the service itself.
            page.click("#tab-live")
            wait_for(lambda: page.is_visible("#view-live"), what="the live view")
            assert page.is_hidden("#view-conversations")
            assert requested and all(u.startswith(info.url) for u in requested), requested
        png = (tmp_path / "conversations.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        svc.close()
